"""Prod's guard reads the deployed template (GetTemplate); a caller without
`cloudformation:GetTemplate` gets one line saying what the guard judges instead and what to allow,
and the deploy goes on (the command's exit code stays the deploy's own).
https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_GetTemplate.html"""

from __future__ import annotations

import io
from typing import Any, cast

import boto3
import pytest
from botocore.stub import Stubber
from rich.console import Console

from loanstack import template
from loanstack.emulator import CREDENTIALS
from loanstack.errors import DeployError
from loanstack.stack import protection
from loanstack.stack.deploy import Deployment, read_deployed_template

PROD = {"EnvironmentType": "prod", "EnvironmentSuffix": "p1", "AlarmEmail": "ops@example.com"}
STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/tapstack-p1/0a1b2c3d"
# the message IAM returns when no policy allows the action (shape of AWS's own; long, as theirs)
DENIED = (
    "User: arn:aws:iam::123456789012:user/deployer is not authorized to perform: "
    f"cloudformation:GetTemplate on resource: {STACK_ID} "
    "because no identity-based policy allows the cloudformation:GetTemplate action"
)
LINE = (
    "note: cannot read the deployed template of tapstack-p1 (GetTemplate refused: AccessDenied: "
    f"{DENIED}): the stack policy guard judges the new template only; allow "
    "cloudformation:GetTemplate on the stack to guard what the deployed template protects"
)


def refused_get_template(code: str, message: str) -> tuple[Any, Stubber]:
    cfn = boto3.client("cloudformation", region_name="us-east-1", **CREDENTIALS)
    stubber = Stubber(cfn)
    stubber.add_client_error(
        "get_template",
        service_error_code=code,
        service_message=message,
        http_status_code=403,
        expected_params={"StackName": STACK_ID, "TemplateStage": "Original"},
    )
    return cfn, stubber


def prod(out: io.StringIO) -> Deployment:
    """A prod update on an 80-column terminal (a pipe's width too), deployed with PROD."""
    console = Console(file=out, width=80, color_system=None)
    d = Deployment(cast(Any, None), "prod", "p1", dict(PROD), console)
    d.deployed_parameters = dict(PROD)
    return d


def test_access_denied_on_get_template_is_one_line_and_the_guard_judges_the_new_template() -> None:
    out = io.StringIO()
    d = prod(out)
    cfn, stubber = refused_get_template("AccessDenied", DENIED)
    with stubber:
        doc = read_deployed_template(d, cfn, {"StackId": STACK_ID, "StackName": d.name})
    stubber.assert_no_pending_responses()
    assert doc is None
    assert out.getvalue() == LINE + "\n"  # one line, not wrapped at 80 columns
    assert d.guarded() == protection.protected_ids(template.load(), PROD)


def test_a_refusal_message_with_brackets_is_printed_as_written() -> None:
    """Console markup would eat `[...]` from AWS's message (or fail on a closing tag)."""
    out = io.StringIO()
    d = prod(out)
    message = "User is not authorized [/x] [bold]"
    cfn, stubber = refused_get_template("AccessDenied", message)
    with stubber:
        assert read_deployed_template(d, cfn, {"StackId": STACK_ID, "StackName": d.name}) is None
    assert f"GetTemplate refused: AccessDenied: {message})" in out.getvalue()
    assert out.getvalue().count("\n") == 1


def test_a_failure_that_is_no_refusal_stops_the_prod_update_in_one_line() -> None:
    """Throttled past boto3's retries (or a 5xx) is no permission to judge the new template alone:
    the update stops before any change, with AWS's words, and says to run it again."""
    out = io.StringIO()
    d = prod(out)
    cfn, stubber = refused_get_template("Throttling", "Rate exceeded [/throttle]")
    with stubber, pytest.raises(DeployError) as raised:
        read_deployed_template(d, cfn, {"StackId": STACK_ID, "StackName": d.name})
    assert str(raised.value) == (
        f"cannot read the deployed template of {d.name} (Throttling: Rate exceeded [/throttle]); "
        "prod's stack policy guard needs it: nothing was changed, run the deploy again"
    )
    assert out.getvalue() == ""


def test_dev_never_reads_the_deployed_template() -> None:
    out = io.StringIO()
    d = prod(out)
    d.env = "dev"
    cfn, stubber = refused_get_template("AccessDenied", DENIED)
    with stubber:
        assert read_deployed_template(d, cfn, {"StackId": STACK_ID}) is None
    assert len(stubber._queue) == 1, "GetTemplate was not called"
    assert out.getvalue() == ""


def test_a_deployed_yaml_template_is_said_in_one_line_too() -> None:
    out = io.StringIO()
    d = prod(out)
    cfn = boto3.client("cloudformation", region_name="us-east-1", **CREDENTIALS)
    stubber = Stubber(cfn)
    stubber.add_response("get_template", {"TemplateBody": "Resources: {}\n"})
    with stubber:
        assert read_deployed_template(d, cfn, {"StackId": STACK_ID, "StackName": d.name}) is None
    assert out.getvalue() == (
        "note: cannot read the deployed template of tapstack-p1 (tapstack-p1: cannot tell what its "
        "delete keeps (its deployed template is not JSON)): the stack policy guard judges the new "
        "template only\n"
    )
