"""The project's own compliance checks: one small unit per rule, read like cfn-lint's rules.

Each check has an id, the SPEC requirement it enforces, a one-line description and a source
link, and returns findings for one environment (`template.Instance`). They iterate the
template, so a resource added later is judged without editing this file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path
from typing import Any

import cfnlint

from loanstack.template import (
    SIZE_LIMIT,
    Instance,
    Resource,
    as_list,
    minified,
    name_properties,
    policy_documents,
    references,
    statements,
    tags_of,
)

SPEC = "../shared/SPEC.md"
CFNLINT_DATA = Path(cfnlint.__file__).parent / "data" / "AdditionalSpecs"


@dataclass(frozen=True)
class Finding:
    check_id: str
    resource: str
    message: str

    def __str__(self) -> str:
        return f"{self.check_id} {self.resource}: {self.message}"


@dataclass(frozen=True)
class Check:
    id: str
    requirement: str
    description: str
    source: str
    run: Callable[[Instance], Iterator[Finding]]


CHECKS: list[Check] = []


def check(id: str, requirement: str, description: str, source: str) -> Callable[..., Any]:
    def register(fn: Callable[[Instance], Iterator[Finding]]) -> Callable[..., Any]:
        CHECKS.append(Check(id, requirement, description, source, fn))
        return fn

    return register


def run_checks(instance: Instance, only: str | None = None) -> list[Finding]:
    """All findings for one environment; `only` restricts to one requirement (e.g. "R12")."""
    return [
        finding
        for c in CHECKS
        if only is None or c.requirement == only
        for finding in c.run(instance)
    ]


# --- R1 -----------------------------------------------------------------------------------


@check(
    "LS001",
    "R1",
    f"Minified template stays under {SIZE_LIMIT} bytes (no staging bucket needed)",
    "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html",
)
def size_budget(instance: Instance) -> Iterator[Finding]:
    size = len(minified(instance.template).encode("utf-8"))
    if size >= SIZE_LIMIT:
        yield Finding("LS001", "template", f"minified size {size} bytes >= {SIZE_LIMIT}")


# --- R4 -----------------------------------------------------------------------------------


def name_pattern(instance: Instance) -> re.Pattern[str]:
    suffix = re.escape(instance.suffix)
    account = re.escape(instance.context.account_id)
    return re.compile(rf"[a-z0-9]+-[a-z0-9]+(?:-[a-z0-9]+)*-{suffix}(?:-{account})?")


def follows_convention(name: str, pattern: re.Pattern[str]) -> bool:
    """True when one path/ARN segment of `name` reads `{type}-{purpose}-{suffix}[-{account}]`."""
    return any(pattern.fullmatch(segment) for segment in re.split(r"[/:]", name))


def is_pointer(value: Any) -> bool:
    """A name property whose value is another resource's name (e.g. Permission.FunctionName)."""
    return (
        isinstance(value, dict) and set(value) <= {"Ref", "Fn::GetAtt"} and bool(references(value))
    )


@check(
    "LS004",
    "R4",
    "Every resource that takes a name is named {resource-type}-{purpose}-{EnvironmentSuffix}",
    f"{SPEC}#R4",
)
def naming(instance: Instance) -> Iterator[Finding]:
    pattern = name_pattern(instance)
    for r in instance.resources.values():
        names: list[tuple[str, Any]] = []
        for prop in name_properties(r.type):
            value = r.properties.get(prop)
            if value is None:
                yield Finding(
                    "LS004", r.logical_id, f"{prop} not set: CloudFormation would make one up"
                )
            elif not is_pointer(value):
                names.append((prop, value))
        tags = tags_of(r) or {}
        if "Name" in tags:
            names.append(("tag Name", tags["Name"]))
        for prop, value in names:
            if not isinstance(value, str) or not follows_convention(value, pattern):
                yield Finding(
                    "LS004", r.logical_id, f"{prop} {value!r} breaks the naming convention"
                )


# --- R5 -----------------------------------------------------------------------------------

REQUIRED_TAGS = {
    "Environment": "EnvironmentType",
    "CostCenter": "CostCenter",
    "MigrationPhase": "MigrationPhase",
}


@check(
    "LS005",
    "R5",
    "Every taggable resource carries Environment, CostCenter, MigrationPhase (EC2 also Name)",
    "https://docs.aws.amazon.com/whitepapers/latest/tagging-best-practices/tagging-best-practices.html",
)
def tagging(instance: Instance) -> Iterator[Finding]:
    for r in instance.resources.values():
        tags = tags_of(r)
        if tags is None:
            continue
        for key, parameter in REQUIRED_TAGS.items():
            if tags.get(key) != instance.parameters[parameter]:
                yield Finding(
                    "LS005", r.logical_id, f"tag {key} missing or not the {parameter} value"
                )
        if r.type.startswith("AWS::EC2::") and "Name" not in tags:
            yield Finding("LS005", r.logical_id, "EC2 resource without a Name tag")


# --- R6 -----------------------------------------------------------------------------------

KEEPING_POLICIES = {"Retain", "RetainExceptOnCreate", "Snapshot"}


@cache
def stateful_types() -> frozenset[str]:
    """Types whose data outlives a careless delete (cfn-lint's list, rule I3011)."""
    data = json.loads((CFNLINT_DATA / "StatefulResources.json").read_text())
    return frozenset(data["ResourceTypes"])


def protection_flags(node: Any, path: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key.startswith("DeletionProtection") and value in (True, "true", "ACTIVE"):
                yield f"{path}{key}"
            yield from protection_flags(value, f"{path}{key}.")
    elif isinstance(node, list):
        for item in node:
            yield from protection_flags(item, path)


@check(
    "LS006",
    "R6",
    "Fully destroyable: no Retain/Snapshot policy, no deletion protection; stateful types say Delete",
    "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-deletionpolicy.html",
)
def destroyable(instance: Instance) -> Iterator[Finding]:
    for r in instance.resources.values():
        for attr in ("DeletionPolicy", "UpdateReplacePolicy"):
            value = r.raw.get(attr)
            if value in KEEPING_POLICIES:
                yield Finding("LS006", r.logical_id, f"{attr} {value} keeps data after delete")
            elif r.type in stateful_types() and value != "Delete":
                yield Finding("LS006", r.logical_id, f"stateful resource must state {attr} Delete")
        for flag in protection_flags(r.properties):
            yield Finding("LS006", r.logical_id, f"{flag} is on")


# --- R7 -----------------------------------------------------------------------------------

OPEN_CIDRS = {"0.0.0.0/0", "::/0"}


@check(
    "LS007",
    "R7",
    "No security group accepts ingress from 0.0.0.0/0 or ::/0",
    "https://docs.aws.amazon.com/vpc/latest/userguide/vpc-security-best-practices.html",
)
def no_open_ingress(instance: Instance) -> Iterator[Finding]:
    for r in instance.of_type("AWS::EC2::SecurityGroup", "AWS::EC2::SecurityGroupIngress"):
        rules = r.properties.get("SecurityGroupIngress", [])
        if r.type == "AWS::EC2::SecurityGroupIngress":
            rules = [r.properties]
        for rule in rules:
            if {rule.get("CidrIp"), rule.get("CidrIpv6")} & OPEN_CIDRS:
                yield Finding("LS007", r.logical_id, "ingress open to the internet")


# --- R12 ----------------------------------------------------------------------------------

RETENTION_DAYS = 90


def depends_on(resource: Resource, target: str) -> bool:
    return target in references(resource.raw.get("Properties", {})) or target in as_list(
        resource.raw.get("DependsOn", [])
    )


def implicit_log_groups(instance: Instance) -> Iterator[tuple[Resource, Any]]:
    """(producer, log group name) for every group AWS would otherwise create on its own."""
    for fn in instance.of_type("AWS::Lambda::Function"):
        configured = fn.properties.get("LoggingConfig", {}).get("LogGroup")
        name = fn.properties.get("FunctionName")
        default = f"/aws/lambda/{name}" if isinstance(name, str) else None
        yield fn, instance.name_of(configured) if configured else default
    for db in instance.of_type("AWS::RDS::DBCluster", "AWS::RDS::DBInstance"):
        kind = "cluster" if db.type == "AWS::RDS::DBCluster" else "instance"
        ident = db.properties.get(
            "DBClusterIdentifier" if kind == "cluster" else "DBInstanceIdentifier"
        )
        for export in db.properties.get("EnableCloudwatchLogsExports", []):
            yield db, f"/aws/rds/{kind}/{ident}/{export}"
    for flow in instance.of_type("AWS::EC2::FlowLog"):
        if flow.properties.get("LogDestinationType", "cloud-watch-logs") == "cloud-watch-logs":
            yield flow, instance.name_of(flow.properties.get("LogGroupName"))
    for trail in instance.of_type("AWS::CloudTrail::Trail"):
        arn = trail.properties.get("CloudWatchLogsLogGroupArn")
        targets = references(arn) & set(instance.resources) if arn else set()
        yield trail, instance.name_of({"Ref": targets.pop()}) if targets else None


@check(
    "LS012",
    "R12",
    "Every log group is declared, keeps exactly 90 days, is KMS-encrypted and exists before its writer",
    "https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html",
)
def log_groups(instance: Instance) -> Iterator[Finding]:
    declared: dict[str, Resource] = {}
    for group in instance.of_type("AWS::Logs::LogGroup"):
        name = group.properties.get("LogGroupName")
        if not isinstance(name, str):
            yield Finding("LS012", group.logical_id, "LogGroupName must be explicit")
        else:
            declared[name] = group
        if group.properties.get("RetentionInDays") != RETENTION_DAYS:
            days = group.properties.get("RetentionInDays")
            yield Finding(
                "LS012", group.logical_id, f"RetentionInDays {days}, not {RETENTION_DAYS}"
            )
        if not group.properties.get("KmsKeyId"):
            yield Finding("LS012", group.logical_id, "no KmsKeyId: not encrypted with the CMK")
    for producer, name in implicit_log_groups(instance):
        target = declared.get(name) if isinstance(name, str) else None
        if target is None:
            yield Finding("LS012", producer.logical_id, f"writes to undeclared log group {name!r}")
        elif not depends_on(producer, target.logical_id):
            yield Finding(
                "LS012",
                producer.logical_id,
                f"does not depend on {target.logical_id}: AWS could create the group first",
            )


# --- R15 ----------------------------------------------------------------------------------


@cache
def iam_actions() -> dict[str, dict[str, Any]]:
    """service prefix -> {action (lower case): {"Resources": [...]}} (cfn-lint's IAM data)."""
    data = json.loads((CFNLINT_DATA / "Policies.json").read_text())
    return {service: spec.get("Actions", {}) for service, spec in data.items()}


def matching_actions(action: str) -> list[dict[str, Any]] | None:
    """Specs of the actions an (possibly wildcarded) action names; None when unknown."""
    service, _, name = action.lower().partition(":")
    actions = iam_actions().get(service)
    if actions is None:
        return None
    matches = [spec for key, spec in actions.items() if fnmatchcase(key, name)]
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
def least_privilege(instance: Instance) -> Iterator[Finding]:
    for r in instance.resources.values():
        for label, document in policy_documents(r):
            for st in statements(document):
                where = f"{r.logical_id}/{label}"
                if "NotAction" in st or "NotResource" in st:
                    yield Finding("LS015", where, "NotAction/NotResource grants by exclusion")
                if st.get("Effect") != "Allow":
                    continue
                actions = [str(a) for a in as_list(st.get("Action", []))]
                for action in actions:
                    if action == "*" or action.endswith(":*"):
                        yield Finding("LS015", where, f"action {action} is a wildcard")
                    elif matching_actions(action) is None:
                        yield Finding("LS015", where, f"action {action} is unknown")
                if "*" in as_list(st.get("Resource", [])):
                    for action in actions:
                        if not supports_no_resource_scoping(action):
                            yield Finding("LS015", where, f"{action} on Resource * can be scoped")
        trust = r.properties.get("AssumeRolePolicyDocument")
        if r.type == "AWS::IAM::Role" and trust:
            for st in statements(trust):
                if st.get("Principal") in ("*", {"AWS": "*"}):
                    yield Finding("LS015", r.logical_id, "anyone may assume the role")


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
def no_hard_coded_partition(instance: Instance) -> Iterator[Finding]:
    for path, text in strings(instance.template):
        match = HARD_CODED.search(text)
        if match:
            yield Finding("LS016", path, f"hard-coded {match.group(0)!r}")
