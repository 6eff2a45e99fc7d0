"""Issue 21 item 11: a prompt answered "no" at a terminal is a choice, not an error: exit 0,
one line saying nothing changed, and nothing did (the change set is deleted, the stack stays).
Without a terminal the same commands stay usage errors (exit 2: tests/unit/test_cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.support.cli import URL_VARIABLE, at_terminal, ci_env, loanstack, on_running_emulator


@pytest.fixture(scope="module")
def env(
    tmp_path_factory: pytest.TempPathFactory, worker_emulator: dict[str, str]
) -> dict[str, str]:
    """This module's CI environment on the worker's detached emulator
    (tests/integration/conftest.py)."""
    base = ci_env(Path(tmp_path_factory.mktemp("declined")))
    return on_running_emulator(base, worker_emulator)


def cloudformation(env: dict[str, str]) -> Any:
    return boto3.client(
        "cloudformation",
        region_name="us-east-1",
        endpoint_url=env[URL_VARIABLE],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def stack_status(env: dict[str, str], name: str) -> str | None:
    try:
        stacks = cloudformation(env).describe_stacks(StackName=name)["Stacks"]
    except ClientError:
        return None
    return str(stacks[0]["StackStatus"])


def test_no_to_the_change_set_and_to_destroy_changes_nothing(env: dict[str, str]) -> None:
    declined = at_terminal(env, "deploy", "--env", "dev", "--suffix", "no1", answer="n")
    assert declined.code == 0, declined.err[-2000:]
    assert "loanstack: nothing changed (the change set was not executed)" in declined.err
    assert "error" not in declined.err
    assert stack_status(env, "tapstack-no1") in (None, "REVIEW_IN_PROGRESS")

    deployed = loanstack(env, "deploy", "--env", "dev", "--suffix", "no1", "--yes")
    assert deployed.code == 0, deployed.err[-2000:]
    kept = at_terminal(env, "destroy", "--suffix", "no1", answer="n")
    assert kept.code == 0, kept.err[-2000:]
    assert "loanstack: nothing changed (answered no)" in kept.err
    assert stack_status(env, "tapstack-no1") == "CREATE_COMPLETE"

    assert loanstack(env, "destroy", "--suffix", "no1", "--yes").code == 0
