"""The post-deploy checks against a real deployment, opt-in: LOANSTACK_AWS_TESTS=1 with AWS
credentials, after `loanstack deploy --target aws`. They read the stack only through
cfn-outputs/flat-outputs.json (R1b). Asked for but impossible (no credentials, no outputs file)
is a failure, never a skip."""

from __future__ import annotations

import os
from typing import Any

import boto3
import pytest

from loanstack.aws.outputs import default_outputs_file, read_outputs
from loanstack.aws.target import connect
from loanstack.names import stack_name
from loanstack.stack.destroy import bucket_exists, destroy
from loanstack.stack.events import stack_status
from tests.support import post_deploy

ENABLED = os.environ.get("LOANSTACK_AWS_TESTS") == "1"
pytestmark = pytest.mark.skipif(
    not ENABLED, reason="real-AWS checks are opt-in: set LOANSTACK_AWS_TESTS=1 with credentials"
)


@pytest.fixture(scope="module")
def outputs() -> dict[str, str]:
    if not default_outputs_file().exists():
        pytest.fail(
            f"{default_outputs_file()} is missing: run `loanstack deploy --target aws` first"
        )
    return read_outputs()


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


# --- what AWS refused before (SPEC D7): each item proven on a real account ------------------


def test_r4_security_group_names_ec2_accepts(client: Any, outputs: dict[str, str]) -> None:
    post_deploy.assert_security_group_names(client, outputs)


def test_r8_trail_delivers_with_the_stack_key(client: Any, outputs: dict[str, str]) -> None:
    """Waits for the first delivery (CloudTrail delivers about every 5 minutes)."""
    post_deploy.assert_trail_uses_the_key(client, outputs, wait=20 * 60)


def test_r14_alarms_publish_to_the_encrypted_topic(client: Any, outputs: dict[str, str]) -> None:
    post_deploy.assert_alarm_reaches_the_encrypted_topic(client, outputs)


def test_r9_data_api_runs_on_the_cluster_class(client: Any, outputs: dict[str, str]) -> None:
    post_deploy.assert_database_takes_the_data_api(client, outputs)


def test_r11_reservation_granted_as_asked(client: Any, outputs: dict[str, str]) -> None:
    post_deploy.assert_reservation_as_deployed(client, outputs)


def test_r7_lambda_subnets_admit_replies(client: Any, outputs: dict[str, str]) -> None:
    post_deploy.assert_private_subnets_take_replies(client, outputs)


DESTROY = os.environ.get("LOANSTACK_AWS_DESTROY") == "1"


@pytest.mark.skipif(
    not DESTROY, reason="tears the stack down: also set LOANSTACK_AWS_DESTROY=1 (runs last)"
)
def test_r6_destroy_leaves_nothing_behind_despite_the_trail(outputs: dict[str, str]) -> None:
    """Item 6, last in this module: destroy stops the trail, empties, deletes, retries."""
    from rich.console import Console

    suffix = outputs["LoanValidationFunctionName"].removeprefix("lambda-loanvalidator-")
    target = connect("aws", boto3.Session().region_name or "us-east-1")
    buckets = [outputs["LoanDocumentsBucketName"]]
    destroy(target, suffix, Console())
    assert stack_status(target, stack_name(suffix)) is None
    assert not [b for b in buckets if bucket_exists(target, b)]
