"""Rotation on the emulator end to end (SPEC D2): the deployed rotation function, the
cluster's pending-then-applied password, its TLS login endpoint (MariaDB), the Data API that
refuses the old password from the moment the change applies, and `loanstack rotate`'s recovery.

Every outcome is read from the emulated cluster (`master_password`), not from the secret.
The emulator runs Lambda invocations one at a time; the batch file here is validated by the
handler in a thread of the test, outside that lock, so it really overlaps the rotation.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.rds.models import rds_backends
from moto.secretsmanager.models import secretsmanager_backends
from rich.console import Console

from loanstack.aws.target import Target
from loanstack.emulator import ACCOUNT_ID, Emulator, clusterdata
from loanstack.emulator.rds import master_password
from loanstack.errors import DeployError
from loanstack.ops import rotate as rotation_ops
from loanstack.ops.rotate import invoke_rotation_step, rotate
from loanstack.stack import deploy
from tests.support import post_deploy
from tests.support.helpers import load_function
from tests.support.stacks import tune_rotation_function

REGION, SUFFIX = "us-east-1", "rot42"
QUICK_POLL, REAL_POLL = "0.2", "2"  # the rotation function's FIRST_POLL_SECONDS: ours, its own
CLUSTER = f"aurora-loanprocessing-{SUFFIX}"


@pytest.fixture(scope="module")
def outputs(target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    target.outputs_file = Path(tmp_path_factory.mktemp("rot-outputs")) / "outputs.json"
    d = deploy.Deployment(
        target, "dev", SUFFIX, deploy.parameters_for("dev", SUFFIX, {}), Console(record=True)
    )
    found = deploy.deploy(d, confirm=lambda: True)
    # the function's polls are not what these tests are about (tests/unit/test_secret_rotation.py
    # is): shorter, a rotation takes ~3 s instead of ~10; the batch test puts them back
    tune_rotation_function(target, found, FIRST_POLL_SECONDS=QUICK_POLL)
    yield found


def secret_value(target: Target, outputs: dict[str, str], stage: str) -> dict[str, Any]:
    reply = target.client("secretsmanager").get_secret_value(
        SecretId=outputs["DBSecretArn"], VersionStage=stage
    )
    return dict(json.loads(reply["SecretString"]))


def stages(target: Target, outputs: dict[str, str]) -> dict[str, list[str]]:
    described = target.client("secretsmanager").describe_secret(SecretId=outputs["DBSecretArn"])
    return dict(described["VersionIdsToStages"])


def settled_password() -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        cluster = rds_backends[ACCOUNT_ID][REGION].clusters[CLUSTER]
        if not getattr(cluster, "password_change", None):
            return master_password(ACCOUNT_ID, REGION, CLUSTER)
        time.sleep(0.1)
    raise AssertionError("the cluster's password change never applied")


def assert_database_on_awscurrent(target: Target, outputs: dict[str, str]) -> None:
    assert settled_password() == secret_value(target, outputs, "AWSCURRENT")["password"]


def stage_pending(outputs: dict[str, str]) -> str:
    """What RotateSecret does before invoking the function: a new AWSPENDING version id."""
    secret = secretsmanager_backends[ACCOUNT_ID][REGION].secrets[outputs["DBSecretArn"]]
    token = str(uuid.uuid4())
    secret.remove_version_stages_from_old_versions(["AWSPENDING"])
    secret.versions[token] = {
        "createdate": int(time.time()),
        "version_id": token,
        "version_stages": ["AWSPENDING"],
    }
    return token


def invoke(target: Target, outputs: dict[str, str], token: str, step: str) -> None:
    invoke_rotation_step(
        target, outputs["SecretRotationLambdaArn"], outputs["DBSecretArn"], token, step
    )


def test_d2_rotation_through_the_function_ends_with_the_database_on_awscurrent(
    target: Target, outputs: dict[str, str]
) -> None:
    old = secret_value(target, outputs, "AWSCURRENT")["password"]
    rotate(target, Console(record=True))
    assert settled_password() == secret_value(target, outputs, "AWSCURRENT")["password"] != old
    assert secret_value(target, outputs, "AWSPREVIOUS")["password"] == old


@pytest.fixture
def long_ago(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pending versions these tests leave count as interrupted (older than the window)."""
    monkeypatch.setattr(rotation_ops, "ROTATION_IN_FLIGHT_SECONDS", 0)


def test_d2_recovery_refuses_a_rotation_that_may_still_be_running(
    target: Target, outputs: dict[str, str]
) -> None:
    """A pending version a few seconds old may belong to a rotation Secrets Manager is
    retrying: clearing it under that rotation's feet is the race SPEC D2 forbids."""
    token = stage_pending(outputs)
    invoke(target, outputs, token, "createSecret")
    with pytest.raises(DeployError, match=f"version {token}\\) may still be running"):
        rotate(target, Console(record=True))
    assert "AWSPENDING" in stages(target, outputs)[token]  # left alone
    sm = target.client("secretsmanager")
    sm.update_secret_version_stage(
        SecretId=outputs["DBSecretArn"], VersionStage="AWSPENDING", RemoveFromVersionId=token
    )
    assert_database_on_awscurrent(target, outputs)


def test_d2_recovery_finishes_a_rotation_setsecret_had_applied(
    target: Target, outputs: dict[str, str], long_ago: None
) -> None:
    token = stage_pending(outputs)
    invoke(target, outputs, token, "createSecret")
    invoke(target, outputs, token, "setSecret")  # ...and the rotation stops here
    pending = secret_value(target, outputs, "AWSPENDING")["password"]
    assert "APPLIED" in stages(target, outputs)[token]
    assert settled_password() == pending != secret_value(target, outputs, "AWSCURRENT")["password"]
    console = Console(record=True, width=300)
    rotate(target, console)
    shown = console.export_text()
    assert (
        f"found an interrupted rotation: version {token} is AWSPENDING and setSecret had applied it"
        in shown
    )
    assert f"finished it with the same token: version {token} is AWSCURRENT" in shown
    assert "AWSPREVIOUS" in stages(target, outputs)[token], "finished, then rotated once more"
    assert_database_on_awscurrent(target, outputs)


def test_d2_recovery_clears_a_rotation_setsecret_had_not_applied(
    target: Target, outputs: dict[str, str], long_ago: None
) -> None:
    """setSecret died after ModifyDBCluster, before it could label or roll back: the database
    has the pending password, nothing says so. `loanstack rotate` puts AWSCURRENT's back."""
    token = stage_pending(outputs)
    invoke(target, outputs, token, "createSecret")
    pending = secret_value(target, outputs, "AWSPENDING")["password"]
    target.client("rds").modify_db_cluster(
        DBClusterIdentifier=CLUSTER, MasterUserPassword=pending, ApplyImmediately=True
    )
    assert settled_password() == pending
    console = Console(record=True, width=300)
    rotate(target, console)
    shown = console.export_text()
    assert f"version {token} is AWSPENDING, setSecret had not applied it" in shown
    assert f"cleared it: AWSPENDING removed from version {token}" in shown
    assert "put cluster" in shown and "back on AWSCURRENT's password" in shown
    assert "AWSPENDING" not in stages(target, outputs).get(token, [])
    assert_database_on_awscurrent(target, outputs)


def test_d2_a_plain_rotate_secret_is_refused_while_a_rotation_is_left_over(
    target: Target, outputs: dict[str, str], long_ago: None
) -> None:
    token = stage_pending(outputs)
    invoke(target, outputs, token, "createSecret")
    with pytest.raises(target.client("secretsmanager").exceptions.InvalidRequestException):
        target.client("secretsmanager").rotate_secret(SecretId=outputs["DBSecretArn"])
    console = Console(record=True, width=300)
    rotate(target, console)  # the recovery clears it (nothing was applied), then rotates
    assert "setSecret had not applied it" in console.export_text()
    assert_database_on_awscurrent(target, outputs)


def test_d2_a_batch_file_validated_while_a_rotation_runs_loses_no_row(
    target: Target,
    outputs: dict[str, str],
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the window this test must meet (the database on the new password before AWSCURRENT
    # moves) lasts as long as the function's own polls: the real ones
    tune_rotation_function(target, outputs, FIRST_POLL_SECONDS=REAL_POLL)
    bucket = outputs["LoanDocumentsBucketName"]
    s3 = target.client("s3")
    # the handler runs in this test's thread, not through the bucket's trigger (see docstring)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    config = target.client("lambda").get_function_configuration(
        FunctionName=outputs["LoanValidationFunctionName"]
    )
    for key, value in {
        **config["Environment"]["Variables"],
        "AWS_ENDPOINT_URL": emulator.url,
        "AWS_ACCESS_KEY_ID": "emulator",
        "AWS_SECRET_ACCESS_KEY": "emulator",
        "AWS_DEFAULT_REGION": REGION,
        "BATCH_SIZE": "5",
        "RETRY_BASE_SECONDS": "0.2",
        # the single-user window this test is about: the handler on the master secret (the
        # deployed function's own user rotates without one: test_app_user_on_emulator.py)
        "DB_SECRET_ARN": outputs["DBSecretArn"],
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    validation = load_function("loan_validation")

    rotation = threading.Thread(target=rotate, args=(target, Console(record=True)))
    files: list[tuple[str, list[str]]] = []
    with caplog.at_level(logging.WARNING):
        rotation.start()
        while rotation.is_alive() or not files:
            ids = [f"ROT-{uuid.uuid4().hex[:12]}" for _ in range(20)]
            key = f"incoming/rotation-{len(files)}.jsonl"
            body = "\n".join(json.dumps(post_deploy.application(i)) for i in ids)
            s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
            event = {"Records": [{"eventSource": "aws:s3", "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}]}  # fmt: skip
            validation.handler(event, None)
            files.append((key, ids))
        rotation.join()

    cluster = rds_backends[ACCOUNT_ID][REGION].clusters[CLUSTER]
    schema = clusterdata.schema(cluster, "loans")  # the cluster's own (two never share data)
    with emulator._mariadb.connect(schema) as conn, conn.cursor() as cur:
        for key, ids in files:
            report = json.loads(
                s3.get_object(Bucket=bucket, Key=f"reports/{key.removeprefix('incoming/')}.report.json")["Body"].read()
            )  # fmt: skip
            assert report["rows"] == 20 and report["summary"] == {"APPROVED": 20}, report
            cur.execute("SELECT COUNT(*) FROM loan_decisions WHERE loan_id IN %s", (tuple(ids),))
            assert cur.fetchone()[0] == 20, f"{key}: rows lost"
    retried = [r for r in caplog.records if r.getMessage() == "transient error, retrying"]
    assert any(getattr(r, "error", "") == "DatabaseErrorException" for r in retried), (
        "the batch never met the window where the database had the new password: not a test"
    )
    assert_database_on_awscurrent(target, outputs)
