"""Does a resource policy (a KMS key policy) let a given request through?

The key policy is the one place where a mistake stops a service at deploy time (CloudTrail
refuses to create a trail whose key it cannot describe) or silently over-grants (a wildcard
that matches another stack's log groups). Reading the JSON is not enough to see either, so the
checks replay the requests each service documents it makes and ask this small evaluator for
the answer: explicit deny wins, then any allow, else denied.

It covers what key policies in this project use: Principal (AWS account, service, "*"),
Action wildcards, and the String/Arn/Null/Bool condition operators with `IfExists`. A value
that is still symbolic (a reference resolved only at deploy time) never matches.
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from loanstack.template import as_list, statements


@dataclass(frozen=True)
class Request:
    """One call as the key policy sees it: who, what, and the request context."""

    principal: tuple[str, str]  # ("Service", "cloudtrail.amazonaws.com") or ("AWS", account id)
    action: str
    context: Mapping[str, str] = field(default_factory=dict)


def allows(document: Mapping[str, Any], request: Request) -> bool:
    matching = [st for st in statements(document) if applies(st, request)]
    if any(st.get("Effect") == "Deny" for st in matching):
        return False
    return any(st.get("Effect") == "Allow" for st in matching)


def applies(statement: Mapping[str, Any], request: Request) -> bool:
    return (
        principal_matches(statement.get("Principal"), request.principal)
        and any(
            fnmatchcase(request.action.lower(), str(a).lower())
            for a in as_list(statement.get("Action", []))
        )
        and conditions_hold(statement.get("Condition", {}), request.context)
    )


def principal_matches(declared: Any, principal: tuple[str, str]) -> bool:
    if declared == "*":
        return True
    if not isinstance(declared, dict):
        return False
    kind, who = principal
    for value in as_list(declared.get(kind, [])):
        if value == "*" or value == who:
            return True
        # a key policy naming an account (its root ARN) admits that account's IAM principals
        if kind == "AWS" and isinstance(value, str) and value.endswith(f"::{who}:root"):
            return True
    return False


def conditions_hold(conditions: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    lowered = {k.lower(): v for k, v in context.items()}
    for operator, tests in conditions.items():
        for key, expected in tests.items():
            if not condition_holds(operator, lowered.get(key.lower()), as_list(expected)):
                return False
    return True


def condition_holds(operator: str, actual: str | None, expected: list[Any]) -> bool:
    base, if_exists = operator.removesuffix("IfExists"), operator.endswith("IfExists")
    if base == "Null":
        return (actual is None) == (str(expected[0]).lower() == "true")
    if actual is None:
        return if_exists
    values = [v for v in expected if isinstance(v, str | bool)]
    if base in ("StringEquals", "ArnEquals"):
        return actual in values
    if base in ("StringLike", "ArnLike"):
        return any(fnmatchcase(actual, str(v)) for v in values)
    if base in ("StringNotEquals", "ArnNotEquals"):
        return actual not in values
    if base in ("StringNotLike", "ArnNotLike"):
        return not any(fnmatchcase(actual, str(v)) for v in values)
    if base == "Bool":
        return actual.lower() in (str(v).lower() for v in values)
    raise ValueError(f"condition operator {operator} is not modelled")


@dataclass(frozen=True)
class AssumeRoleContext:
    """What a service principal puts in the request context when it calls sts:AssumeRole on a
    role of ours, as that service documents it; `source` is the page that says so."""

    keys: frozenset[str]
    source: str


# One sourced table, read by check LS020 and by the emulator (emulator/iam.py): a trust-policy
# condition on a key the service never sends can never hold, so the service cannot assume the
# role (CloudTrail then refuses the trail: InvalidCloudWatchLogsRoleArnException).
ASSUME_ROLE_CONTEXT: dict[str, AssumeRoleContext] = {
    # "Role policy document for CloudTrail to use CloudWatch Logs": the confused-deputy keys
    # aws:SourceArn / aws:SourceAccount are not applicable to this role.
    "cloudtrail.amazonaws.com": AssumeRoleContext(
        frozenset(),
        "https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-required-policy-for-cloudwatch-logs.html",
    ),
    # VPC Flow Logs documents both keys for its delivery role's trust policy.
    "vpc-flow-logs.amazonaws.com": AssumeRoleContext(
        frozenset({"aws:sourceaccount", "aws:sourcearn"}),
        "https://docs.aws.amazon.com/vpc/latest/userguide/flow-logs-iam-role.html",
    ),
    # AWS Backup's service role ("Assign a role", AWS Backup developer guide): no source keys
    # documented for its AssumeRole, so its trust names the service alone.
    "backup.amazonaws.com": AssumeRoleContext(
        frozenset(),
        "https://docs.aws.amazon.com/aws-backup/latest/devguide/iam-service-roles.html",
    ),
    # A Lambda execution role's trust policy: the page documents no source keys for it.
    "lambda.amazonaws.com": AssumeRoleContext(
        frozenset(),
        "https://docs.aws.amazon.com/lambda/latest/dg/lambda-intro-execution-role.html",
    ),
}


def assume_role_request(service: str, known: Mapping[str, str]) -> Request:
    """The sts:AssumeRole request `service` really makes: of the values `known` about the
    caller (its resource ARN, its account), only the keys the service documents sending."""
    documented = ASSUME_ROLE_CONTEXT.get(service)
    keys = documented.keys if documented is not None else frozenset()
    context = {k: v for k, v in known.items() if k.lower() in keys}
    return Request(("Service", service), "sts:AssumeRole", context)
