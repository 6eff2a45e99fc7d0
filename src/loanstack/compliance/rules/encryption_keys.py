"""R8: encryption and keys. Each key policy is replayed against the requests the services that
use the key make (as each service documents them), so a service locked out, a grant that also
lets a lookalike of another stack in, or a condition that can never match is found offline."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from fnmatch import fnmatchcase

from loanstack.compliance.rules.registry import Flag, check
from loanstack.compliance.rules.shared import arn, key_of
from loanstack.policy import Request, allows
from loanstack.template import Environment, Resource, as_list, references, statements

CONTEXT_FREE_ACTIONS = ("kms:describekey", "kms:getkeypolicy", "kms:getkeyrotationstatus")


@check(
    "LS008",
    "R8",
    "No key policy grants DescribeKey under an encryption-context condition (it never matches)",
    "https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-encryption-context",
)
def context_conditions(env: Environment) -> Iterator[Flag]:
    for key in env.of_type("AWS::KMS::Key"):
        for st in statements(key.properties.get("KeyPolicy", {})):
            keys = {k.lower() for tests in st.get("Condition", {}).values() for k in tests}
            if st.get("Effect") != "Allow" or not any(
                k.startswith("kms:encryptioncontext") for k in keys
            ):
                continue
            for action in as_list(st.get("Action", [])):
                if any(fnmatchcase(a, str(action).lower()) for a in CONTEXT_FREE_ACTIONS):
                    yield Flag(
                        f"{key.logical_id}/{st.get('Sid', '?')}",
                        f"{action} carries no encryption context: the condition denies it",
                    )


def key_requests(env: Environment) -> Iterator[tuple[str, str, Request]]:
    """(key, who asks, request) for each call AWS documents a service making with the key."""
    c = env.context
    for trail in env.of_type("AWS::CloudTrail::Trail"):
        key = key_of(env, trail.properties.get("KMSKeyId"))
        if key is None:
            continue
        trail_arn = arn(env, "cloudtrail", f"trail/{trail.properties.get('TrailName')}")
        source = {"aws:SourceArn": trail_arn, "aws:SourceAccount": c.account_id}
        principal = ("Service", "cloudtrail.amazonaws.com")
        yield key, trail.logical_id, Request(principal, "kms:DescribeKey", source)
        ctx = {**source, "kms:EncryptionContext:aws:cloudtrail:arn": trail_arn}
        yield key, trail.logical_id, Request(principal, "kms:GenerateDataKey", ctx)
        bucket = env.resources.get(next(iter(references(trail.properties.get("S3BucketName"))), ""))
        if bucket is not None and uses_bucket_key(bucket):
            # With an S3 Bucket Key, CloudTrail decrypts the bucket-level key when the trail is
            # created or updated: the context is the bucket's (S3 Bucket Key encryption
            # context), not a trail's, so grants scoped to aws:cloudtrail:arn do not apply.
            bucket_name = bucket.properties.get("BucketName")
            s3_ctx = {
                **source,
                "kms:EncryptionContext:aws:s3:arn": f"arn:{c.partition}:s3:::{bucket_name}",
            }
            yield key, trail.logical_id, Request(principal, "kms:Decrypt", s3_ctx)
    for group in env.of_type("AWS::Logs::LogGroup"):
        key = key_of(env, group.properties.get("KmsKeyId"))
        if key is None:
            continue
        ctx = {
            "kms:EncryptionContext:aws:logs:arn": arn(
                env, "logs", f"log-group:{group.properties.get('LogGroupName')}"
            )
        }
        principal = ("Service", f"logs.{c.region}.amazonaws.com")
        for action in ("kms:GenerateDataKey", "kms:Decrypt"):
            yield key, group.logical_id, Request(principal, action, ctx)
    topics = {
        t.logical_id: key_of(env, t.properties.get("KmsMasterKeyId"))
        for t in env.of_type("AWS::SNS::Topic")
    }
    for sub in env.of_type("AWS::RDS::EventSubscription"):
        # RDS publishes as events.rds.amazonaws.com, its SourceArn the RDS resource's ARN:
        # https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/USER_Events.GrantingPermissions.html
        kind = RDS_ARN_KIND.get(str(sub.properties.get("SourceType")), "db")
        targets = references(sub.properties.get("SnsTopicArn")) & set(topics)
        for key in {topics[t] for t in targets} - {None}:
            for source in sub.properties.get("SourceIds", []):
                source_arn = arn(env, "rds", f"{kind}:{env.name_of(source)}")
                ctx = {"aws:SourceArn": source_arn, "aws:SourceAccount": c.account_id}
                principal = ("Service", "events.rds.amazonaws.com")
                for action in ("kms:GenerateDataKey", "kms:Decrypt"):
                    yield str(key), sub.logical_id, Request(principal, action, ctx)
    for vault in env.of_type("AWS::Backup::BackupVault"):
        # Creating a vault on a customer managed key: AWS Backup calls KMS for the caller (so
        # through backup.<region>) with these actions ("Create a backup vault"):
        # https://docs.aws.amazon.com/aws-backup/latest/devguide/create-a-vault.html
        key = key_of(env, vault.properties.get("EncryptionKeyArn"))
        if key is None:
            continue
        caller = ("AWS", f"arn:{c.partition}:iam::{c.account_id}:root")
        via = {
            "kms:ViaService": f"backup.{c.region}.amazonaws.com",
            "kms:CallerAccount": c.account_id,
        }
        for action in ("kms:GenerateDataKey", "kms:Decrypt", "kms:RetireGrant"):
            yield key, vault.logical_id, Request(caller, action, via)
        # an integrated service's grant on the caller's behalf carries GrantIsForAWSResource
        # https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-grant-is-for-aws-resource
        grant = {**via, "kms:GrantIsForAWSResource": "true"}
        yield key, vault.logical_id, Request(caller, "kms:CreateGrant", grant)
    for alarm in env.of_type("AWS::CloudWatch::Alarm"):
        targets = references(alarm.properties.get("AlarmActions", [])) & set(topics)
        for key in {topics[t] for t in targets} - {None}:
            alarm_arn = arn(env, "cloudwatch", f"alarm:{alarm.properties.get('AlarmName')}")
            ctx = {"aws:SourceArn": alarm_arn, "aws:SourceAccount": c.account_id}
            principal = ("Service", "cloudwatch.amazonaws.com")
            for action in ("kms:GenerateDataKey", "kms:Decrypt"):
                yield str(key), alarm.logical_id, Request(principal, action, ctx)


RDS_ARN_KIND = {
    "db-cluster": "cluster",
    "db-instance": "db",
    "db-cluster-snapshot": "cluster-snapshot",
}


def uses_bucket_key(bucket: Resource) -> bool:
    """With an S3 Bucket Key, creating or updating a trail needs kms:Decrypt (CloudTrail's KMS
    key policy page); the key policy then needs a grant that admits that call."""
    rules = bucket.properties.get("BucketEncryption", {}).get(
        "ServerSideEncryptionConfiguration", []
    )
    return any(rule.get("BucketKeyEnabled") is True for rule in rules)


OTHER_ACCOUNT = "210987654321"


def lookalikes(request: Request, env: Environment) -> Iterator[Request]:
    """The same request on behalf of resources that are not this stack's: a name with another
    prefix or suffix, the same name in another region, or in another account."""
    region, account = env.context.region, env.context.account_id
    other_region = "eu-west-1" if region != "eu-west-1" else "us-east-1"
    edits: list[Callable[[str], str]] = [
        lambda v: re.sub(r"([:/])([^:/]+)$", r"\1other-\2", v),
        lambda v: v + "-other",
        lambda v: v.replace(f":{region}:", f":{other_region}:"),
        lambda v: v.replace(f":{account}:", f":{OTHER_ACCOUNT}:").replace(account, OTHER_ACCOUNT),
    ]
    for edit in edits:
        context = {k: edit(v) for k, v in request.context.items()}
        if context != dict(request.context):
            yield Request(request.principal, request.action, context)


@check(
    "LS018",
    "R8",
    "Every service that uses a key is let in by its key policy, as that service documents",
    "https://docs.aws.amazon.com/awscloudtrail/latest/userguide/create-kms-key-policy-for-cloudtrail.html",
)
def key_users_allowed(env: Environment) -> Iterator[Flag]:
    for key, user, request in key_requests(env):
        policy = env.resources[key].properties.get("KeyPolicy", {})
        if not allows(policy, request):
            who = request.principal[1] if request.principal[0] == "Service" else "the account"
            yield Flag(key, f"denies {request.action} by {who} for {user}")


@check(
    "LS019",
    "R8",
    "Service grants on a key name this stack's resources exactly (no lookalike of another stack)",
    "https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html",
)
def key_users_scoped(env: Environment) -> Iterator[Flag]:
    for key, user, request in key_requests(env):
        if request.principal[0] != "Service":
            continue
        policy = env.resources[key].properties.get("KeyPolicy", {})
        other = next((o for o in lookalikes(request, env) if allows(policy, o)), None)
        if other is not None:
            yield Flag(
                key,
                f"lets {request.principal[1]} {request.action} beyond {user}: {other.context}",
            )
