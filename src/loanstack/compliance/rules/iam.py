"""R15: IAM. Least privilege (no wildcard action, no `*` resource an action can be scoped
for), trust policies conditioned only on keys the service sends, and ARNs that name no
partition or region literally."""

from __future__ import annotations

import re
from collections.abc import Iterator
from fnmatch import fnmatchcase
from functools import cache
from typing import Any

from loanstack.cfnlint_data import iam_actions
from loanstack.compliance.rules.registry import Flag, check
from loanstack.policy import ASSUME_ROLE_CONTEXT
from loanstack.template import Environment, as_list, policy_documents, statements


@cache
def matching_actions(action: str) -> tuple[dict[str, Any], ...] | None:
    """Specs of the actions an (possibly wildcarded) action names; None when unknown. Kept per
    action: cfn-lint's table is fixed for the process, and matching a name against every action
    of its service was a quarter of the checks' CPU (the same actions recur in every run)."""
    service, _, name = action.lower().partition(":")
    actions = iam_actions().get(service)
    if actions is None:
        return None
    matches = tuple(spec for key, spec in actions.items() if fnmatchcase(key, name))
    return matches or None


def supports_no_resource_scoping(action: str) -> bool:
    specs = matching_actions(action)
    return specs is not None and all(not spec.get("Resources") for spec in specs)


@check(
    "LS015",
    "R15",
    'Least privilege: no "Action": "*", no service-wide wildcard, no "Resource": "*" unless unscopable',
    "https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html",
)
def least_privilege(env: Environment) -> Iterator[Flag]:
    for r in env.resources.values():
        for label, document in policy_documents(r):
            for st in statements(document):
                where = f"{r.logical_id}/{label}"
                if "NotAction" in st or "NotResource" in st:
                    yield Flag(where, "NotAction/NotResource grants by exclusion")
                if st.get("Effect") != "Allow":
                    continue
                actions = [str(a) for a in as_list(st.get("Action", []))]
                for action in actions:
                    if action == "*" or action.endswith(":*"):
                        yield Flag(where, f"action {action} is a wildcard")
                    elif matching_actions(action) is None:
                        yield Flag(where, f"action {action} is unknown")
                if "*" in as_list(st.get("Resource", [])):
                    for action in actions:
                        if not supports_no_resource_scoping(action):
                            yield Flag(where, f"{action} on Resource * can be scoped")
        trust = r.properties.get("AssumeRolePolicyDocument")
        if r.type == "AWS::IAM::Role" and trust:
            for st in statements(trust):
                if st.get("Principal") in ("*", {"AWS": "*"}):
                    yield Flag(r.logical_id, "anyone may assume the role")


def assumed_by(st: dict[str, Any]) -> list[str]:
    """The service principals an Allow statement lets call sts:AssumeRole."""
    actions = [str(a).lower() for a in as_list(st.get("Action", []))]
    if st.get("Effect") != "Allow" or not any(fnmatchcase("sts:assumerole", a) for a in actions):
        return []
    principal = st.get("Principal")
    services = principal.get("Service", []) if isinstance(principal, dict) else []
    return [str(s) for s in as_list(services)]


@check(
    "LS020",
    "R15",
    "Trust policies condition a service principal only on keys that service documents sending",
    "https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-required-policy-for-cloudwatch-logs.html",
)
def trust_conditions(env: Environment) -> Iterator[Flag]:
    for role in env.of_type("AWS::IAM::Role"):
        for st in statements(role.properties.get("AssumeRolePolicyDocument", {})):
            keys = {k.lower() for tests in st.get("Condition", {}).values() for k in tests}
            for service in assumed_by(st):
                documented = ASSUME_ROLE_CONTEXT.get(service)
                if documented is None:
                    yield Flag(
                        role.logical_id,
                        f"{service} has no sourced entry in policy.ASSUME_ROLE_CONTEXT",
                    )
                    continue
                for key in sorted(keys - documented.keys):
                    yield Flag(
                        role.logical_id,
                        f"condition on {key}, which {service} does not send for "
                        f"sts:AssumeRole ({documented.source}): it can never assume the role",
                    )


HARD_CODED = re.compile(
    r"arn:aws(?:-[a-z]+)*:|\b(?:us|eu|ap|sa|ca|me|af|il|mx|cn)-(?:gov-)?[a-z]+-\d\b"
)


def strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            if key != "ZipFile":  # function code is checked as Python, not as template text
                yield from strings(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from strings(item, f"{path}/{i}")


@check(
    "LS016",
    "R15",
    "No hard-coded partition or region: ARNs use ${AWS::Partition}, regions ${AWS::Region}",
    "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/pseudo-parameter-reference.html",
)
def no_hard_coded_partition(env: Environment) -> Iterator[Flag]:
    for path, text in strings(env.template):
        match = HARD_CODED.search(text)
        if match:
            yield Flag(path, f"hard-coded {match.group(0)!r}")
