"""The post-deploy checks against a real deployment, opt-in: LOANSTACK_AWS_TESTS=1 with AWS
credentials, after `loanstack deploy --target aws`. They read the stack only through
cfn-outputs/flat-outputs.json (R1b). Asked for but impossible (no credentials, no outputs file)
is a failure, never a skip."""

from __future__ import annotations

import os
from typing import Any

import boto3
import pytest

from loanstack import deploy
from tests.integration import post_deploy

ENABLED = os.environ.get("LOANSTACK_AWS_TESTS") == "1"
pytestmark = pytest.mark.skipif(
    not ENABLED, reason="real-AWS checks are opt-in: set LOANSTACK_AWS_TESTS=1 with credentials"
)


@pytest.fixture(scope="module")
def outputs() -> dict[str, str]:
    if not deploy.OUTPUTS_FILE.exists():
        pytest.fail(f"{deploy.OUTPUTS_FILE} is missing: run `loanstack deploy --target aws` first")
    return deploy.read_outputs()


@pytest.fixture(scope="module")
def client() -> Any:
    session = boto3.Session()
    if session.get_credentials() is None:
        pytest.fail("LOANSTACK_AWS_TESTS=1 but no AWS credentials are configured")
    return lambda service: session.client(service)


def test_r1b_outputs_present(outputs: dict[str, str]) -> None:
    post_deploy.assert_r1b_outputs_present(outputs)


def test_r7_network(client: Any, outputs: dict[str, str]) -> None:
    post_deploy.assert_network(client, outputs)


def test_r9_database(client: Any, outputs: dict[str, str]) -> None:
    post_deploy.assert_database(client, outputs)


def test_r10_secret_rotation_configured(client: Any, outputs: dict[str, str]) -> None:
    post_deploy.assert_secret(client, outputs)


def test_r13_documents_bucket(client: Any, outputs: dict[str, str]) -> None:
    post_deploy.assert_documents_bucket(client, outputs)


def test_r11_validation_records_and_documents(client: Any, outputs: dict[str, str]) -> None:
    post_deploy.assert_validation_records_and_documents(client, outputs)
