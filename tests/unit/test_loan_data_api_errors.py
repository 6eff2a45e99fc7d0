"""Data API failures judged by what MySQL says, whatever the exception code (R11, D1, D2).

On provisioned and Serverless v2 clusters a SQL or login failure is DatabaseErrorException;
BadRequestException only appears on Serverless v1
(https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/API_ExecuteStatement.html).
The Data API puts MySQL's error number in the message ("Database error code: 1213. Message:
..."). Deadlocks and lock wait timeouts are retried (the statements are idempotent); a writer that
is restarting or failing over is waited out inside a bounded window; no retry outlives the
invocation's remaining time. The rds-data client is stubbed with botocore's Stubber, answering
the error codes the API reference lists.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from tests.support.helpers import load_function

loans = load_function("loan_validation")

APP = {
    "loanId": "L-100", "applicantId": "A-7", "loanType": "mortgage", "loanAmount": 300000, "termMonths": 360,
    "annualInterestRate": 6.5, "creditScore": 760, "annualIncome": 150000, "monthlyDebtPayments": 800,
    "collateralValue": 400000,
}  # fmt: skip
DENIED_V2 = ("DatabaseErrorException", "Database error code: 1045. Message: Access denied for user 'loanadmin'@'10.40.1.7' (using password: YES)")  # fmt: skip
DEADLOCK_V2 = ("DatabaseErrorException", "Database error code: 1213. Message: Deadlock found when trying to get lock; try restarting transaction")  # fmt: skip
LOCK_WAIT_V1 = ("BadRequestException", "Database error code: 1205. Message: Lock wait timeout exceeded; try restarting transaction")  # fmt: skip
UNAVAILABLE = ("DatabaseUnavailableException", "")
ARNS = {
    "resourceArn": "arn:aws:rds:us-east-1:123456789012:cluster:c",
    "secretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:s-AbCdEf",
}


def error(code: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "ExecuteStatement")


class Clock:
    """The function's clock and sleep, without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Context:
    """Lambda's context object, as far as the function reads it."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        self.clock, self.ends = clock, clock.now + seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self.ends - self.clock.now) * 1000)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    fake = Clock()
    monkeypatch.setattr(loans.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(loans.time, "sleep", fake.sleep)
    monkeypatch.setenv("RETRY_BASE_SECONDS", "0.5")
    monkeypatch.setattr(loans, "_deadline", float("inf"))
    yield fake


@pytest.mark.parametrize(
    ("code", "message", "kind"),
    [
        (*DENIED_V2, "rotation"),
        (
            "BadRequestException",
            "Access denied for user 'loanadmin'@'10.40.1.7' (using password: YES)",
            "rotation",
        ),
        (*DEADLOCK_V2, "locks"),
        ("BadRequestException", "Database error code: 1213. Message: Deadlock found", "locks"),
        (*LOCK_WAIT_V1, "locks"),
        (
            "DatabaseErrorException",
            "Lock wait timeout exceeded; try restarting transaction",
            "locks",
        ),
        (
            "BadRequestException",
            "Database error: (1213, 'Deadlock found when trying to get lock')",
            "locks",
        ),
        (
            "DatabaseErrorException",
            "Database error code: 1062. Message: Duplicate entry '1213' for key 'PRIMARY'",
            "permanent",
        ),
        (
            "DatabaseErrorException",
            "Database error code: 1064. Message: You have an error in your SQL syntax",
            "permanent",
        ),
        ("DatabaseResumingException", "", "resuming"),
        (*UNAVAILABLE, "unavailable"),
        ("DatabaseNotFoundException", "", "unavailable"),
        ("StatementTimeoutException", "", "statement-timeout"),
        ("ThrottlingException", "", "transient"),
        ("BadRequestException", "Communications link failure", "transient"),
        ("AccessDeniedException", "Access denied for user 'x'", "permanent"),
        ("HttpEndpointNotEnabledException", "", "permanent"),
    ],
)
def test_r11_a_failure_is_classified_by_what_mysql_says(code: str, message: str, kind: str) -> None:
    assert loans.classify(error(code, message)) == kind


def test_d2_the_rotation_window_opens_on_database_error_exception_1045(clock: Clock) -> None:
    """Serverless v2 / provisioned: the rotation's access-denied seconds are waited out."""
    client = boto3.client("rds-data", region_name="us-east-1")
    with Stubber(client) as stub:
        for _ in range(8):  # more than RETRY_ATTEMPTS (6), inside AUTH_RETRY_SECONDS
            stub.add_client_error("execute_statement", *DENIED_V2, http_status_code=400)
        stub.add_response("execute_statement", {"records": [], "numberOfRecordsUpdated": 0})
        assert loans.with_retries(client.execute_statement, **ARNS, sql="SELECT 1")  # fmt: skip
        stub.assert_no_pending_responses()
    assert clock.now - 1000 <= 90


@pytest.mark.parametrize("failure", [DEADLOCK_V2, LOCK_WAIT_V1])
def test_r11_deadlocks_and_lock_wait_timeouts_are_retried(failure: tuple[str, str], clock: Clock) -> None:  # fmt: skip
    client = boto3.client("rds-data", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error("execute_statement", *failure, http_status_code=400)
        stub.add_client_error("execute_statement", *failure, http_status_code=400)
        stub.add_response("execute_statement", {"numberOfRecordsUpdated": 1})
        got = loans.with_retries(client.execute_statement, **ARNS, sql="X")
        assert got["numberOfRecordsUpdated"] == 1
        stub.assert_no_pending_responses()


def test_r11_lock_retries_are_bounded_by_the_attempt_count(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRY_ATTEMPTS", "3")
    calls = []

    def deadlock(**_: Any) -> None:
        calls.append(1)
        raise error(*DEADLOCK_V2)

    with pytest.raises(ClientError, match="1213"):
        loans.with_retries(deadlock)
    assert len(calls) == 3


def outage(clock: Clock, seconds: float, answer: Any) -> Any:
    """A call that answers DatabaseUnavailableException for `seconds`, then `answer`."""
    ends = clock.now + seconds

    def call(**_: Any) -> Any:
        if clock.now < ends:
            raise error(*UNAVAILABLE)
        return answer

    return call


def test_r11_a_30_second_writer_outage_is_waited_out(clock: Clock) -> None:
    assert loans.with_retries(outage(clock, 30, "ok")) == "ok"
    assert clock.now - 1000 >= 30


def test_r11_the_failover_window_is_bounded(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAILOVER_RETRY_SECONDS", "40")
    with pytest.raises(ClientError, match="DatabaseUnavailable"):
        loans.with_retries(outage(clock, 3600, "ok"))
    assert 20 <= clock.now - 1000 <= 40


def test_r11_no_retry_outlives_the_invocation(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """25 s left and a 10-s reserve: the retries stop by 15 s although the window is 90 s."""
    monkeypatch.setenv("TIME_RESERVE_SECONDS", "10")
    loans.begin(Context(clock, 25))
    with pytest.raises(ClientError, match="DatabaseUnavailable"):
        loans.with_retries(outage(clock, 60, "ok"))
    assert clock.now - 1000 <= 15


def test_r11_a_statement_timeout_is_retried_once_only_when_a_whole_statement_fits(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def slow(**_: Any) -> None:
        calls.append(1)
        raise error("StatementTimeoutException", "")

    with pytest.raises(ClientError):
        loans.with_retries(slow)
    assert len(calls) == 2  # one retry, not RETRY_ATTEMPTS of 45 s each
    calls.clear()
    monkeypatch.setenv("TIME_RESERVE_SECONDS", "0")
    loans.begin(Context(clock, 40))  # less than one statement's 45 s left
    with pytest.raises(ClientError):
        loans.with_retries(slow)
    assert len(calls) == 1


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    """The function's rds-data client, stubbed; no documents bucket (no S3 call)."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "DB_CLUSTER_ARN": "arn:aws:rds:us-east-1:123456789012:cluster:c",
        "DB_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:s-AbCdEf",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("DOCUMENTS_BUCKET", raising=False)
    client = boto3.client("rds-data", region_name="us-east-1")
    monkeypatch.setattr(loans, "rds_data_client", lambda: client)
    monkeypatch.setattr(loans, "_table_ready", True)
    monkeypatch.setattr(loans, "_counts_found_rows", False)
    with Stubber(client) as stub:
        yield stub


def test_r11_a_direct_invocation_through_a_writer_outage_is_recorded_once(
    clock: Clock, stubbed: Stubber
) -> None:
    for _ in range(8):  # about 30 s of backoff
        stubbed.add_client_error("execute_statement", *UNAVAILABLE, http_status_code=504)
    stubbed.add_response("execute_statement", {"numberOfRecordsUpdated": 1})
    result = loans.handler(dict(APP), Context(clock, 900))
    assert result["decision"] == "APPROVED"
    stubbed.assert_no_pending_responses()  # one INSERT answered; every row new: no read-back


def test_r11_a_direct_invocation_gives_up_before_lambda_would_end_it(
    clock: Clock, stubbed: Stubber, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIME_RESERVE_SECONDS", "5")
    for _ in range(40):
        stubbed.add_client_error("execute_statement", *UNAVAILABLE, http_status_code=504)
    with pytest.raises(ClientError, match="DatabaseUnavailable"):
        loans.handler(dict(APP), Context(clock, 20))
    assert clock.now - 1000 <= 15


class Recorder:
    """An rds-data client that records each statement's parameters and counts every row new."""

    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []

    def execute_statement(self, **kwargs: Any) -> dict[str, Any]:
        [parameter] = kwargs["parameters"]
        document = json.loads(parameter["value"]["stringValue"])
        self.documents.append(document)
        return {"numberOfRecordsUpdated": len(document["rows"]), "records": []}


def test_r11_a_chunk_takes_its_row_locks_in_loan_id_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two invocations with overlapping ids lock rows in one order (the rows are sent sorted
    by loan id), and each answer still lands at its own position."""
    for key, value in ARNS.items():
        monkeypatch.setenv({"resourceArn": "DB_CLUSTER_ARN", "secretArn": "DB_SECRET_ARN"}[key], value)  # fmt: skip
    client = Recorder()
    monkeypatch.setattr(loans, "rds_data_client", lambda: client)
    monkeypatch.setattr(loans, "_table_ready", True)
    monkeypatch.setattr(loans, "_counts_found_rows", False)
    monkeypatch.delenv("DOCUMENTS_BUCKET", raising=False)
    ids = ["L-9", "L-10", "A-1", "L-1", "Z-0", "L_2"]
    out = loans.handler([{**APP, "loanId": i, "creditScore": 700 + n} for n, i in enumerate(ids)], None)  # fmt: skip
    [document] = client.documents
    sent = [row[0] for row in document["rows"]]
    assert sent == sorted(ids) != ids  # code point order, as utf8mb4_bin and the primary key
    assert [r["loanId"] for r in out["results"]] == ids
