"""The template and the checks in the other partitions: rendered for a China Region (aws-cn) and
for GovCloud (aws-us-gov), every check of `loanstack check` holds as in the standard partition,
and every ARN the template produces is in the partition it is deployed to.

ARNs name their partition (`arn:aws-cn:`, `arn:aws-us-gov:`); the template writes them with
`AWS::Partition` and the checks build the ARNs they replay (trails, log groups, alarms, buckets)
from the same context, so a key policy judged for us-east-1 is judged the same in cn-north-1.
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/pseudo-parameter-reference.html
https://docs.amazonaws.cn/en_us/aws/latest/userguide/ARNs.html
https://docs.aws.amazon.com/govcloud-us/latest/UserGuide/using-govcloud-arns.html
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from loanstack import template
from loanstack.compliance import field_tools
from loanstack.compliance.rules.registry import run_checks

PARTITIONS = [("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")]
ENVIRONMENTS = ["dev", "prod"]


def rendered(env_type: str, region: str, partition: str) -> template.Environment:
    parameters = template.judged_parameters(env_type, "part1")
    return template.instantiate(
        template.load(), parameters, template.Context(region=region, partition=partition)
    )


def arns(node: Any) -> Iterator[str]:
    """Every resolved string of the template that is an ARN."""
    if isinstance(node, dict):
        for value in node.values():
            yield from arns(value)
    elif isinstance(node, list):
        for value in node:
            yield from arns(value)
    elif isinstance(node, str) and node.startswith("arn:"):
        yield node


@pytest.mark.parametrize("env_type", ENVIRONMENTS)
@pytest.mark.parametrize(("region", "partition"), PARTITIONS)
def test_every_check_holds_in_the_partition(env_type: str, region: str, partition: str) -> None:
    standard = {
        (f.check_id, f.resource) for f in run_checks(rendered(env_type, "us-east-1", "aws"))
    }
    found = run_checks(rendered(env_type, region, partition))
    assert [f for f in found if (f.check_id, f.resource) not in standard] == []


@pytest.mark.parametrize(("region", "partition"), PARTITIONS)
def test_every_arn_the_template_produces_is_in_the_partition(region: str, partition: str) -> None:
    env = rendered("prod", region, partition)
    produced = [a for r in env.resources.values() for a in arns(r.properties)]
    assert produced, "the template produces ARNs (policies, conditions, managed policies)"
    assert [a for a in produced if not a.startswith(f"arn:{partition}:")] == []


def test_cfn_lint_reports_nothing_for_the_other_partitions_regions() -> None:
    """cfn-lint's resource specifications per region: every type, property and value the template
    uses exists in cn-north-1 and us-gov-west-1 as in the client's regions (D5's gate)."""
    regions = [region for region, _ in PARTITIONS]
    found = field_tools.cfn_lint(template.TEMPLATE_PATH, regions)
    assert [f"{m['Rule']['Id']} {m['Message']}" for m in found] == []
