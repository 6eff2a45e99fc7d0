"""The deploy options a bank sets on the stack itself (issue 21 item 9, issue 22 item 1): stack
tags, a service role, notification ARNs, termination protection (on for prod), a stack policy
for prod that denies replacing or deleting what holds the data, rollback triggers bound to the
stack's own alarms, and DisableRollback.

CloudFormation applies a stack policy to every update, change sets included; ExecuteChangeSet
has no StackPolicyDuringUpdateBody (only UpdateStack has), so `--allow-replace` sets a policy
without that resource's Deny for the one update and puts the full policy back afterwards, as the
stack policy guide describes for a temporary override.
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/protect-stack-resources.html
https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ExecuteChangeSet.html
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from loanstack import template
from loanstack.aws.target import Target
from loanstack.errors import UsageError

# What holds or unlocks the loan data and the audit trail (issue 22 item 1): the cluster, its
# secrets, the key, and the bucket the trail writes to (found through the trail's S3BucketName).
PROTECTED_TYPES = ("AWS::RDS::DBCluster", "AWS::SecretsManager::Secret", "AWS::KMS::Key")
PROTECTED_ACTIONS = ["Update:Replace", "Update:Delete"]
# "You can specify a maximum of five rollback triggers" (RollbackConfiguration.RollbackTriggers)
# https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_RollbackConfiguration.html
MAX_ROLLBACK_TRIGGERS = 5


@dataclass
class StackOptions:
    """What `deploy` sets on the stack besides the template and its parameters."""

    tags: dict[str, str] = field(default_factory=dict)
    role_arn: str | None = None
    notification_arns: list[str] = field(default_factory=list)
    termination_protection: bool | None = None  # None: on for prod, off for dev
    allow_replace: list[str] = field(default_factory=list)
    disable_rollback: bool = False
    monitoring_minutes: int = 0

    def protect(self, env: str) -> bool:
        if self.termination_protection is None:
            return env == "prod"
        return self.termination_protection


def protected_ids(doc: dict[str, Any], parameters: dict[str, str]) -> list[str]:
    """The logical ids a prod stack policy protects, read from the template model."""
    resources = template.instantiate(doc, parameters).resources
    found = [n for n, r in resources.items() if r.type in PROTECTED_TYPES]
    for trail in (r for r in resources.values() if r.type == "AWS::CloudTrail::Trail"):
        bucket = trail.raw.get("Properties", {}).get("S3BucketName")
        if isinstance(bucket, dict) and bucket.get("Ref") in resources:
            found.append(bucket["Ref"])
    return sorted(set(found))


def stack_policy(protected: list[str], allowed: Sequence[str] = ()) -> str:
    """Every update allowed, except replacing or deleting a protected resource not in
    `allowed` (an explicit Deny wins over the Allow)."""
    statements: list[dict[str, Any]] = [
        {"Effect": "Allow", "Action": "Update:*", "Principal": "*", "Resource": "*"}
    ]
    denied = [f"LogicalResourceId/{n}" for n in protected if n not in allowed]
    if denied:
        statements.append(
            {"Effect": "Deny", "Action": PROTECTED_ACTIONS, "Principal": "*", "Resource": denied}
        )
    return json.dumps({"Statement": statements}, sort_keys=True)


def check_allowed(allowed: list[str], protected: list[str], env: str) -> None:
    """`--allow-replace` names a protected resource of a prod stack, or it is a mistake."""
    if allowed and env != "prod":
        raise UsageError("--allow-replace applies to prod stacks (dev has no stack policy)")
    unknown = [n for n in allowed if n not in protected]
    if unknown:
        raise UsageError(
            f"--allow-replace {unknown[0]}: not a protected resource; protected: "
            + ", ".join(protected)
        )


def stack_tags(env: str, given: dict[str, str]) -> list[dict[str, str]]:
    """The Environment tag and the user's (propagated by CloudFormation to what supports it);
    an Environment tag that contradicts --env is refused."""
    if given.get("Environment", env) != env:
        raise UsageError(f"--tags Environment={given['Environment']} contradicts --env {env}")
    return [{"Key": k, "Value": v} for k, v in {**given, "Environment": env}.items()]


def health_alarms(doc: dict[str, Any], parameters: dict[str, str]) -> list[str]:
    """The stack's service-health alarms, in template order: those on AWS/* metrics (the
    functions, the queue, the database), not the audit alarms on the trail's metric filters
    (what an attacker or a mistake did, not whether this update broke the service)."""
    resources = template.instantiate(doc, parameters).resources
    return [
        n
        for n, r in resources.items()
        if r.type == "AWS::CloudWatch::Alarm"
        and str(r.properties.get("Namespace", "")).startswith("AWS/")
    ]


def rollback_configuration(
    stack_id: str, resources: list[dict[str, Any]], alarms: list[str], minutes: int
) -> dict[str, Any] | None:
    """Rollback triggers on the deployed stack's own health alarms (their ARNs built from the
    stack's partition, region and account), at most five, in template order."""
    names = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}
    found = [names[a] for a in alarms if a in names][:MAX_ROLLBACK_TRIGGERS]
    if not found:
        return None
    _, partition, _, region, account = stack_id.split(":")[:5]
    prefix = f"arn:{partition}:cloudwatch:{region}:{account}:alarm:"
    triggers = [{"Arn": prefix + name, "Type": "AWS::CloudWatch::Alarm"} for name in found]
    return {"RollbackTriggers": triggers, "MonitoringTimeInMinutes": minutes}


@contextmanager
def policy_for_update(
    target: Target, name: str, protected: list[str], allowed: list[str], prod: bool
) -> Iterator[None]:
    """The full policy in force during an update, or one without the allowed resources' Deny
    for this update only, the full one put back afterwards whatever happened."""
    cfn = target.client("cloudformation")
    if not prod:
        yield
        return
    cfn.set_stack_policy(StackName=name, StackPolicyBody=stack_policy(protected, allowed))
    try:
        yield
    finally:
        if allowed:
            cfn.set_stack_policy(StackName=name, StackPolicyBody=stack_policy(protected))


def settle(target: Target, stack: dict[str, Any], env: str, options: StackOptions,
           protected: list[str]) -> list[str]:  # fmt: skip
    """After a create (or an update with nothing to change): the stack policy for prod and the
    termination protection wanted; returns what was changed, one line each."""
    cfn = target.client("cloudformation")
    name, done = stack["StackName"], []
    if env == "prod":
        current = cfn.get_stack_policy(StackName=name).get("StackPolicyBody")
        wanted = stack_policy(protected)
        if current != wanted:
            cfn.set_stack_policy(StackName=name, StackPolicyBody=wanted)
            done.append(f"stack policy: replacing or deleting {', '.join(protected)} is denied")
    protect = options.protect(env)
    if bool(stack.get("EnableTerminationProtection")) != protect:
        cfn.update_termination_protection(StackName=name, EnableTerminationProtection=protect)
        done.append(f"termination protection {'on' if protect else 'off'}")
    return done
