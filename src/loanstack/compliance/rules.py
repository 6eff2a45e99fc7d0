"""The project's own compliance checks: one small unit per rule, read like cfn-lint's rules.

Each check has an id, the requirement it enforces (docs/requirements.md), a one-line description and a source
link, and returns findings for one environment (`template.Environment`). They iterate the
template, so a resource added later is judged without editing this file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, NamedTuple

from loanstack import contract
from loanstack.cfnlint_data import iam_actions, stateful_types
from loanstack.policy import ASSUME_ROLE_CONTEXT, Request, allows
from loanstack.template import (
    LANGUAGE_EXTENSIONS,
    POLICY_ATTRIBUTES,
    SIZE_BUDGET,
    Environment,
    Resource,
    as_list,
    minified,
    name_properties,
    policy_documents,
    references,
    statements,
    tags_of,
    transforms,
)

SPEC = "docs/requirements.md"  # the requirements, in this repository


@dataclass(frozen=True)
class Finding:
    """One rule broken by one part of the template; `path` is a JSON pointer (RFC 6901) to that
    part, as cfn-lint's matches carry one ("" is the whole template)."""

    check_id: str
    resource: str
    message: str
    path: str = ""

    def __str__(self) -> str:
        return f"{self.check_id} {self.resource}: {self.message}"


class Flag(NamedTuple):
    """What a rule yields: the part (a logical id, an output, or "template") and what is wrong;
    `Check.run` stamps it with the check's id and a path."""

    resource: str
    message: str


@dataclass(frozen=True)
class Check:
    id: str
    requirement: str
    description: str
    source: str
    judge: Callable[[Environment], Iterator[Flag]]

    def run(self, instance: Environment) -> Iterator[Finding]:
        for flag in self.judge(instance):
            yield Finding(self.id, flag.resource, flag.message, pointer(instance, flag.resource))


def pointer(instance: Environment, part: str) -> str:
    """The JSON pointer of a resource or output in the template ("" for anything else)."""
    escaped = part.replace("~", "~0").replace("/", "~1")
    for section in ("Resources", "Outputs", "Parameters", "Conditions"):
        if part in (instance.template.get(section) or {}):
            return f"/{section}/{escaped}"
    return ""


CHECKS: list[Check] = []


def check(id: str, requirement: str, description: str, source: str) -> Callable[..., Any]:
    """Register a rule under its id; the id is written here once, not in each finding."""

    def register(fn: Callable[[Environment], Iterator[Flag]]) -> Callable[..., Any]:
        CHECKS.append(Check(id, requirement, description, source, fn))
        return fn

    return register


def run_checks(instance: Environment, only: str | None = None) -> list[Finding]:
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
    f"Minified template stays within the {SIZE_BUDGET:,}-byte budget (staged in S3 by the tool)",
    "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html",
)
def size_budget(instance: Environment) -> Iterator[Flag]:
    size = len(minified(instance.template).encode("utf-8"))
    if size > SIZE_BUDGET:
        yield Flag("template", f"minified size {size:,} bytes > {SIZE_BUDGET:,}")


@check(
    "LS002",
    "R1b",
    "The client's logical ids, condition, outputs and Name tags exist as their tests expect",
    f"{SPEC}#R1b",
)
def client_contract(instance: Environment) -> Iterator[Flag]:
    declared = instance.template.get("Resources", {})
    for logical_id, condition in contract.RESOURCES.items():
        raw = declared.get(logical_id)
        if raw is None:
            yield Flag(logical_id, "logical id missing (the client's tests name it)")
        elif raw.get("Type") != contract.TYPES[logical_id]:
            yield Flag(logical_id, f"is {raw.get('Type')}, not {contract.TYPES[logical_id]}")
        elif raw.get("Condition") != condition:
            yield Flag(logical_id, f"condition {raw.get('Condition')}, not {condition}")
    for name in contract.CONDITIONS:
        if name not in instance.template.get("Conditions", {}):
            yield Flag(name, "condition missing")
    for key in contract.OUTPUTS:
        if key not in instance.template.get("Outputs", {}):
            yield Flag(key, "output missing")
    for logical_id in contract.NAME_TAGGED:
        resource = instance.resources.get(logical_id)
        if resource is not None and "Name" not in (tags_of(resource) or {}):
            yield Flag(logical_id, "no Name tag")
    for logical_id, prop, value in contract.PROPERTIES:
        found = declared.get(logical_id, {}).get("Properties", {}).get(prop)
        if found != value:
            yield Flag(logical_id, f"{prop} is {found!r}, their tests expect {value!r}")
    for logical_id, needed in contract.DEPENDS_ON.items():
        have = as_list(declared.get(logical_id, {}).get("DependsOn", []))
        for target in needed:
            if target not in have:
                yield Flag(logical_id, f"DependsOn does not name {target}")
    parameters = instance.template.get("Parameters", {})
    for name, attribute, value in contract.PARAMETERS:
        if parameters.get(name, {}).get(attribute) != value:
            yield Flag(name, f"{attribute} is not {value!r}")
    for name, prefix in contract.OFFERED:
        allowed = parameters.get(name, {}).get("AllowedValues", [])
        if not any(str(v).startswith(prefix) for v in allowed):
            yield Flag(name, f"no {prefix}* value among AllowedValues")


# --- R4 -----------------------------------------------------------------------------------


def name_pattern(instance: Environment) -> re.Pattern[str]:
    suffix = re.escape(instance.suffix)
    account = re.escape(instance.context.account_id)
    region = re.escape(instance.context.region)
    return re.compile(rf"[a-z0-9]+-[a-z0-9]+(?:-[a-z0-9]+)*-{suffix}(?:-{account})?(?:-{region})?")


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
def naming(instance: Environment) -> Iterator[Flag]:
    pattern = name_pattern(instance)
    for r in instance.resources.values():
        names: list[tuple[str, Any]] = []
        for prop in name_properties(r.type):
            value = r.properties.get(prop)
            if value is None:
                yield Flag(r.logical_id, f"{prop} not set: CloudFormation would make one up")
            elif not is_pointer(value):
                names.append((prop, value))
        tags = tags_of(r) or {}
        if "Name" in tags:
            names.append(("tag Name", tags["Name"]))
        for prop, value in names:
            if not isinstance(value, str) or not follows_convention(value, pattern):
                yield Flag(r.logical_id, f"{prop} {value!r} breaks the naming convention")


# A name unique per account or partition (R4 amended): the same suffix must deploy in two
# regions of one account, so each carries the region. type -> (name property, AWS's length limit,
# the page that gives the limit); a trail's name is account-wide only when it is multi-region.
GLOBAL_NAMES: dict[str, tuple[str, int, str]] = {
    "AWS::IAM::Role": (
        "RoleName",
        64,
        "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html",
    ),
    "AWS::IAM::ManagedPolicy": (
        "ManagedPolicyName",
        128,
        "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html",
    ),
    "AWS::IAM::InstanceProfile": (
        "InstanceProfileName",
        128,
        "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html",
    ),
    "AWS::IAM::User": (
        "UserName",
        64,
        "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html",
    ),
    "AWS::S3::Bucket": (
        "BucketName",
        63,
        "https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html",
    ),
    "AWS::CloudTrail::Trail": (
        "TrailName",
        128,
        "https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_CreateTrail.html",
    ),
}
# The longest region code AWS has published (us-isof-south-1): names are sized for it.
LONGEST_REGION = 15


def global_names(instance: Environment) -> Iterator[tuple[Resource, str, Any, int]]:
    """(resource, property, resolved name, limit) for each name unique per account/partition."""
    for r in instance.resources.values():
        if r.type not in GLOBAL_NAMES:
            continue
        if (
            r.type == "AWS::CloudTrail::Trail"
            and r.properties.get("IsMultiRegionTrail") is not True
        ):
            continue  # a single-region trail's name is unique per region only
        prop, limit, _ = GLOBAL_NAMES[r.type]
        yield r, prop, r.properties.get(prop), limit


def longest_suffix(instance: Environment) -> int:
    spec = instance.template.get("Parameters", {}).get("EnvironmentSuffix", {})
    return int(spec.get("MaxLength", len(instance.suffix)))


@check(
    "LS021",
    "R4",
    "Names unique per account (IAM roles, S3 buckets, a multi-region trail) carry the region "
    "and fit at the longest suffix and region",
    "https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-iam-role.html",
)
def regional_global_names(instance: Environment) -> Iterator[Flag]:
    region = instance.context.region
    for r, prop, name, limit in global_names(instance):
        if not isinstance(name, str):
            yield Flag(r.logical_id, f"{prop} not set: a generated name cannot be checked")
            continue
        if not re.search(rf"(?:^|-){re.escape(region)}(?:-|$)", name):
            yield Flag(
                r.logical_id,
                f"{prop} {name!r} is unique per account but carries no region: the same "
                "suffix fails in a second region",
            )
            continue
        worst = (
            len(name)
            + longest_suffix(instance)
            - len(instance.suffix)
            + LONGEST_REGION
            - len(region)
        )
        if worst > limit:
            yield Flag(
                r.logical_id,
                f"{prop} reaches {worst} characters at the longest suffix and region "
                f"(limit {limit})",
            )


@check(
    "LS003",
    "R4",
    "Security group names do not start with sg- (EC2 refuses them: InvalidParameterValue)",
    "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateSecurityGroup.html",
)
def security_group_names(instance: Environment) -> Iterator[Flag]:
    for group in instance.of_type("AWS::EC2::SecurityGroup"):
        name = group.properties.get("GroupName")
        if isinstance(name, str) and name.lower().startswith("sg-"):
            yield Flag(group.logical_id, f"GroupName {name!r} starts with sg-")


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
def tagging(instance: Environment) -> Iterator[Flag]:
    for r in instance.resources.values():
        tags = tags_of(r)
        if tags is None:
            continue
        for key, parameter in REQUIRED_TAGS.items():
            if tags.get(key) != instance.parameters[parameter]:
                yield Flag(r.logical_id, f"tag {key} missing or not the {parameter} value")
        if r.type.startswith("AWS::EC2::") and "Name" not in tags:
            yield Flag(r.logical_id, "EC2 resource without a Name tag")


# --- R6 -----------------------------------------------------------------------------------

KEEPING_POLICIES = {"Retain", "RetainExceptOnCreate", "Snapshot"}
KEPT = ("Retain", "RetainExceptOnCreate")  # DeletionPolicy options that leave the resource
# The client's tests forbid the literal "Retain"; RetainExceptOnCreate keeps a resource on every
# delete except the rollback of a failed create (nothing to keep then):
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-deletionpolicy.html
CLIENT_FORBIDDEN = "Retain"


def is_production(instance: Environment) -> bool:
    return instance.parameters.get("EnvironmentType") == "prod"


def protection_flags(node: Any, path: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key.startswith("DeletionProtection") and value in (True, "true", "ACTIVE"):
                yield f"{path}{key}"
            yield from protection_flags(value, f"{path}{key}.")
    elif isinstance(node, list):
        for item in node:
            yield from protection_flags(item, path)


def survivors(instance: Environment) -> dict[str, dict[str, tuple[str, ...]]]:
    """Prod's profile (R6 amended): logical id -> policy attribute -> the options it may have.

    The cluster leaves a final snapshot on delete and on a replacing update; what that snapshot
    and the documents need survives a delete: the key that encrypts the cluster, every bucket
    (documents, trail archive, access logs) and every backup vault. A replacing update cannot lose the buckets
    (CloudFormation refuses to replace a custom-named resource) and a replaced key only enters
    its 30-day deletion window, so their UpdateReplacePolicy is not constrained here.
    """
    keep: dict[str, dict[str, tuple[str, ...]]] = {}
    for cluster in instance.of_type("AWS::RDS::DBCluster"):
        keep[cluster.logical_id] = {
            "DeletionPolicy": ("Snapshot",),
            "UpdateReplacePolicy": ("Snapshot",),
        }
        key = key_of(instance, cluster.properties.get("KmsKeyId"))
        if key is not None:
            keep[key] = {"DeletionPolicy": KEPT}
    for kept in instance.of_type("AWS::S3::Bucket", "AWS::Backup::BackupVault"):
        keep[kept.logical_id] = {"DeletionPolicy": KEPT}  # a vault holds the recovery points
    return keep


@check(
    "LS006",
    "R6",
    "Dev fully destroyable (no Retain/Snapshot, no deletion protection, stateful types say "
    "Delete); prod keeps a final cluster snapshot, its key and the buckets",
    "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-deletionpolicy.html",
)
def destroyable(instance: Environment) -> Iterator[Flag]:
    profile = survivors(instance) if is_production(instance) else {}
    for r in instance.resources.values():
        wanted = profile.get(r.logical_id, {})
        for attr in POLICY_ATTRIBUTES:
            value = r.raw.get(attr)
            shown = value if isinstance(value, str) else json.dumps(value)
            if attr in wanted:
                if value not in wanted[attr]:
                    yield Flag(
                        r.logical_id,
                        f"{attr} {shown}: prod must keep it ({' or '.join(wanted[attr])})",
                    )
            elif shown in KEEPING_POLICIES:
                yield Flag(r.logical_id, f"{attr} {shown} keeps data after delete")
            elif r.type in stateful_types() and value != "Delete":
                yield Flag(r.logical_id, f"stateful resource must state {attr} Delete")
        for flag in protection_flags(r.properties):
            yield Flag(r.logical_id, f"{flag} is on")


@check(
    "LS026",
    "R1",
    "An intrinsic function in DeletionPolicy/UpdateReplacePolicy comes with the "
    "AWS::LanguageExtensions transform (CloudFormation refuses it otherwise)",
    "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/function-refs-in-policy-attributes.html",
)
def policy_functions_declared(instance: Environment) -> Iterator[Flag]:
    if LANGUAGE_EXTENSIONS in transforms(instance.template):
        return
    for logical_id, raw in instance.template.get("Resources", {}).items():
        for attr in POLICY_ATTRIBUTES:
            if isinstance(raw.get(attr), dict):
                yield Flag(logical_id, f"{attr} is a function without {LANGUAGE_EXTENSIONS}")


def literal_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from literal_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from literal_strings(item)


@check(
    "LS027",
    "R1b",
    'The client\'s tests hold: no literal "Retain" anywhere, DBCluster.DeletionProtection the '
    "literal false",
    f"{SPEC}#R6",
)
def client_literals(instance: Environment) -> Iterator[Flag]:
    for logical_id, raw in instance.template.get("Resources", {}).items():
        if any(text == CLIENT_FORBIDDEN for text in literal_strings(raw)):
            yield Flag(
                logical_id, f'the literal "{CLIENT_FORBIDDEN}" (the client\'s tests refuse it)'
            )
        if (
            raw.get("Type") == "AWS::RDS::DBCluster"
            and raw.get("Properties", {}).get("DeletionProtection") is not False
        ):
            yield Flag(logical_id, "DeletionProtection is not the literal false")


DELETION_WINDOW = {"prod": 30, "dev": 7}  # days; KMS allows 7-30


@check(
    "LS028",
    "R6",
    "A scheduled key deletion waits 30 days in prod (time to cancel it), 7 in dev",
    "https://docs.aws.amazon.com/kms/latest/developerguide/deleting-keys.html",
)
def key_deletion_window(instance: Environment) -> Iterator[Flag]:
    wanted = DELETION_WINDOW["prod" if is_production(instance) else "dev"]
    for key in instance.of_type("AWS::KMS::Key"):
        days = key.properties.get("PendingWindowInDays", 30)
        if days != wanted:
            yield Flag(key.logical_id, f"PendingWindowInDays {days}, not {wanted}")


# --- R7 -----------------------------------------------------------------------------------

OPEN_CIDRS = {"0.0.0.0/0", "::/0"}


@check(
    "LS007",
    "R7",
    "No security group accepts ingress from 0.0.0.0/0 or ::/0",
    "https://docs.aws.amazon.com/vpc/latest/userguide/vpc-security-best-practices.html",
)
def no_open_ingress(instance: Environment) -> Iterator[Flag]:
    for r in instance.of_type("AWS::EC2::SecurityGroup", "AWS::EC2::SecurityGroupIngress"):
        rules = r.properties.get("SecurityGroupIngress", [])
        if r.type == "AWS::EC2::SecurityGroupIngress":
            rules = [r.properties]
        for rule in rules:
            if {rule.get("CidrIp"), rule.get("CidrIpv6")} & OPEN_CIDRS:
                yield Flag(r.logical_id, "ingress open to the internet")


@check(
    "LS017",
    "R7",
    "Subnets holding Lambda ENIs admit inbound TCP 1024-65535 (replies; NACLs are stateless)",
    "https://docs.aws.amazon.com/vpc/latest/userguide/custom-network-acl.html#nacl-ephemeral-ports",
)
def lambda_return_traffic(instance: Environment) -> Iterator[Flag]:
    for subnet in sorted(lambda_subnets(instance)):
        acl = subnet_acl(instance, subnet)
        if acl is None:
            continue  # the default ACL of a VPC allows all traffic
        if not covers(admitted_tcp_ports(instance, acl), EPHEMERAL):
            yield Flag(
                acl,
                f"{subnet} holds Lambda ENIs but {acl} does not admit TCP "
                f"{EPHEMERAL[0]}-{EPHEMERAL[1]} inbound: replies to low ports are dropped",
            )


def pinnable_zone(instance: Environment, node: Any) -> bool:
    """`Fn::Select [i, Fn::If [cond, [Ref zone parameters], Fn::GetAZs]]`: the zone is a
    parameter when pinned and a list position only as the fallback (the client's tests read
    the Fn::Select and its index)."""
    select = node.get("Fn::Select") if isinstance(node, dict) else None
    if not (isinstance(select, list) and len(select) == 2 and isinstance(select[1], dict)):
        return False
    choice = select[1].get("Fn::If")
    if not (isinstance(choice, list) and len(choice) == 3):
        return False
    parameters = set(instance.template.get("Parameters", {}))
    branches = choice[1:]
    pinned = [b for b in branches if isinstance(b, list) and b]
    fallback = [b for b in branches if isinstance(b, dict) and "Fn::GetAZs" in b]
    return (
        len(pinned) == 1
        and len(fallback) == 1
        and all(isinstance(z, dict) and z.get("Ref") in parameters for z in pinned[0])
    )


@check(
    "LS022",
    "R7",
    "Availability zones are pinnable parameters; Fn::GetAZs list order is only the fallback",
    "https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/intrinsic-function-reference-getavailabilityzones.html",
)
def pinned_zones(instance: Environment) -> Iterator[Flag]:
    for r in instance.resources.values():
        raw = r.raw.get("Properties", {}).get("AvailabilityZone")
        if raw is not None and not pinnable_zone(instance, raw):
            yield Flag(
                r.logical_id,
                "AvailabilityZone by Fn::GetAZs position only: the order changes when AWS adds "
                "a zone, and the next update replaces the resource",
            )


EPHEMERAL = (1024, 65535)  # the range Lambda ENIs (and NAT gateways) pick source ports from


def lambda_subnets(instance: Environment) -> set[str]:
    found: set[str] = set()
    for fn in instance.of_type("AWS::Lambda::Function"):
        for subnet in fn.properties.get("VpcConfig", {}).get("SubnetIds", []):
            found |= references(subnet)
    return found


def subnet_acl(instance: Environment, subnet: str) -> str | None:
    for assoc in instance.of_type("AWS::EC2::SubnetNetworkAclAssociation"):
        if subnet in references(assoc.properties.get("SubnetId")):
            return next(iter(references(assoc.properties.get("NetworkAclId"))), None)
    return None


def admitted_tcp_ports(instance: Environment, acl: str) -> list[tuple[int, int]]:
    """Port ranges an inbound allow rule from anywhere opens, before any deny (rule order)."""
    entries = sorted(
        (
            e.properties
            for e in instance.of_type("AWS::EC2::NetworkAclEntry")
            if acl in references(e.properties.get("NetworkAclId"))
            and not e.properties.get("Egress", False)
            and str(e.properties.get("Protocol")) in ("6", "-1")
        ),
        key=lambda p: int(p.get("RuleNumber", 0)),
    )
    opened: list[tuple[int, int]] = []
    for entry in entries:
        if entry.get("CidrBlock") != "0.0.0.0/0":
            continue
        ports = entry.get("PortRange", {"From": 0, "To": 65535})
        span = (int(ports["From"]), int(ports["To"]))
        if str(entry.get("Protocol")) == "-1":
            span = (0, 65535)
        if entry.get("RuleAction") == "deny":
            break  # a deny before the allow would shadow it; treat it as the end
        opened.append(span)
    return opened


def covers(spans: list[tuple[int, int]], wanted: tuple[int, int]) -> bool:
    reach = wanted[0]
    for low, high in sorted(spans):
        if low <= reach <= high:
            reach = high + 1
    return reach > wanted[1]


# --- R8 -----------------------------------------------------------------------------------

CONTEXT_FREE_ACTIONS = ("kms:describekey", "kms:getkeypolicy", "kms:getkeyrotationstatus")


@check(
    "LS008",
    "R8",
    "No key policy grants DescribeKey under an encryption-context condition (it never matches)",
    "https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-encryption-context",
)
def context_conditions(instance: Environment) -> Iterator[Flag]:
    for key in instance.of_type("AWS::KMS::Key"):
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


def key_of(instance: Environment, node: Any) -> str | None:
    keys = {k.logical_id for k in instance.of_type("AWS::KMS::Key")}
    found = references(node) & keys
    return found.pop() if found else None


def arn(instance: Environment, service: str, resource: str, region: bool = True) -> str:
    c = instance.context
    return f"arn:{c.partition}:{service}:{c.region if region else ''}:{c.account_id}:{resource}"


def key_requests(instance: Environment) -> Iterator[tuple[str, str, Request]]:
    """(key, who asks, request) for each call AWS documents a service making with the key."""
    c = instance.context
    for trail in instance.of_type("AWS::CloudTrail::Trail"):
        key = key_of(instance, trail.properties.get("KMSKeyId"))
        if key is None:
            continue
        trail_arn = arn(instance, "cloudtrail", f"trail/{trail.properties.get('TrailName')}")
        source = {"aws:SourceArn": trail_arn, "aws:SourceAccount": c.account_id}
        principal = ("Service", "cloudtrail.amazonaws.com")
        yield key, trail.logical_id, Request(principal, "kms:DescribeKey", source)
        ctx = {**source, "kms:EncryptionContext:aws:cloudtrail:arn": trail_arn}
        yield key, trail.logical_id, Request(principal, "kms:GenerateDataKey", ctx)
        bucket = instance.resources.get(
            next(iter(references(trail.properties.get("S3BucketName"))), "")
        )
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
    for group in instance.of_type("AWS::Logs::LogGroup"):
        key = key_of(instance, group.properties.get("KmsKeyId"))
        if key is None:
            continue
        ctx = {
            "kms:EncryptionContext:aws:logs:arn": arn(
                instance, "logs", f"log-group:{group.properties.get('LogGroupName')}"
            )
        }
        principal = ("Service", f"logs.{c.region}.amazonaws.com")
        for action in ("kms:GenerateDataKey", "kms:Decrypt"):
            yield key, group.logical_id, Request(principal, action, ctx)
    topics = {
        t.logical_id: key_of(instance, t.properties.get("KmsMasterKeyId"))
        for t in instance.of_type("AWS::SNS::Topic")
    }
    for sub in instance.of_type("AWS::RDS::EventSubscription"):
        # RDS publishes as events.rds.amazonaws.com, its SourceArn the RDS resource's ARN:
        # https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/USER_Events.GrantingPermissions.html
        kind = RDS_ARN_KIND.get(str(sub.properties.get("SourceType")), "db")
        targets = references(sub.properties.get("SnsTopicArn")) & set(topics)
        for key in {topics[t] for t in targets} - {None}:
            for source in sub.properties.get("SourceIds", []):
                source_arn = arn(instance, "rds", f"{kind}:{instance.name_of(source)}")
                ctx = {"aws:SourceArn": source_arn, "aws:SourceAccount": c.account_id}
                principal = ("Service", "events.rds.amazonaws.com")
                for action in ("kms:GenerateDataKey", "kms:Decrypt"):
                    yield str(key), sub.logical_id, Request(principal, action, ctx)
    for vault in instance.of_type("AWS::Backup::BackupVault"):
        # Creating a vault on a customer managed key: AWS Backup calls KMS for the caller (so
        # through backup.<region>) with these actions ("Create a backup vault"):
        # https://docs.aws.amazon.com/aws-backup/latest/devguide/create-a-vault.html
        key = key_of(instance, vault.properties.get("EncryptionKeyArn"))
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
    for alarm in instance.of_type("AWS::CloudWatch::Alarm"):
        targets = references(alarm.properties.get("AlarmActions", [])) & set(topics)
        for key in {topics[t] for t in targets} - {None}:
            alarm_arn = arn(instance, "cloudwatch", f"alarm:{alarm.properties.get('AlarmName')}")
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


def lookalikes(request: Request, instance: Environment) -> Iterator[Request]:
    """The same request on behalf of resources that are not this stack's: a name with another
    prefix or suffix, the same name in another region, or in another account."""
    region, account = instance.context.region, instance.context.account_id
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
def key_users_allowed(instance: Environment) -> Iterator[Flag]:
    for key, user, request in key_requests(instance):
        policy = instance.resources[key].properties.get("KeyPolicy", {})
        if not allows(policy, request):
            who = request.principal[1] if request.principal[0] == "Service" else "the account"
            yield Flag(key, f"denies {request.action} by {who} for {user}")


@check(
    "LS019",
    "R8",
    "Service grants on a key name this stack's resources exactly (no lookalike of another stack)",
    "https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html",
)
def key_users_scoped(instance: Environment) -> Iterator[Flag]:
    for key, user, request in key_requests(instance):
        if request.principal[0] != "Service":
            continue
        policy = instance.resources[key].properties.get("KeyPolicy", {})
        other = next((o for o in lookalikes(request, instance) if allows(policy, o)), None)
        if other is not None:
            yield Flag(
                key,
                f"lets {request.principal[1]} {request.action} beyond {user}: {other.context}",
            )


# --- R9 -----------------------------------------------------------------------------------


def burstable(instance_class: Any) -> bool:
    return isinstance(instance_class, str) and instance_class.startswith("db.t")


@check(
    "LS009",
    "R9",
    "No T instance class reachable on a cluster with the Data API (AWS does not run it there)",
    "https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.html#data-api.limitations",
)
def data_api_instance_class(instance: Environment) -> Iterator[Flag]:
    clusters = {
        c.logical_id
        for c in instance.of_type("AWS::RDS::DBCluster")
        if c.properties.get("EnableHttpEndpoint") is True
    }
    for db in instance.of_type("AWS::RDS::DBInstance"):
        if not references(db.properties.get("DBClusterIdentifier")) & clusters:
            continue
        raw = db.raw.get("Properties", {}).get("DBInstanceClass")
        offered = [db.properties.get("DBInstanceClass")]
        for parameter in references(raw) & set(instance.template.get("Parameters", {})):
            spec = instance.template["Parameters"][parameter]
            offered += [spec.get("Default"), *spec.get("AllowedValues", [])]
        for cls in sorted({str(c) for c in offered if burstable(c)}):
            yield Flag(db.logical_id, f"{cls} offered: the Data API refuses T classes")


def cluster_parameters(instance: Environment) -> Iterator[tuple[Resource, str, dict[str, Any]]]:
    """(cluster, its parameter group's logical id, the group's parameters) per Aurora cluster;
    the cluster itself when it names no group of this template (AWS's default group)."""
    for cluster in instance.of_type("AWS::RDS::DBCluster"):
        named = references(cluster.properties.get("DBClusterParameterGroupName"))
        groups = [instance.resources[g] for g in sorted(named) if g in instance.resources]
        if not groups:
            yield cluster, cluster.logical_id, {}
        for group in groups:
            yield cluster, group.logical_id, dict(group.properties.get("Parameters") or {})


STRICT_MODES = {"STRICT_TRANS_TABLES", "STRICT_ALL_TABLES"}


@check(
    "LS023",
    "R9",
    "The cluster's parameter group sets a strict sql_mode (Aurora's default clips, not refuses)",
    "https://dev.mysql.com/doc/refman/8.0/en/out-of-range-and-overflow.html",
)
def strict_sql_mode(instance: Environment) -> Iterator[Flag]:
    for cluster, owner, parameters in cluster_parameters(instance):
        modes = {m.strip().upper() for m in str(parameters.get("sql_mode", "")).split(",")}
        if not modes & STRICT_MODES:
            yield Flag(
                owner,
                f"sql_mode of {cluster.logical_id} is not strict: an out-of-range or over-long "
                "value is clipped with a warning instead of refused",
            )


# --- R11 ----------------------------------------------------------------------------------


@check(
    "LS011",
    "R11",
    "Reserved concurrency only where a parameter can switch it off (accounts keep 100 unreserved)",
    "https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html",
)
def switchable_reservations(instance: Environment) -> Iterator[Flag]:
    for fn in instance.of_type("AWS::Lambda::Function"):
        raw = fn.raw.get("Properties", {}).get("ReservedConcurrentExecutions")
        if raw is None:
            continue
        switch = raw.get("Fn::If") if isinstance(raw, dict) else None
        if not (switch and {"Ref": "AWS::NoValue"} in switch[1:]):
            yield Flag(
                fn.logical_id,
                "reserved concurrency cannot be switched off: CREATE fails on an account "
                "without the headroom",
            )


# --- R12 ----------------------------------------------------------------------------------

RETENTION_DAYS = 90


def depends_on(resource: Resource, target: str) -> bool:
    return target in references(resource.raw.get("Properties", {})) or target in as_list(
        resource.raw.get("DependsOn", [])
    )


def implicit_log_groups(instance: Environment) -> Iterator[tuple[Resource, Any]]:
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
def log_groups(instance: Environment) -> Iterator[Flag]:
    declared: dict[str, Resource] = {}
    for group in instance.of_type("AWS::Logs::LogGroup"):
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
    for producer, name in implicit_log_groups(instance):
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


def trail_buckets(instance: Environment) -> list[Resource]:
    found = set()
    for trail in instance.of_type("AWS::CloudTrail::Trail"):
        found |= references(trail.properties.get("S3BucketName")) & set(instance.resources)
    return [instance.resources[b] for b in sorted(found)]


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
def trail_archive(instance: Environment) -> Iterator[Flag]:
    for bucket in trail_buckets(instance):
        if is_production(instance):
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
def log_file_validation(instance: Environment) -> Iterator[Flag]:
    for trail in instance.of_type("AWS::CloudTrail::Trail"):
        if trail.properties.get("EnableLogFileValidation") is not True:
            yield Flag(trail.logical_id, "EnableLogFileValidation is not true")


def named_references(instance: Environment, node: Any) -> Any:
    """`${Logical}` in a partly resolved Fn::Sub replaced by the name the template gives that
    resource (a bucket's BucketName), so a policy's ARNs can be compared with real ones."""
    if isinstance(node, list):
        return [named_references(instance, item) for item in node]
    if isinstance(node, dict) and set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):

        def name(match: re.Match[str]) -> str:
            found = instance.name_of({"Ref": match.group(1)})
            return found if isinstance(found, str) else match.group(0)

        return re.sub(r"\$\{([A-Za-z0-9]+)\}", name, node["Fn::Sub"])
    return node


def bucket_policy(instance: Environment, bucket: str) -> dict[str, Any]:
    for policy in instance.of_type("AWS::S3::BucketPolicy"):
        if bucket in references(policy.properties.get("Bucket")):
            document = policy.properties.get("PolicyDocument", {})
            return {
                "Statement": [
                    {
                        **st,
                        "Condition": {
                            op: {k: named_references(instance, v) for k, v in tests.items()}
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
def access_logging(instance: Environment) -> Iterator[Flag]:
    buckets = {b.logical_id: b for b in instance.of_type("AWS::S3::Bucket")}
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
        source = f"arn:{instance.context.partition}:s3:::{bucket.properties.get('BucketName')}"
        request = Request(
            ("Service", "logging.s3.amazonaws.com"),
            "s3:PutObject",
            {"aws:SourceArn": source, "aws:SourceAccount": instance.context.account_id},
        )
        if not allows(bucket_policy(instance, destination), request):
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


BACKUP_DAYS = {"daily": 35, "monthly": 365}  # issue 22 item 6 (the bank's profile)


@check(
    "LS032",
    "R6",
    "A backup plan keeps daily recovery points 35+ days and monthly ones 365+, in a vault of the "
    "stack encrypted with the stack's key, and selects the cluster; only prod has one",
    "https://docs.aws.amazon.com/aws-backup/latest/devguide/creating-a-backup-plan.html",
)
def backup_plans(instance: Environment) -> Iterator[Flag]:
    vaults = {v.logical_id: v for v in instance.of_type("AWS::Backup::BackupVault")}
    plans = list(instance.of_type("AWS::Backup::BackupPlan"))
    if not plans and is_production(instance) and any(instance.of_type("AWS::RDS::DBCluster")):
        yield Flag("template", "prod without an AWS Backup plan for the cluster")
    if plans and not is_production(instance):
        for plan in plans:
            yield Flag(plan.logical_id, "a backup plan in dev: its vault would stop destroy")
    for vault in vaults.values():
        if key_of(instance, vault.properties.get("EncryptionKeyArn")) is None:
            yield Flag(vault.logical_id, "not encrypted with the stack's key")
    clusters = {c.logical_id for c in instance.of_type("AWS::RDS::DBCluster")}
    for plan in plans:
        rules = plan.properties.get("BackupPlan", {}).get("BackupPlanRule", [])
        for rule in rules:
            name = str(rule.get("RuleName"))
            days = rule.get("Lifecycle", {}).get("DeleteAfterDays")
            if name in BACKUP_DAYS and (not isinstance(days, int) or days < BACKUP_DAYS[name]):
                yield Flag(plan.logical_id, f"{name} recovery points kept {days} days")
            if not references(rule.get("TargetBackupVault")) & set(vaults):
                yield Flag(plan.logical_id, f"rule {name} does not back up into the stack's vault")
        missing = set(BACKUP_DAYS) - {str(r.get("RuleName")) for r in rules}
        if missing:
            yield Flag(plan.logical_id, f"no {' and no '.join(sorted(missing))} rule")
        selected: set[str] = set()
        for selection in instance.of_type("AWS::Backup::BackupSelection"):
            if plan.logical_id in references(selection.properties.get("BackupPlanId")):
                chosen = selection.properties.get("BackupSelection", {}).get("Resources", [])
                selected |= references(chosen)
        if not clusters <= selected:
            yield Flag(plan.logical_id, "does not select the cluster")


@check(
    "LS024",
    "R12",
    "No database log writes statement text (applicant data) to a log group: general and slow "
    "query logs off, no DML audit events",
    "https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/AuroraMySQL.Auditing.html",
)
def no_statement_logs(instance: Environment) -> Iterator[Flag]:
    for _, owner, parameters in cluster_parameters(instance):
        for name in STATEMENT_LOGS:
            if str(parameters.get(name, "0")).upper() in ("1", "ON"):
                yield Flag(owner, f"{name} is on: it logs full statements, applicant data included")
        events = {
            e.strip().upper() for e in str(parameters.get("server_audit_events", "")).split(",")
        }
        for event in sorted(events & STATEMENT_AUDIT):
            yield Flag(owner, f"server_audit_events {event} logs statement text")


# --- R14 ----------------------------------------------------------------------------------


def alarmed_metrics(instance: Environment, logical_id: str) -> set[str]:
    """Metric names of the alarms that watch one resource (through a dimension)."""
    return {
        str(a.properties.get("MetricName"))
        for a in instance.of_type("AWS::CloudWatch::Alarm")
        if logical_id in references(a.properties.get("Dimensions", []))
    }


@check(
    "LS025",
    "R14",
    "A Serverless v2 writer is alarmed on ACUUtilization, not on FreeableMemory (relative to the "
    "maximum ACUs, it may never fall low)",
    "https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-serverless-v2.viewing.monitoring.html",
)
def serverless_alarms(instance: Environment) -> Iterator[Flag]:
    for db in instance.of_type("AWS::RDS::DBInstance"):
        if db.properties.get("DBInstanceClass") != "db.serverless":
            continue
        if db.properties.get("PromotionTier", 1) != 0:
            continue  # the writer; a reader follows it
        metrics = alarmed_metrics(instance, db.logical_id)
        if "ACUUtilization" not in metrics:
            yield Flag(db.logical_id, "Serverless v2 writer without an ACUUtilization alarm")
        if "FreeableMemory" in metrics:
            yield Flag(
                db.logical_id,
                "FreeableMemory alarm on Serverless v2: measured against the maximum ACUs, "
                "a low threshold may never be crossed",
            )


# --- R15 ----------------------------------------------------------------------------------


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
def least_privilege(instance: Environment) -> Iterator[Flag]:
    for r in instance.resources.values():
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
def trust_conditions(instance: Environment) -> Iterator[Flag]:
    for role in instance.of_type("AWS::IAM::Role"):
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
def no_hard_coded_partition(instance: Environment) -> Iterator[Flag]:
    for path, text in strings(instance.template):
        match = HARD_CODED.search(text)
        if match:
            yield Flag(path, f"hard-coded {match.group(0)!r}")
