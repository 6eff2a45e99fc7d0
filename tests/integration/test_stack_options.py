"""The deploy options a bank needs, `diff` and `drift`, through the real `loanstack` entry point
in CI conditions (tests/support/cli.py) against one detached emulator (issue 21 items 6 and 9,
issue 22 item 1's stack-level protection of prod). One run per way a result reaches the user
keeps its subprocess (a usage error, a diff and a drift as JSON, `--exit-code`, a deploy and a
destroy, a refusal with exit 1); the other refusals, the text `diff`/`drift` and prod's deploys
and destroy go through `cli.main` in process (`in_process`, the same checks): docs/testing.md,
"Keeping it fast"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from rich.console import Console

from loanstack import template
from loanstack.aws.target import Target
from loanstack.emulator import CREDENTIALS
from loanstack.errors import DeployError
from loanstack.stack import deploy
from tests.support.cli import (
    URL_VARIABLE,
    ci_env,
    in_process,
    loanstack,
    on_running_emulator,
    one_error_line,
)

REGION = "us-east-1"
PROD = ("--env", "prod", "--param", "AlarmEmail=ops@example.com")


@pytest.fixture(scope="module")
def env(
    tmp_path_factory: pytest.TempPathFactory, worker_emulator: dict[str, str]
) -> dict[str, str]:
    """This module's CI environment on the worker's detached emulator
    (tests/integration/conftest.py)."""
    base = ci_env(Path(tmp_path_factory.mktemp("stackopts")))
    return on_running_emulator(base, worker_emulator)


def client(env: dict[str, str], service: str) -> Any:
    return boto3.client(service, endpoint_url=env[URL_VARIABLE], region_name=REGION, **CREDENTIALS)


def stacks_named(env: dict[str, str], name: str) -> list[str]:
    listed = client(env, "cloudformation").describe_stacks()["Stacks"]
    return [s["StackStatus"] for s in listed if s["StackName"] == name]


def stack(env: dict[str, str], name: str) -> dict[str, Any]:
    return dict(client(env, "cloudformation").describe_stacks(StackName=name)["Stacks"][0])


def test_contradicting_or_repeated_parameters_are_refused(env: dict[str, str]) -> None:
    for command in ("deploy", "diff"):
        run = loanstack if command == "deploy" else in_process  # the entry point once
        contra = run(
            env, command, "--env", "dev", "--suffix", "so0", "--param", "EnvironmentType=prod"
        )
        assert contra.code == 2
        assert "EnvironmentType=prod contradicts --env dev" in one_error_line(contra)
        suffix = in_process(
            env, command, "--env", "dev", "--suffix", "so0", "--param", "EnvironmentSuffix=x9"
        )
        assert suffix.code == 2 and "contradicts --suffix so0" in one_error_line(suffix)
        twice = in_process(
            env, command, "--env", "dev", "--suffix", "so0",
            "--param", "ValidationMemorySize=512", "--param", "ValidationMemorySize=1024",
        )  # fmt: skip
        assert twice.code == 2 and "given twice" in one_error_line(twice)
    tags = in_process(env, "diff", "--env", "dev", "--suffix", "so0", "--tags", "Environment=prod")
    assert tags.code == 2 and "contradicts --env dev" in one_error_line(tags)
    assert stacks_named(env, "tapstack-so0") == []


def test_diff_of_a_new_stack_lists_it_and_leaves_nothing_behind(env: dict[str, str]) -> None:
    shown = loanstack(env, "diff", "--env", "dev", "--suffix", "so1", "--output", "json")
    assert shown.code == 0, shown.text[-2000:]
    document = json.loads(shown.out)
    assert document["changed"] is True
    cluster = next(c for c in document["changes"] if c["logicalId"] == "DBCluster")
    assert (cluster["action"], cluster["type"]) == ("Add", "AWS::RDS::DBCluster")
    assert stacks_named(env, "tapstack-so1") == [], "the preview's review stack is deleted"
    ci = loanstack(env, "plan", "--env", "dev", "--suffix", "so1", "--exit-code")
    assert ci.code == 1, ci.text[-2000:]
    assert "DBCluster" in ci.err + ci.out
    assert stacks_named(env, "tapstack-so1") == []


def test_dev_deploy_carries_tags_role_notifications_then_diff_and_drift(
    env: dict[str, str],
) -> None:
    topic = client(env, "sns").create_topic(Name="stack-events")["TopicArn"]
    role = "arn:aws:iam::123456789012:role/cfn-deployer"
    deployed = loanstack(
        env, "deploy", "--env", "dev", "--suffix", "so2", "--yes", "--output", "json",
        "--tags", "CostOwner=lending", "DataClass=confidential",
        "--role-arn", role, "--notification-arns", topic, timeout=300,
    )  # fmt: skip
    assert deployed.code == 0, deployed.text[-2000:]
    document = json.loads(deployed.out)
    assert document["changed"] is True and len(document["changes"]) > 50
    got = stack(env, "tapstack-so2")
    tags = {t["Key"]: t["Value"] for t in got["Tags"]}
    assert tags == {"Environment": "dev", "CostOwner": "lending", "DataClass": "confidential"}
    assert got["RoleARN"] == role and got["NotificationARNs"] == [topic]
    assert got["EnableTerminationProtection"] is False, "dev stays disposable"
    cfn = client(env, "cloudformation")
    assert not cfn.get_stack_policy(StackName="tapstack-so2").get("StackPolicyBody")

    same = in_process(env, "diff", "--env", "dev", "--suffix", "so2", "--exit-code")
    assert same.code == 0, same.text[-2000:]
    assert "no changes" in same.out
    bigger = loanstack(
        env, "diff", "--env", "dev", "--suffix", "so2", "--exit-code", "--output", "json",
        "--param", "ValidationMemorySize=2048",
    )  # fmt: skip
    assert bigger.code == 1, bigger.text[-2000:]
    function = next(
        c for c in json.loads(bigger.out)["changes"] if c["logicalId"] == "LoanValidationFunction"
    )
    assert function["action"] == "Modify" and function["replacement"] == "False"
    memory = next(p for p in function["properties"] if p["name"] == "MemorySize")
    assert (memory["before"], memory["after"]) == ("1024", "2048")
    listed = cfn.list_change_sets(StackName="tapstack-so2")["Summaries"]
    pending = [c for c in listed if c["ExecutionStatus"] == "AVAILABLE"]
    assert pending == [], "the previews' change sets are deleted"
    assert stacks_named(env, "tapstack-so2") == ["CREATE_COMPLETE"]

    in_sync = in_process(env, "drift", "--suffix", "so2")
    assert in_sync.code == 0, in_sync.text[-2000:]
    assert "IN_SYNC" in in_sync.out
    name = next(
        r["PhysicalResourceId"]
        for r in cfn.list_stack_resources(StackName="tapstack-so2")["StackResourceSummaries"]
        if r["LogicalResourceId"] == "LoanValidationFunction"
    )
    client(env, "lambda").update_function_configuration(FunctionName=name, MemorySize=3008)
    drifted = loanstack(env, "drift", "--suffix", "so2", "--output", "json")
    assert drifted.code == 1, drifted.text[-2000:]
    report = json.loads(drifted.out)
    assert report["drifted"] is True and report["stackDriftStatus"] == "DRIFTED"
    (modified,) = [r for r in report["resources"] if r["status"] == "MODIFIED"]
    assert modified["logicalId"] == "LoanValidationFunction"
    assert modified["differences"] == [
        {"path": "/MemorySize", "expected": "1024", "actual": "3008", "type": "NOT_EQUAL"}
    ]

    gone = loanstack(env, "destroy", "--suffix", "so2", "--yes", timeout=240)
    assert gone.code == 0, gone.text[-2000:]
    assert stacks_named(env, "tapstack-so2") == []


def local_target(env: dict[str, str], tmp: Path) -> Target:
    session = boto3.Session(region_name=REGION, **CREDENTIALS)
    return Target(
        "local", REGION, session, endpoint_url=env[URL_VARIABLE], outputs_file=tmp / "out.json"
    )


def test_prod_is_protected_at_the_stack_level(env: dict[str, str], tmp_path: Path) -> None:
    deployed = in_process(env, "deploy", *PROD, "--suffix", "sp1", "--yes")
    assert deployed.code == 0, deployed.text[-2000:]
    assert "termination protection on" in deployed.out
    got = stack(env, "tapstack-sp1")
    assert got["EnableTerminationProtection"] is True
    cfn = client(env, "cloudformation")
    policy = json.loads(cfn.get_stack_policy(StackName="tapstack-sp1")["StackPolicyBody"])
    (deny,) = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert deny["Action"] == ["Update:Replace", "Update:Delete"]
    protected = {r.removeprefix("LogicalResourceId/") for r in deny["Resource"]}
    assert {"DBCluster", "DBSecret", "KMSKey", "TrailBucket"} <= protected

    # destroy refuses, after the typed name, with the way to lift the protection (the module's
    # one refusal with exit 1 through the entry point; the other runs of this test in process)
    refused = loanstack(env, "destroy", "--suffix", "sp1", "--confirm-stack", "tapstack-sp1")
    assert refused.code == 1
    line = one_error_line(refused)
    assert "termination protection" in line and "--no-termination-protection" in line
    assert stacks_named(env, "tapstack-sp1") == ["CREATE_COMPLETE"]

    # a replacing update of the cluster is denied by the policy and rolls back (the emulator
    # cannot replace a cluster, so the allowed case is the trail bucket's removal below)
    doc = template.load()
    cluster = doc["Resources"]["DBCluster"]["Properties"]
    cluster["DBClusterIdentifier"] = {"Fn::Sub": "aurora-loans2-${EnvironmentSuffix}"}
    params = deploy.parameters_for("prod", "sp1", {"AlarmEmail": "ops@example.com"})
    console = Console(record=True, width=200)
    d = deploy.Deployment(
        local_target(env, tmp_path), "prod", "sp1", params, console, template_doc=doc
    )
    with pytest.raises(DeployError, match=r"UPDATE_ROLLBACK_COMPLETE.*denied by stack policy"):
        deploy.deploy(d, confirm=lambda: True)
    assert "[Update:Replace] for resource [LogicalResourceId/DBCluster]" in console.export_text()
    assert stacks_named(env, "tapstack-sp1") == ["UPDATE_ROLLBACK_COMPLETE"]

    # a template that no longer has a protected resource (the trail bucket: its condition made
    # false, the parameters unchanged) deletes it: guarded from the deployed template, refused
    dropped = template.load()
    dropped["Conditions"]["CreateTrail"] = {"Fn::Equals": ["dropped", "here"]}
    console = Console(record=True, width=200)
    d = deploy.Deployment(
        local_target(env, tmp_path), "prod", "sp1", params, console, template_doc=dropped
    )
    with pytest.raises(DeployError, match=r"UPDATE_ROLLBACK_COMPLETE.*denied by stack policy"):
        deploy.deploy(d, confirm=lambda: True)
    assert "[Update:Delete] for resource [LogicalResourceId/TrailBucket]" in console.export_text()
    assert "TrailBucket" in resources_of(env, "tapstack-sp1")

    # switching the trail off removes its bucket: an Update:Delete, refused unless allowed
    no_trail = (*PROD, "--suffix", "sp1", "--yes", "--param", "EnableCloudTrail=false")
    refused = in_process(env, "deploy", *no_trail)
    assert refused.code == 1
    assert "[Update:Delete] for resource [LogicalResourceId/TrailBucket]" in one_error_line(refused)
    assert "TrailBucket" in resources_of(env, "tapstack-sp1")
    allowed = in_process(
        env, "deploy", *no_trail, "--allow-replace", "TrailBucket", "--monitoring-minutes", "5"
    )
    assert allowed.code == 0, allowed.text[-2000:]
    assert "TrailBucket" not in resources_of(env, "tapstack-sp1")
    after = json.loads(cfn.get_stack_policy(StackName="tapstack-sp1")["StackPolicyBody"])
    (deny,) = [s for s in after["Statement"] if s["Effect"] == "Deny"]
    assert "LogicalResourceId/DBCluster" in deny["Resource"], "the full policy is back"
    assert "LogicalResourceId/TrailBucket" not in deny["Resource"], "no longer in the stack"
    # updates carry rollback triggers on the stack's own health alarms
    rollback = stack(env, "tapstack-sp1")["RollbackConfiguration"]
    assert rollback["MonitoringTimeInMinutes"] == 5
    arns = [t["Arn"] for t in rollback["RollbackTriggers"]]
    assert len(arns) == 5 and all(":cloudwatch:us-east-1:" in a and ":alarm:" in a for a in arns)
    unknown = in_process(env, "deploy", *no_trail, "--allow-replace", "Nope")
    assert unknown.code == 2 and "not a protected resource" in one_error_line(unknown)

    # turned off by a deploy with nothing else to change, then destroy goes ahead
    off = in_process(env, "deploy", *no_trail, "--no-termination-protection")
    assert off.code == 0, off.text[-2000:]
    assert "termination protection off" in off.out
    assert stack(env, "tapstack-sp1")["EnableTerminationProtection"] is False
    done = in_process(env, "destroy", "--suffix", "sp1", "--confirm-stack", "tapstack-sp1")
    assert done.code == 0, done.text[-2000:]
    assert stacks_named(env, "tapstack-sp1") == []


def resources_of(env: dict[str, str], name: str) -> set[str]:
    listed = client(env, "cloudformation").list_stack_resources(StackName=name)
    return {r["LogicalResourceId"] for r in listed["StackResourceSummaries"]}
