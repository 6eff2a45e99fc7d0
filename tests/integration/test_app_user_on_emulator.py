"""The application's own database user on the emulator (issue 18 item 7): the validation function
records as `loan_app_<suffix>` with SELECT, INSERT, UPDATE on loans.loan_decisions only; the app secret
rotates with alternating users and the master's rotation leaves the function alone.

The emulator authenticates every non-master user against MariaDB's real accounts (made by the
SQL the stack's functions send) and runs its statements as that user, so a missing grant is
MySQL's 1142, as on Aurora.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from rich.console import Console

from loanstack.aws.target import Target
from loanstack.ops.rotate import rotate
from loanstack.stack import deploy
from tests.support import post_deploy

SUFFIX = "app42"


@pytest.fixture(scope="module")
def outputs(target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    target.outputs_file = Path(tmp_path_factory.mktemp("app-outputs")) / "outputs.json"
    d = deploy.Deployment(
        target, "dev", SUFFIX, deploy.parameters_for("dev", SUFFIX, {}), Console(record=True)
    )
    yield deploy.deploy(d, confirm=lambda: True)


def secret(target: Target, arn: str, stage: str = "AWSCURRENT") -> dict[str, Any]:
    reply = target.client("secretsmanager").get_secret_value(SecretId=arn, VersionStage=stage)
    return dict(json.loads(reply["SecretString"]))


def as_app(target: Target, outputs: dict[str, str], sql: str) -> Any:
    return target.client("rds-data").execute_statement(
        resourceArn=outputs["DBClusterArn"],
        secretArn=outputs["AppDatabaseSecretArn"],
        database="loans",
        sql=sql,
    )


def record(target: Target, outputs: dict[str, str]) -> str:
    """One application through the deployed function; its decision read back as the master."""
    return post_deploy.assert_validation_records_and_documents(target.client, outputs)


def test_the_function_records_a_loan_as_its_own_user(
    target: Target, outputs: dict[str, str]
) -> None:
    app = secret(target, outputs["AppDatabaseSecretArn"])
    assert app["username"] == f"loan_app_{SUFFIX}"
    assert app["masterarn"] == outputs["DBSecretArn"]
    config = target.client("lambda").get_function_configuration(
        FunctionName=outputs["LoanValidationFunctionName"]
    )
    assert config["Environment"]["Variables"]["DB_SECRET_ARN"] == outputs["AppDatabaseSecretArn"]
    record(target, outputs)
    who = as_app(target, outputs, "SELECT CURRENT_USER()")["records"][0][0]["stringValue"]
    assert who.startswith(f"loan_app_{SUFFIX}@")


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE loan_decisions",
        "ALTER TABLE loan_decisions ADD COLUMN extra INT",
        "CREATE TABLE other_table (a INT)",
        "DELETE FROM loan_decisions",
        "SELECT * FROM mysql.user",
    ],
)
def test_the_app_user_has_no_other_privilege(
    target: Target, outputs: dict[str, str], statement: str
) -> None:
    with pytest.raises(ClientError) as raised:
        as_app(target, outputs, statement)
    error = raised.value.response["Error"]
    assert error["Code"] == "DatabaseErrorException"
    assert "Database error code: 1142" in error["Message"]


def test_a_wrong_app_password_is_mysql_1045(target: Target, outputs: dict[str, str]) -> None:
    sm = target.client("secretsmanager")
    name = f"wrong-{uuid.uuid4().hex[:6]}"
    value = {**secret(target, outputs["AppDatabaseSecretArn"]), "password": "not-the-password"}
    arn = sm.create_secret(Name=name, SecretString=json.dumps(value))["ARN"]
    with pytest.raises(ClientError, match="Database error code: 1045"):
        target.client("rds-data").execute_statement(
            resourceArn=outputs["DBClusterArn"], secretArn=arn, database="loans", sql="SELECT 1"
        )


def invoke(target: Target, outputs: dict[str, str]) -> str:
    """One application through the deployed function, nothing read as the master (whose own
    rotation refuses its old password to the test, not to the function)."""
    loan_id = f"ROT-{uuid.uuid4().hex[:10]}"
    reply = target.client("lambda").invoke(
        FunctionName=outputs["LoanValidationFunctionName"],
        Payload=json.dumps(post_deploy.application(loan_id)),
    )
    body = json.loads(reply["Payload"].read())
    assert "FunctionError" not in reply, body
    assert body["decision"] == "APPROVED", body
    return loan_id


def keep_invoking(target: Target, outputs: dict[str, str], stop: threading.Event) -> list[str]:
    """Invoke the function until `stop`; every failure is kept, and "ok" for each success."""
    failures: list[str] = []

    def loop() -> None:
        while not stop.is_set():
            try:
                invoke(target, outputs)
                failures.append("ok")
            except Exception as exc:  # every failure is the finding
                failures.append(f"{type(exc).__name__}: {exc}")

    worker = threading.Thread(target=loop)
    worker.start()
    stop.wait_for = worker  # type: ignore[attr-defined]
    return failures


def test_app_rotations_alternate_users_and_the_function_never_meets_a_refusal(
    target: Target, outputs: dict[str, str]
) -> None:
    arn = outputs["AppDatabaseSecretArn"]
    stop = threading.Event()
    failures = keep_invoking(target, outputs, stop)
    try:
        rotate(target, Console(record=True), which="app")
        first = secret(target, arn)
        assert first["username"] == f"loan_app_{SUFFIX}_clone"
        assert secret(target, arn, "AWSPREVIOUS")["username"] == f"loan_app_{SUFFIX}"
        rotate(target, Console(record=True), which="app")
        assert secret(target, arn)["username"] == f"loan_app_{SUFFIX}"
        assert secret(target, arn, "AWSPREVIOUS") == first
        time.sleep(0.5)
    finally:
        stop.set()
        stop.wait_for.join()  # type: ignore[attr-defined]
    assert set(failures) == {"ok"}, [f for f in failures if f != "ok"]
    clone_grants = as_app(target, outputs, "SELECT CURRENT_USER()")  # still opens
    assert clone_grants["records"]
    # the previous user (AWSPREVIOUS) still opens the database until the next rotation
    previous = target.client("secretsmanager").get_secret_value(
        SecretId=arn, VersionStage="AWSPREVIOUS"
    )
    sm_arn = target.client("secretsmanager").create_secret(
        Name=f"prev-{uuid.uuid4().hex[:6]}", SecretString=previous["SecretString"]
    )["ARN"]
    reply = target.client("rds-data").execute_statement(
        resourceArn=outputs["DBClusterArn"],
        secretArn=sm_arn,
        database="loans",
        sql="SELECT COUNT(*) FROM loan_decisions",
    )
    assert reply["records"][0][0]["longValue"] >= 1


def test_a_master_rotation_does_not_disturb_the_function(
    target: Target, outputs: dict[str, str]
) -> None:
    app_before = secret(target, outputs["AppDatabaseSecretArn"])
    master_before = secret(target, outputs["DBSecretArn"])["password"]
    stop = threading.Event()
    failures = keep_invoking(target, outputs, stop)
    try:
        rotate(target, Console(record=True), which="master")
    finally:
        stop.set()
        stop.wait_for.join()  # type: ignore[attr-defined]
    assert set(failures) == {"ok"}, [f for f in failures if f != "ok"]
    assert secret(target, outputs["DBSecretArn"])["password"] != master_before
    assert secret(target, outputs["AppDatabaseSecretArn"]) == app_before
    record(target, outputs)
