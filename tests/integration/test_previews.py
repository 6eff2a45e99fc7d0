"""Preview, then deploy, then destroy, through the real `loanstack` entry point in CI conditions
(tests/support/cli.py), against one detached emulator: CloudFormation keeps one stack per name,
so the stack a preview leaves in review is the one the deploy builds and the destroy removes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from loanstack.emulator import CREDENTIALS
from tests.support.cli import URL_VARIABLE, ci_env, in_process, loanstack, on_running_emulator

REGION = "us-east-1"


@pytest.fixture(scope="module")
def env(
    tmp_path_factory: pytest.TempPathFactory, worker_emulator: dict[str, str]
) -> dict[str, str]:
    """This module's CI environment on the worker's detached emulator
    (tests/integration/conftest.py)."""
    base = ci_env(Path(tmp_path_factory.mktemp("previews")))
    return on_running_emulator(base, worker_emulator)


def cloudformation(env: dict[str, str]) -> Any:
    return boto3.client(
        "cloudformation", endpoint_url=env[URL_VARIABLE], region_name=REGION, **CREDENTIALS
    )


def stacks_named(env: dict[str, str], name: str) -> list[str]:
    """The status of every live stack of that name (DescribeStacks without a name lists them)."""
    listed = cloudformation(env).describe_stacks()["Stacks"]
    return [s["StackStatus"] for s in listed if s["StackName"] == name]


def test_preview_then_deploy_then_destroy_leaves_one_stack_then_none(
    env: dict[str, str],
) -> None:
    preview = loanstack(env, "deploy", "--env", "dev", "--suffix", "pv21")
    assert preview.code == 2, preview.text[-2000:]
    assert "change set not executed" in preview.err
    assert stacks_named(env, "tapstack-pv21") == ["REVIEW_IN_PROGRESS"]

    # the deploy builds the stack the preview left in review, not an empty twin (it used to
    # follow the twin until the timeout)
    deployed = loanstack(env, "deploy", "--env", "dev", "--suffix", "pv21", "--yes", timeout=240)
    assert deployed.code == 0, deployed.text[-2000:]
    assert "tapstack-pv21: CREATE_COMPLETE" in deployed.out
    assert stacks_named(env, "tapstack-pv21") == ["CREATE_COMPLETE"]

    destroyed = loanstack(env, "destroy", "--suffix", "pv21", "--yes", timeout=240)
    assert destroyed.code == 0, destroyed.text[-2000:]
    assert stacks_named(env, "tapstack-pv21") == []


def test_a_preview_then_destroy_leaves_nothing(env: dict[str, str]) -> None:
    """In process (`in_process`, the same checks): the test above runs a preview, a deploy and a
    destroy through the entry point; this one is about the stack they leave."""
    assert in_process(env, "deploy", "--env", "dev", "--suffix", "pv22").code == 2
    again = in_process(env, "deploy", "--env", "dev", "--suffix", "pv22")
    assert again.code == 2, again.text[-2000:]
    assert stacks_named(env, "tapstack-pv22") == ["REVIEW_IN_PROGRESS"]
    destroyed = in_process(env, "destroy", "--suffix", "pv22", "--yes")
    assert destroyed.code == 0, destroyed.text[-2000:]
    assert stacks_named(env, "tapstack-pv22") == []


def test_an_existing_name_is_refused_as_cloudformation_refuses_it(env: dict[str, str]) -> None:
    """CreateStack and a CREATE change set of a live stack's name fail; so does an UPDATE change
    set of a stack still in review (its change sets are CREATE ones)."""
    cfn = cloudformation(env)
    body = '{"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}'
    cfn.create_stack(StackName="names21", TemplateBody=body)
    with pytest.raises(ClientError) as created:
        cfn.create_stack(StackName="names21", TemplateBody=body)
    assert created.value.response["Error"]["Code"] == "AlreadyExistsException"
    with pytest.raises(ClientError) as changed:
        cfn.create_change_set(
            StackName="names21", ChangeSetName="again", ChangeSetType="CREATE", TemplateBody=body
        )
    assert "already exists and cannot be created again" in str(changed.value)
    cfn.create_change_set(
        StackName="review21", ChangeSetName="first", ChangeSetType="CREATE", TemplateBody=body
    )
    with pytest.raises(ClientError) as updated:
        cfn.create_change_set(
            StackName="review21", ChangeSetName="second", ChangeSetType="UPDATE", TemplateBody=body
        )
    assert "REVIEW_IN_PROGRESS state and can not be updated" in str(updated.value)
    assert stacks_named(env, "names21") == ["CREATE_COMPLETE"]
    assert stacks_named(env, "review21") == ["REVIEW_IN_PROGRESS"]
    for name in ("names21", "review21"):
        cfn.delete_stack(StackName=name)
    assert stacks_named(env, "names21") == stacks_named(env, "review21") == []


def test_two_previews_of_a_new_stack_are_change_sets_of_one_stack(env: dict[str, str]) -> None:
    """Executing one removes the other, as ExecuteChangeSet does: it no longer applies."""
    cfn = cloudformation(env)
    body = '{"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}'
    first = cfn.create_change_set(
        StackName="multi21", ChangeSetName="first", ChangeSetType="CREATE", TemplateBody=body
    )
    second = cfn.create_change_set(
        StackName="multi21", ChangeSetName="second", ChangeSetType="CREATE", TemplateBody=body
    )
    assert first["StackId"] == second["StackId"]
    assert stacks_named(env, "multi21") == ["REVIEW_IN_PROGRESS"]
    cfn.execute_change_set(ChangeSetName=second["Id"])
    assert stacks_named(env, "multi21") == ["CREATE_COMPLETE"]
    with pytest.raises(ClientError):
        cfn.describe_change_set(ChangeSetName=first["Id"])
    cfn.delete_stack(StackName="multi21")
    assert stacks_named(env, "multi21") == []
