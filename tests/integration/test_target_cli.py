"""SPEC D9 (issue 21, items 1-3) as CI runs the tool: the real `loanstack` entry point against a
detached emulator. Every command acts on one named stack in one named account and region, says
which, and the advice it prints is a command that acts on exactly that stack.

Deploys and destroys of a stack keep their subprocess, but for a second run of a path already
taken through it (the failed deploy run again for its advice, a destroy that goes ahead); the
runs that only look up where a stack is (the other invoke, `outputs`, the region order of a
stack not there) and the refusals after the first go through `cli.main` in process
(`in_process`, with the same checks): what they test is what the command says and returns, not
the entry point (docs/testing.md, "Keeping it fast")."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.support.cli import (
    URL_VARIABLE,
    Run,
    ci_env,
    in_process,
    loanstack,
    on_running_emulator,
    one_error_line,
)


@pytest.fixture(scope="module")
def env(
    tmp_path_factory: pytest.TempPathFactory, worker_emulator: dict[str, str]
) -> dict[str, str]:
    """The worker's detached emulator (tests/integration/conftest.py), and an AWS config file
    whose profile `bank` has eu-west-2."""
    tmp = Path(tmp_path_factory.mktemp("target"))
    config = tmp / "aws-config"
    config.write_text("[profile bank]\nregion = eu-west-2\n", encoding="utf-8")
    return on_running_emulator(ci_env(tmp, AWS_CONFIG_FILE=str(config)), worker_emulator)


def outputs_dir(env: dict[str, str]) -> Path:
    return Path(env["LOANSTACK_OUTPUTS_FILE"]).parent


def advice(run: Run) -> list[str]:
    """The `loanstack ...` commands a run advised, as argument lists."""
    return [shlex.split(c)[1:] for c in re.findall(r"`(loanstack [^`]+)`", run.err)]


def client(env: dict[str, str], service: str, region: str) -> Any:
    """A boto3 client of the emulator, as any AWS client reaches it."""
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=env[URL_VARIABLE],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def status(env: dict[str, str], suffix: str, region: str) -> str | None:
    """The stack's status in one region of the emulator."""
    cfn = client(env, "cloudformation", region)
    try:
        return str(cfn.describe_stacks(StackName=f"tapstack-{suffix}")["Stacks"][0]["StackStatus"])
    except ClientError:
        return None


def test_item4_a_running_emulator_is_found_without_its_url(env: dict[str, str]) -> None:
    """`emulator start --detach` in one shell; a new shell without LOANSTACK_EMULATOR_URL finds
    it through its state file instead of starting a throwaway one."""
    shell = {k: v for k, v in env.items() if k != URL_VARIABLE}
    run = loanstack(shell, "destroy", "--suffix", "none2", "--region", "us-east-1")
    assert run.code == 0, run.err
    assert f"no stack tapstack-none2 in local emulator {env[URL_VARIABLE]}," in run.out


def test_item3_every_deploy_records_its_stack_beside_the_flat_outputs(
    env: dict[str, str],
) -> None:
    first = loanstack(env, "deploy", "--env", "dev", "--suffix", "ps1", "--yes", "--output", "json")
    assert first.code == 0, first.err[-2000:]
    second = loanstack(
        env, "deploy", "--env", "dev", "--suffix", "ps2", "--region", "eu-central-1", "--yes"
    )
    assert second.code == 0, second.err[-2000:]
    records = {
        s: json.loads((outputs_dir(env) / f"tapstack-{s}.json").read_text()) for s in ("ps1", "ps2")
    }
    assert {
        s: (r["stack"], r["region"], r["target"], r["account"]) for s, r in records.items()
    } == {
        "ps1": ("tapstack-ps1", "us-east-1", "local", "123456789012"),
        "ps2": ("tapstack-ps2", "eu-central-1", "local", "123456789012"),
    }
    assert records["ps1"]["outputs"] == json.loads(first.out)["outputs"]
    # the client's flat file: a flat object of strings, the last deploy's outputs
    flat = json.loads(Path(env["LOANSTACK_OUTPUTS_FILE"]).read_text())
    assert flat == records["ps2"]["outputs"] and all(isinstance(v, str) for v in flat.values())

    # a follow-up finds the eu-central-1 stack from its record, not the default region
    payload = "examples/approved.json"
    invoked = loanstack(env, "invoke", "validate", "--payload", payload)
    assert invoked.code == 0, invoked.err
    assert "region eu-central-1, stack tapstack-ps2" in invoked.err
    # --suffix picks the other stack, in its own region, with no --region given
    other = in_process(env, "invoke", "validate", "--payload", payload, "--suffix", "ps1")
    assert other.code == 0 and "region us-east-1, stack tapstack-ps1" in other.err, other.err
    # a region that contradicts the record is refused, in one line, naming where it is
    wrong = in_process(env, "invoke", "validate", "--payload", payload, "--suffix", "ps1",
                       "--region", "eu-west-1")  # fmt: skip
    assert wrong.code == 2 and "recorded in local region us-east-1" in one_error_line(wrong)
    shown = json.loads(in_process(env, "outputs", "--suffix", "ps1", "--output", "json").out)
    assert shown["region"] == "us-east-1" and shown["outputs"] == records["ps1"]["outputs"]

    # destroy in the wrong region: not "nothing to destroy" with exit 0; it names where it is
    missed = loanstack(env, "destroy", "--suffix", "ps2", "--region", "us-east-1", "--yes")
    line = one_error_line(missed)
    assert missed.code == 1 and "region eu-central-1" in line, missed.err
    assert status(env, "ps2", "eu-central-1") == "CREATE_COMPLETE"
    # without --region, the record's region: the stack goes, and its record with it
    gone = loanstack(env, "destroy", "--suffix", "ps2", "--yes")
    assert gone.code == 0, gone.err[-2000:]
    assert "region eu-central-1, stack tapstack-ps2" in gone.out
    assert status(env, "ps2", "eu-central-1") is None
    assert not (outputs_dir(env) / "tapstack-ps2.json").exists()


def test_item1_the_advice_after_a_failed_deploy_destroys_that_stack_and_no_other(
    env: dict[str, str],
) -> None:
    """Issue 21, item 1: cc1 healthy in us-east-1, cc1 in us-west-2 ends ROLLBACK_COMPLETE; the
    destroy the tool advises deletes the us-west-2 stack and leaves the us-east-1 one."""
    healthy = loanstack(env, "deploy", "--env", "dev", "--suffix", "cc1", "--yes")
    assert healthy.code == 0, healthy.err[-2000:]
    # the us-west-2 create fails: a secret of the stack's secret name is already there
    client(env, "secretsmanager", "us-west-2").create_secret(
        Name="secret-aurora-cc1", SecretString="{}"
    )
    broken = loanstack(
        env, "deploy", "--env", "dev", "--suffix", "cc1", "--region", "us-west-2", "--yes"
    )
    assert broken.code == 1, broken.text[-2000:]
    assert status(env, "cc1", "us-west-2") == "ROLLBACK_COMPLETE", broken.text[-2000:]
    for run in (broken, in_process(env, "deploy", "--env", "dev", "--suffix", "cc1",
                                   "--region", "us-west-2", "--yes")):  # fmt: skip
        (advised,) = advice(run)
        assert advised[:3] == ["destroy", "--suffix", "cc1"], advised
        assert advised[advised.index("--region") + 1] == "us-west-2", advised
    done = loanstack(env, *advised, "--yes")
    assert done.code == 0, done.err[-2000:]
    assert "region us-west-2, stack tapstack-cc1 (ROLLBACK_COMPLETE)" in done.out
    assert status(env, "cc1", "us-west-2") is None
    assert status(env, "cc1", "us-east-1") == "CREATE_COMPLETE"
    assert (outputs_dir(env) / "tapstack-cc1.json").exists()  # the healthy one's record stays


def test_item2_the_profiles_region_is_used_and_shown_before_the_change(
    env: dict[str, str],
) -> None:
    run = loanstack(env, "deploy", "--env", "dev", "--suffix", "pr1", "--profile", "bank",
                    "--yes", "--output", "json")  # fmt: skip
    assert run.code == 0, run.err[-2000:]
    target_line = next(ln for ln in run.err.splitlines() if ln.startswith("target: "))
    assert "region eu-west-2, profile bank, stack tapstack-pr1" in target_line
    assert json.loads(run.out)["region"] == "eu-west-2"
    assert status(env, "pr1", "eu-west-2") == "CREATE_COMPLETE"
    record = json.loads((outputs_dir(env) / "tapstack-pr1.json").read_text())
    assert (record["region"], record["profile"]) == ("eu-west-2", "bank")
    # the order of the AWS CLI for a stack not recorded: the flag, then the environment,
    # then the profile
    order = {
        "eu-west-2": in_process(env, "destroy", "--suffix", "none1", "--profile", "bank"),
        "ap-south-1": in_process(
            env | {"AWS_REGION": "ap-south-1"}, "destroy", "--suffix", "none1", "--profile", "bank"
        ),
        "ca-central-1": in_process(
            env | {"AWS_DEFAULT_REGION": "ap-south-1"},
            "destroy",
            "--suffix",
            "none1",
            "--profile",
            "bank",
            "--region",
            "ca-central-1",
        ),
    }
    for region, nothing in order.items():
        assert nothing.code == 0, nothing.err
        assert f"region {region}, profile bank: nothing to destroy" in nothing.out, nothing.out
    unknown = in_process(env, "destroy", "--suffix", "pr1", "--profile", "nobody", "--yes")
    assert unknown.code == 2 and "nobody" in one_error_line(unknown)
    # a recorded stack: its own region and profile, whatever the shell says
    gone = in_process(env | {"AWS_REGION": "ap-south-1"}, "destroy", "--suffix", "pr1", "--yes")
    assert gone.code == 0 and "region eu-west-2, profile bank, stack tapstack-pr1" in gone.out
    assert status(env, "pr1", "eu-west-2") is None


def test_item1_prod_destroy_needs_the_stack_name_and_says_what_survives(
    env: dict[str, str],
) -> None:
    deployed = loanstack(
        env, "deploy", "--env", "prod", "--suffix", "pd1", "--yes",
        "--param", "AlarmEmail=ops@example.com",
        "--no-termination-protection",  # on by default for prod: test_stack_options.py
    )  # fmt: skip
    assert deployed.code == 0, deployed.err[-2000:]
    refused = loanstack(env, "destroy", "--suffix", "pd1", "--yes")
    assert refused.code == 2 and "--confirm-stack tapstack-pd1" in one_error_line(refused)
    assert "survives: AWS::KMS::Key KMSKey" in refused.out
    assert status(env, "pd1", "us-east-1") == "CREATE_COMPLETE"
    wrong = in_process(env, "destroy", "--suffix", "pd1", "--confirm-stack", "tapstack-pd2")
    assert wrong.code == 2 and status(env, "pd1", "us-east-1") == "CREATE_COMPLETE"
    done = in_process(env, "destroy", "--suffix", "pd1", "--confirm-stack", "tapstack-pd1")
    assert done.code == 0, done.err[-2000:]
    assert status(env, "pd1", "us-east-1") is None
