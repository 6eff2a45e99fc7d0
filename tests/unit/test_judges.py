"""The two outside judges of SPEC D5 (amended), parliament and cfripper: they run on both
environments as deployed, find nothing without a reviewed reason, and bite on defects."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from loanstack.compliance import judges, report
from tests.support.helpers import build


def verdicts(doc: dict[str, Any], env_type: str = "dev") -> set[tuple[str, str, str]]:
    # the suffix `loanstack check` judges with (test_check_report.py's too): the same
    # environment, so the session judges it once (compliance/judge_cache.py)
    env = build(doc, env_type, EnvironmentSuffix="check")
    found = judges.parliament_verdicts(env) + judges.cfripper_verdicts(env)
    return {(v.judge, v.rule, v.resource.split("/")[0]) for v in found}


def test_d5_both_judges_find_only_reviewed_exceptions(
    pristine: dict[str, Any], env_type: str
) -> None:
    unreasoned = verdicts(pristine, env_type) - set(judges.exceptions())
    assert unreasoned == set()


def test_d5_every_exception_is_still_needed_and_reasoned(pristine: dict[str, Any]) -> None:
    found = verdicts(pristine, "dev") | verdicts(pristine, "prod")
    for key, reason in judges.exceptions().items():
        assert key in found, f"{key} no longer needed: drop it from {judges.EXCEPTIONS.name}"
        assert "https://" in reason and len(reason) > 80, key


def test_d5_a_stale_exception_fails_the_check() -> None:
    rows = list(report.stale_exceptions(used=set()))
    assert rows and {r.result for r in rows} == {"FAIL"}
    assert all(r.reason.startswith("exception no longer needed") for r in rows)


def test_parliament_bites_on_a_resource_the_action_does_not_take(doc: dict[str, Any]) -> None:
    """The defect it found: logs:DescribeLogGroups scoped to log-group ARNs (it takes none,
    so that statement granted nothing)."""
    statement = doc["Resources"]["FlowLogsRole"]["Properties"]["Policies"][0]["PolicyDocument"][
        "Statement"
    ][1]
    statement["Resource"] = {
        "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*"
    }
    assert ("parliament", "RESOURCE_MISMATCH", "FlowLogsRole") in verdicts(doc)


def test_cfripper_bites_on_a_wildcard_resource(doc: dict[str, Any]) -> None:
    policy = doc["Resources"]["LoanValidationFunctionRole"]["Properties"]["Policies"][0]
    policy["PolicyDocument"]["Statement"][0]["Resource"] = "*"
    assert ("cfripper", "WildcardResourceRule", "LoanValidationFunctionRole") in verdicts(doc)


def test_cfripper_cannot_read_the_template_as_written_so_we_resolve_it(
    pristine: dict[str, Any],
) -> None:
    """pycfmodel refuses a Number parameter with a fractional MinValue (0.5 ACU): valid for
    CloudFormation. The workaround is ours: cfripper reads the resolved environment."""
    from pycfmodel import parse  # here, not at collection: 0.7 s of CPU on every worker
    from pydantic import ValidationError

    logging.getLogger("pycfmodel").setLevel(logging.ERROR)
    with pytest.raises(ValidationError, match="MinValue"):
        parse(pristine)
    resolved = judges.resolved_template(build(pristine, "prod"))
    assert "Parameters" not in resolved
    parse(resolved).resolve()


def test_references_become_the_values_their_services_document(pristine: dict[str, Any]) -> None:
    env = build(pristine, "dev")
    c = env.context
    bucket = f"s3-loandocuments-dev42-{c.account_id}-{c.region}"
    assert judges.concrete(env, {"Fn::GetAtt": ["LoanDocumentsBucket", "Arn"]}) == (
        f"arn:aws:s3:::{bucket}"
    )
    assert judges.concrete(env, {"Fn::Sub": "${LoanDocumentsBucket.Arn}/*"}) == (
        f"arn:aws:s3:::{bucket}/*"
    )
    assert judges.concrete(env, {"Ref": "DBSecret"}).startswith(
        f"arn:aws:secretsmanager:{c.region}:{c.account_id}:secret:secret-aurora-dev42-"
    )
