"""S3 bucket policies, on moto's S3 backend."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

from moto.s3.models import s3_backends

from loanstack.emulator import fence
from loanstack.emulator.base import Extension


def s3(account_id: str) -> Any:
    return s3_backends[account_id]["aws"]


class BucketPolicy(Extension):
    TYPE = "AWS::S3::BucketPolicy"

    @classmethod
    def create(
        cls, name: str, props: dict[str, Any], account_id: str, region: str, **request: Any
    ) -> Extension:
        s3(account_id).put_bucket_policy(
            props["Bucket"], json.dumps(props["PolicyDocument"]).encode()
        )
        return cls(props["Bucket"], account_id, region)

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        s3(self.account_id).delete_bucket_policy(self.physical_id)


# the request context S3 sees from the emulator's clients (AWS serves S3 over HTTPS)
REQUEST_CONTEXT = {"aws:SecureTransport": "true"}

OPERATORS: dict[str, Any] = {
    "Bool": lambda expected, actual: actual.lower() == expected.lower(),
    "StringEquals": lambda expected, actual: actual == expected,
    "StringNotEquals": lambda expected, actual: actual != expected,
    "StringLike": lambda expected, actual: fnmatch.fnmatchcase(actual, expected),
    "ArnEquals": lambda expected, actual: actual == expected,
    "ArnLike": lambda expected, actual: fnmatch.fnmatchcase(actual, expected),
}


def conditions_hold(conditions: dict[str, dict[str, Any]], context: dict[str, str]) -> bool:
    """IAM condition semantics: every operator block holds; a key absent from the request
    makes its condition false; any listed value may match. moto skips operators it does not
    know (`Bool` among them), which makes a conditional Deny deny everything."""
    for operator, keys in conditions.items():
        test = OPERATORS.get(operator)
        if test is None:
            raise NotImplementedError(
                f"the emulator does not evaluate condition operator {operator}"
            )
        for key, expected in keys.items():
            actual = context.get(key)
            values = expected if isinstance(expected, list) else [expected]
            if actual is None or not any(test(str(v), actual) for v in values):
                return False
    return True


def statement_permits(
    self: Any,
    action: str,
    resource: str = "*",
    principal: str | None = None,
    incoming_condition_values: dict[str, str] | None = None,
) -> Any:
    """Bucket policies as S3 evaluates them for requests that arrive over TLS.

    The emulator listens on loopback HTTP where AWS serves HTTPS, so requests carry
    `aws:SecureTransport=true`, and conditions are evaluated (`conditions_hold`).
    """
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult

    moto_permits = fence.original(IAMPolicyStatement, "is_action_permitted")
    condition = self._statement.get("Condition")
    if condition is not None and incoming_condition_values is REQUEST_CONTEXT:
        if not conditions_hold(condition, REQUEST_CONTEXT):
            return PermissionResult.NEUTRAL
        unconditional = IAMPolicyStatement(
            {k: v for k, v in self._statement.items() if k != "Condition"}
        )
        return moto_permits(unconditional, action, resource, principal, None)
    return moto_permits(self, action, resource, principal, incoming_condition_values)


def bucket_permission(self: Any, action: str, resource: str) -> Any:
    """A bucket's policy, judged with the request's conditions (`statement_permits`)."""
    from moto.iam.access_control import IAMPolicy, PermissionResult

    if self.policy is None:
        return PermissionResult.NEUTRAL
    policy = IAMPolicy(self.policy.decode())
    return policy.is_action_permitted(action, resource, incoming_condition_values=REQUEST_CONTEXT)


class Bucket(Extension):
    """Replaces moto's model, which applies only encryption and tags from the template:
    versioning, Object Lock, access logging, public access block, ownership, lifecycle and
    event notifications too."""

    TYPE = "AWS::S3::Bucket"
    NAME_PROPERTY = "BucketName"
    ATTRIBUTES = ("Arn", "DomainName", "RegionalDomainName")

    @classmethod
    def create(
        cls, name: str, props: dict[str, Any], account_id: str, region: str, **request: Any
    ) -> Extension:
        from moto.s3.models import FakeBucket

        FakeBucket.create_from_cloudformation_json(name, {"Properties": props}, account_id, region)
        backend = s3(account_id)
        if "VersioningConfiguration" in props:
            backend.put_bucket_versioning(name, props["VersioningConfiguration"]["Status"])
        if "PublicAccessBlockConfiguration" in props:
            backend.put_public_access_block(name, props["PublicAccessBlockConfiguration"])
        for rule in (props.get("OwnershipControls") or {}).get("Rules", []):
            backend.put_bucket_ownership_controls(name, rule["ObjectOwnership"])
        if str(props.get("ObjectLockEnabled")).lower() == "true":  # prod's trail archive (R12)
            default = ((props.get("ObjectLockConfiguration") or {}).get("Rule") or {}).get(
                "DefaultRetention"
            ) or {}
            days = default.get("Days")
            backend.put_object_lock_configuration(
                name, True, default.get("Mode"), int(days) if days is not None else None
            )
        logging = props.get("LoggingConfiguration")
        if logging:  # S3 server access logs; S3 checks the target's grants at delivery, not here
            backend.get_bucket(name).logging = {
                "TargetBucket": logging["DestinationBucketName"],
                "TargetPrefix": logging.get("LogFilePrefix", ""),
            }
        rules = (props.get("LifecycleConfiguration") or {}).get("Rules", [])
        if rules:
            backend.put_bucket_lifecycle(name, [lifecycle_rule(r) for r in rules])
        lambdas = (props.get("NotificationConfiguration") or {}).get("LambdaConfigurations", [])
        if lambdas:
            backend.get_bucket(name).set_notification_configuration(
                {"CloudFunctionConfiguration": [lambda_notification(c) for c in lambdas]}
            )
        from moto.utilities.utils import get_partition

        partition = get_partition(region)
        return cls(
            name,
            account_id,
            region,
            Arn=f"arn:{partition}:s3:::{name}",
            DomainName=f"{name}.s3.amazonaws.com",
            RegionalDomainName=f"{name}.s3.{region}.amazonaws.com",
        )

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        if s3(self.account_id).delete_bucket(self.physical_id) is None:  # moto: "not empty"
            raise RuntimeError(f"BucketNotEmpty: {self.physical_id} still holds objects")


def lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's lifecycle rule in the shape of S3's API (what moto's backend reads)."""
    converted: dict[str, Any] = {
        "ID": rule.get("Id"),
        "Status": rule["Status"],
        "Filter": {"Prefix": rule.get("Prefix", "")},
    }
    if "ExpirationInDays" in rule:
        converted["Expiration"] = {"Days": rule["ExpirationInDays"]}
    for key in ("NoncurrentVersionExpiration", "AbortIncompleteMultipartUpload"):
        if key in rule:
            converted[key] = rule[key]
    return converted


def lambda_notification(config: dict[str, Any]) -> dict[str, Any]:
    rules = ((config.get("Filter") or {}).get("S3Key") or {}).get("Rules", [])
    notification: dict[str, Any] = {"CloudFunction": config["Function"], "Event": [config["Event"]]}
    if rules:
        notification["Filter"] = {"S3Key": {"FilterRule": rules}}
    return notification
