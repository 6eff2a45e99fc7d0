"""R4 and R5: names and tags. Every name follows `{type}-{purpose}-{suffix}`, names unique per
account carry the region and fit AWS's length limits at the longest suffix and region, security
groups avoid the prefix EC2 refuses, and every taggable resource carries the required tags."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from loanstack.compliance.rules.registry import SPEC, Flag, check
from loanstack.names import ENVIRONMENT_SUFFIX, ENVIRONMENT_TYPE
from loanstack.template import Environment, Resource, name_properties, references, tags_of


def name_pattern(env: Environment) -> re.Pattern[str]:
    suffix = re.escape(env.suffix)
    account = re.escape(env.context.account_id)
    region = re.escape(env.context.region)
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
def naming(env: Environment) -> Iterator[Flag]:
    pattern = name_pattern(env)
    for r in env.resources.values():
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


def global_names(env: Environment) -> Iterator[tuple[Resource, str, Any, int]]:
    """(resource, property, resolved name, limit) for each name unique per account/partition."""
    for r in env.resources.values():
        if r.type not in GLOBAL_NAMES:
            continue
        if (
            r.type == "AWS::CloudTrail::Trail"
            and r.properties.get("IsMultiRegionTrail") is not True
        ):
            continue  # a single-region trail's name is unique per region only
        prop, limit, _ = GLOBAL_NAMES[r.type]
        yield r, prop, r.properties.get(prop), limit


def longest_suffix(env: Environment) -> int:
    spec = env.template.get("Parameters", {}).get(ENVIRONMENT_SUFFIX, {})
    return int(spec.get("MaxLength", len(env.suffix)))


@check(
    "LS021",
    "R4",
    "Names unique per account (IAM roles, S3 buckets, a multi-region trail) carry the region "
    "and fit at the longest suffix and region",
    "https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-iam-role.html",
)
def regional_global_names(env: Environment) -> Iterator[Flag]:
    region = env.context.region
    for r, prop, name, limit in global_names(env):
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
        worst = len(name) + longest_suffix(env) - len(env.suffix) + LONGEST_REGION - len(region)
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
def security_group_names(env: Environment) -> Iterator[Flag]:
    for group in env.of_type("AWS::EC2::SecurityGroup"):
        name = group.properties.get("GroupName")
        if isinstance(name, str) and name.lower().startswith("sg-"):
            yield Flag(group.logical_id, f"GroupName {name!r} starts with sg-")


REQUIRED_TAGS = {
    "Environment": ENVIRONMENT_TYPE,
    "CostCenter": "CostCenter",
    "MigrationPhase": "MigrationPhase",
}


@check(
    "LS005",
    "R5",
    "Every taggable resource carries Environment, CostCenter, MigrationPhase (EC2 also Name)",
    "https://docs.aws.amazon.com/whitepapers/latest/tagging-best-practices/tagging-best-practices.html",
)
def tagging(env: Environment) -> Iterator[Flag]:
    for r in env.resources.values():
        tags = tags_of(r)
        if tags is None:
            continue
        for key, parameter in REQUIRED_TAGS.items():
            if tags.get(key) != env.parameters[parameter]:
                yield Flag(r.logical_id, f"tag {key} missing or not the {parameter} value")
        if r.type.startswith("AWS::EC2::") and "Name" not in tags:
            yield Flag(r.logical_id, "EC2 resource without a Name tag")
