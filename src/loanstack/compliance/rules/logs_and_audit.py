"""R12 and R14: logs and audit evidence. Log groups declared, kept 90 days, encrypted and
created before their writer; no statement text (applicant data) in a database log; the trail
archive locked for a year in prod and its log files validated; S3 server access logging."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from loanstack.compliance.rules.registry import Flag, check
from loanstack.compliance.rules.shared import cluster_parameters, is_production
from loanstack.policy import Request, allows
from loanstack.template import Environment, Resource, as_list, references, statements

RETENTION_DAYS = 90


def depends_on(resource: Resource, target: str) -> bool:
    return target in references(resource.raw.get("Properties", {})) or target in as_list(
        resource.raw.get("DependsOn", [])
    )


def implicit_log_groups(env: Environment) -> Iterator[tuple[Resource, Any]]:
    """(producer, log group name) for every group AWS would otherwise create on its own."""
    for fn in env.of_type("AWS::Lambda::Function"):
        configured = fn.properties.get("LoggingConfig", {}).get("LogGroup")
        name = fn.properties.get("FunctionName")
        default = f"/aws/lambda/{name}" if isinstance(name, str) else None
        yield fn, env.name_of(configured) if configured else default
    for db in env.of_type("AWS::RDS::DBCluster", "AWS::RDS::DBInstance"):
        kind = "cluster" if db.type == "AWS::RDS::DBCluster" else "instance"
        ident = db.properties.get(
            "DBClusterIdentifier" if kind == "cluster" else "DBInstanceIdentifier"
        )
        for export in db.properties.get("EnableCloudwatchLogsExports", []):
            yield db, f"/aws/rds/{kind}/{ident}/{export}"
    for flow in env.of_type("AWS::EC2::FlowLog"):
        if flow.properties.get("LogDestinationType", "cloud-watch-logs") == "cloud-watch-logs":
            yield flow, env.name_of(flow.properties.get("LogGroupName"))
    for trail in env.of_type("AWS::CloudTrail::Trail"):
        arn = trail.properties.get("CloudWatchLogsLogGroupArn")
        targets = references(arn) & set(env.resources) if arn else set()
        yield trail, env.name_of({"Ref": targets.pop()}) if targets else None


@check(
    "LS012",
    "R12",
    "Every log group is declared, keeps exactly 90 days, is KMS-encrypted and exists before its writer",
    "https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html",
)
def log_groups(env: Environment) -> Iterator[Flag]:
    declared: dict[str, Resource] = {}
    for group in env.of_type("AWS::Logs::LogGroup"):
        name = group.properties.get("LogGroupName")
        if not isinstance(name, str):
            yield Flag(group.logical_id, "LogGroupName must be explicit")
        else:
            declared[name] = group
        if group.properties.get("RetentionInDays") != RETENTION_DAYS:
            days = group.properties.get("RetentionInDays")
            yield Flag(group.logical_id, f"RetentionInDays {days}, not {RETENTION_DAYS}")
        if not group.properties.get("KmsKeyId"):
            yield Flag(group.logical_id, "no KmsKeyId: not encrypted with the CMK")
    for producer, name in implicit_log_groups(env):
        target = declared.get(name) if isinstance(name, str) else None
        if target is None:
            yield Flag(producer.logical_id, f"writes to undeclared log group {name!r}")
        elif not depends_on(producer, target.logical_id):
            yield Flag(
                producer.logical_id,
                f"does not depend on {target.logical_id}: AWS could create the group first",
            )


# Settings that write statement text (applicant data in every INSERT of a decision) into a
# log Aurora exports to CloudWatch Logs: the general and slow query logs, and DML auditing.
# https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/USER_LogAccess.Concepts.MySQL.html
STATEMENT_LOGS = ("general_log", "slow_query_log")


STATEMENT_AUDIT = {"QUERY", "QUERY_DML", "QUERY_DML_NO_SELECT"}


ARCHIVE_DAYS = 365  # PCI DSS v4 10.5.1: audit log history kept at least 12 months


LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")


def trail_buckets(env: Environment) -> list[Resource]:
    found = set()
    for trail in env.of_type("AWS::CloudTrail::Trail"):
        found |= references(trail.properties.get("S3BucketName")) & set(env.resources)
    return [env.resources[b] for b in sorted(found)]


def archive_gaps(bucket: Resource) -> Iterator[str]:
    """Why a prod trail bucket would not keep every log (and its old versions) a year, locked."""
    props = bucket.properties
    lock = props.get("ObjectLockConfiguration", {})
    retention = lock.get("Rule", {}).get("DefaultRetention", {})
    if props.get("ObjectLockEnabled") is not True or lock.get("ObjectLockEnabled") != "Enabled":
        yield "no S3 Object Lock"
    elif retention.get("Mode") not in LOCK_MODES:
        yield f"Object Lock mode {retention.get('Mode')!r} is not one of {', '.join(LOCK_MODES)}"
    elif not isinstance(retention.get("Days"), int) or retention["Days"] < ARCHIVE_DAYS:
        yield f"Object Lock keeps {retention.get('Days')!r} days, not {ARCHIVE_DAYS}+"
    if props.get("VersioningConfiguration", {}).get("Status") != "Enabled":
        yield "not versioned"
    for rule in props.get("LifecycleConfiguration", {}).get("Rules", []):
        if rule.get("Status") != "Enabled":
            continue
        current = rule.get("ExpirationInDays", ARCHIVE_DAYS)
        noncurrent = rule.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays", ARCHIVE_DAYS)
        for what, days in (("logs", current), ("noncurrent versions", noncurrent)):
            if not isinstance(days, int) or days < ARCHIVE_DAYS:
                yield f"lifecycle rule {rule.get('Id')!r} expires {what} after {days} days"


@check(
    "LS029",
    "R12",
    "Prod keeps the trail archive 365+ days under S3 Object Lock (old versions as long); dev "
    "has no Object Lock (it would stop destroy)",
    "https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock.html",
)
def trail_archive(env: Environment) -> Iterator[Flag]:
    for bucket in trail_buckets(env):
        if is_production(env):
            for gap in archive_gaps(bucket):
                yield Flag(bucket.logical_id, f"prod audit archive: {gap}")
        elif bucket.properties.get("ObjectLockEnabled") is True:
            yield Flag(bucket.logical_id, "Object Lock in dev: locked logs stop destroy")


@check(
    "LS030",
    "R14",
    "Every trail validates its log files (a digest chain an auditor can verify)",
    "https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-log-file-validation-intro.html",
)
def log_file_validation(env: Environment) -> Iterator[Flag]:
    for trail in env.of_type("AWS::CloudTrail::Trail"):
        if trail.properties.get("EnableLogFileValidation") is not True:
            yield Flag(trail.logical_id, "EnableLogFileValidation is not true")


def named_references(env: Environment, node: Any) -> Any:
    """`${Logical}` in a partly resolved Fn::Sub replaced by the name the template gives that
    resource (a bucket's BucketName), so a policy's ARNs can be compared with real ones."""
    if isinstance(node, list):
        return [named_references(env, item) for item in node]
    if isinstance(node, dict) and set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):

        def name(match: re.Match[str]) -> str:
            found = env.name_of({"Ref": match.group(1)})
            return found if isinstance(found, str) else match.group(0)

        return re.sub(r"\$\{([A-Za-z0-9]+)\}", name, node["Fn::Sub"])
    return node


def bucket_policy(env: Environment, bucket: str) -> dict[str, Any]:
    for policy in env.of_type("AWS::S3::BucketPolicy"):
        if bucket in references(policy.properties.get("Bucket")):
            document = policy.properties.get("PolicyDocument", {})
            return {
                "Statement": [
                    {
                        **st,
                        "Condition": {
                            op: {k: named_references(env, v) for k, v in tests.items()}
                            for op, tests in st.get("Condition", {}).items()
                        },
                    }
                    for st in statements(document)
                ]
            }
    return {}


@check(
    "LS031",
    "R12",
    "The documents and trail buckets write S3 server access logs into an SSE-S3 log bucket of "
    "the stack whose policy lets the logging service deliver for exactly them",
    "https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html",
)
def access_logging(env: Environment) -> Iterator[Flag]:
    buckets = {b.logical_id: b for b in env.of_type("AWS::S3::Bucket")}
    targets = {
        logical_id: references(
            b.properties.get("LoggingConfiguration", {}).get("DestinationBucketName")
        )
        & set(buckets)
        for logical_id, b in buckets.items()
    }
    destinations = set().union(*targets.values()) if targets else set()
    for logical_id, bucket in buckets.items():
        if logical_id in destinations:
            continue
        if not targets[logical_id]:
            yield Flag(logical_id, "no server access logging into a bucket of the stack")
            continue
        destination = next(iter(targets[logical_id]))
        source = f"arn:{env.context.partition}:s3:::{bucket.properties.get('BucketName')}"
        request = Request(
            ("Service", "logging.s3.amazonaws.com"),
            "s3:PutObject",
            {"aws:SourceArn": source, "aws:SourceAccount": env.context.account_id},
        )
        if not allows(bucket_policy(env, destination), request):
            yield Flag(logical_id, f"{destination}'s policy refuses its access-log delivery")
    for logical_id in sorted(destinations):
        rules = (
            buckets[logical_id]
            .properties.get("BucketEncryption", {})
            .get("ServerSideEncryptionConfiguration", [])
        )
        algorithms = {r.get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules}
        if algorithms - {"AES256"}:
            yield Flag(logical_id, "S3 delivers access logs only to SSE-S3 (AES256) buckets")


@check(
    "LS024",
    "R12",
    "No database log writes statement text (applicant data) to a log group: general and slow "
    "query logs off, no DML audit events",
    "https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/AuroraMySQL.Auditing.html",
)
def no_statement_logs(env: Environment) -> Iterator[Flag]:
    for _, owner, parameters in cluster_parameters(env):
        for name in STATEMENT_LOGS:
            if str(parameters.get(name, "0")).upper() in ("1", "ON"):
                yield Flag(owner, f"{name} is on: it logs full statements, applicant data included")
        events = {
            e.strip().upper() for e in str(parameters.get("server_audit_events", "")).split(",")
        }
        for event in sorted(events & STATEMENT_AUDIT):
            yield Flag(owner, f"server_audit_events {event} logs statement text")
