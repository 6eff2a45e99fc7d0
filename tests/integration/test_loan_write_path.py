"""The write path's statements on a real MySQL-compatible server (MariaDB through the Data API
bridge), and opt-in on a real Aurora cluster: the answers stay those of the read-back while the
read-back is skipped when every row of a chunk is new (R11, D6).

That skip is sound only if the Data API's connections count an unchanged duplicate as 0 rows
(no CLIENT_FOUND_ROWS, https://dev.mysql.com/doc/refman/8.0/en/insert-on-duplicate.html): the
same chunk sent twice must count 0 the second time. The function also asks once per execution
environment (FOUND_ROWS_PROBE) and reads back whenever the connections count found rows.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import BUCKET
from tests.integration.test_loan_recording import APP, inserts, rows
from tests.unit.test_loan_properties import applications


def entries(loans: Any, *apps: dict[str, Any]) -> list[Any]:
    limits = loans.thresholds()
    return [loans.Entry(*loans.evaluate(app, limits)) for app in apps]


def chunk_parameter(loans: Any, chunk: list[Any]) -> list[dict[str, Any]]:
    document = json.dumps({"source": "", "rows": [json.loads(e.text) for e in chunk]})
    return [{"name": "chunk", "value": {"stringValue": document}}]


def read_backs(loans: Any) -> int:
    return sum(s.lstrip().startswith("SELECT j.n") for s in loans.bridge.statements)


def test_r11_the_same_chunk_sent_twice_counts_no_found_rows(loans: Any) -> None:
    client = loans.rds_data_client()
    loans.ensure_table(client)
    chunk = chunk_parameter(loans, entries(loans, APP, {**APP, "loanId": "L-101"}))
    assert loans.sql(client, loans.INSERT, parameters=chunk)["numberOfRecordsUpdated"] == 2
    assert loans.sql(client, loans.INSERT, parameters=chunk)["numberOfRecordsUpdated"] == 0
    assert loans.counts_found_rows(client, "L-100") is False


def test_r11_a_chunk_of_new_rows_is_not_read_back_and_answers_are_unchanged(loans: Any) -> None:
    apps = [{**APP, "loanId": f"N-{i}", "creditScore": 600 + 40 * i} for i in range(4)]
    first = loans.handler(apps, None)
    assert read_backs(loans) == 0 and inserts(loans) == 1
    again = loans.handler(apps, None)  # every row stored already: read back, same answers
    assert read_backs(loans) == 1
    assert again == first
    assert len(rows(loans)) == 4


def test_r11_a_conflict_is_found_when_the_connections_count_found_rows(
    loans: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were CLIENT_FOUND_ROWS set, a chunk of duplicates would count as all new: the probe's
    answer makes the function read back, so a conflict is still reported."""
    loans.handler(APP, None)
    monkeypatch.setattr(loans, "_counts_found_rows", True)
    original = loans.sql

    def found_rows(client: Any, statement: str, **kwargs: Any) -> Any:
        answer = original(client, statement, **kwargs)
        if statement == loans.INSERT:
            answer = {**answer, "numberOfRecordsUpdated": 1}  # as CLIENT_FOUND_ROWS would count
        return answer

    monkeypatch.setattr(loans, "sql", found_rows)
    assert loans.handler({**APP, "creditScore": 600}, None)["decision"] == "CONFLICT"


def test_r11_a_repeated_id_closes_the_chunk_and_the_first_row_wins(loans: Any) -> None:
    """Without ORDER BY the first row of an id still wins: the repeat goes in the next chunk."""
    other = {**APP, "creditScore": 600}
    out = loans.handler([APP, {**APP, "loanId": "L-2"}, other, APP], None)
    assert [r["decision"] for r in out["results"]] == ["APPROVED", "APPROVED", "CONFLICT", "APPROVED"]  # fmt: skip
    assert inserts(loans) == 3  # [APP, L-2] [other] [APP]
    assert rows(loans, "WHERE loan_id = 'L-100'")[0][1] == "APPROVED"


def test_r11_rows_sent_out_of_id_order_are_answered_in_their_own_order(loans: Any) -> None:
    """The chunk is sent sorted by loan id (one lock order); answers map back to the input."""
    loans.handler([{**APP, "loanId": "Z-9", "creditScore": 600}, APP], None)
    out = loans.handler(
        [{**APP, "loanId": "Z-9", "creditScore": 500}, {**APP, "loanId": "M-5"}, APP], None
    )
    decisions = [(r["loanId"], r["decision"]) for r in out["results"]]
    assert decisions == [("Z-9", "CONFLICT"), ("M-5", "APPROVED"), ("L-100", "APPROVED")]
    assert "recorded" not in out["results"][0]  # a CONFLICT discloses nothing recorded (D8)


def test_r11_a_value_that_is_not_a_scalar_is_an_error_not_a_null(loans: Any) -> None:
    """ERROR ON ERROR: an array where a string belongs raises instead of storing NULL."""
    client = loans.rds_data_client()
    loans.ensure_table(client)
    [entry] = entries(loans, APP)
    row = json.loads(entry.text)
    row[5] = ["AMOUNT_ABOVE_LIMIT"]
    document = json.dumps({"source": "", "rows": [row]})
    with pytest.raises(Exception, match=r"4178|scalar"):
        loans.sql(client, loans.INSERT, parameters=[{"name": "chunk", "value": {"stringValue": document}}])  # fmt: skip
    assert rows(loans) == []


class Faulty:
    """The function's Data API client, answering `failures` (Data API error shapes, MySQL's number
    in the message as the Data API gives it) before the statement they stand in front of."""

    def __init__(self, client: Any, before: str, *failures: tuple[str, str]) -> None:
        self.client, self.before, self.failures = client, before, list(failures)
        self.raised = 0

    def execute_statement(self, **kwargs: Any) -> Any:
        if self.failures and kwargs["sql"].lstrip().startswith(self.before):
            code, message = self.failures.pop(0)
            self.raised += 1
            raise ClientError({"Error": {"Code": code, "Message": message}}, "ExecuteStatement")
        return self.client.execute_statement(**kwargs)


DEADLOCK = ("DatabaseErrorException", "Database error code: 1213. Message: Deadlock found when trying to get lock; try restarting transaction")  # fmt: skip
DENIED = ("DatabaseErrorException", "Database error code: 1045. Message: Access denied for user 'loanadmin'@'10.40.1.7' (using password: YES)")  # fmt: skip


UNAVAILABLE = ("DatabaseUnavailableException", "")


@pytest.mark.parametrize(
    "failures",
    [[DEADLOCK], [DENIED] * 7, [UNAVAILABLE] * 7],
    ids=["deadlock", "rotation", "failover"],
)
def test_r11_a_batch_file_ends_recorded_once_through_a_deadlock_a_rotation_or_a_failover(
    loans: Any, monkeypatch: pytest.MonkeyPatch, failures: list[tuple[str, str]]
) -> None:
    monkeypatch.setenv("RETRY_BASE_SECONDS", "0")
    client = loans.rds_data_client()
    faulty = Faulty(client, "INSERT", *failures)
    monkeypatch.setattr(loans, "rds_data_client", lambda: faulty)
    body = "\n".join(json.dumps({**APP, "loanId": f"F-{i}"}) for i in range(5)) + "\n"
    boto3.client("s3").put_object(Bucket=BUCKET, Key="incoming/f.jsonl", Body=body)
    event = {"Records": [{"s3": {"bucket": {"name": BUCKET}, "object": {"key": "incoming/f.jsonl"}}}]}  # fmt: skip
    [report] = loans.handler(event, None)["reports"]
    assert faulty.raised == len(failures)
    assert report["summary"] == {"APPROVED": 5}
    assert len(rows(loans)) == 5 and inserts(loans) == 1  # the bridge saw one INSERT succeed


def test_r11_a_direct_invocation_ends_recorded_once_through_a_deadlock(
    loans: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRY_BASE_SECONDS", "0")
    faulty = Faulty(loans.rds_data_client(), "INSERT", DEADLOCK, DEADLOCK)
    monkeypatch.setattr(loans, "rds_data_client", lambda: faulty)
    assert loans.handler(dict(APP), None)["decision"] == "APPROVED"
    assert faulty.raised == 2 and len(rows(loans)) == 1


AWS = os.environ.get("LOANSTACK_AWS_TESTS") == "1"


@pytest.mark.aws
@pytest.mark.skipif(not AWS, reason="real-AWS checks are opt-in: set LOANSTACK_AWS_TESTS=1")
def test_r11_the_data_api_counts_no_found_rows_on_aurora() -> None:
    """The same chunk twice through the real Data API, on a scratch table dropped afterwards."""
    from loanstack.aws.outputs import read_outputs

    outputs = read_outputs()
    client = boto3.client("rds-data")
    arns = {"resourceArn": outputs["DBClusterArn"], "secretArn": outputs["DBSecretArn"]}
    table = f"found_rows_probe_{uuid.uuid4().hex[:12]}"

    def run(statement: str, **kwargs: Any) -> Any:
        return client.execute_statement(**arns, database="loans", sql=statement, **kwargs)

    run(f"CREATE TABLE {table} (id VARCHAR(64) NOT NULL PRIMARY KEY)")
    try:
        document = json.dumps({"rows": [["a"], ["b"]]})
        chunk = [{"name": "chunk", "value": {"stringValue": document}}]
        insert = (
            f"INSERT INTO {table} (id) SELECT j.id FROM JSON_TABLE(:chunk, '$.rows[*]' COLUMNS "
            "(id VARCHAR(64) PATH '$[0]' ERROR ON EMPTY ERROR ON ERROR)) AS j "
            f"ON DUPLICATE KEY UPDATE {table}.id = {table}.id"
        )
        assert run(insert, parameters=chunk)["numberOfRecordsUpdated"] == 2
        assert run(insert, parameters=chunk)["numberOfRecordsUpdated"] == 0
    finally:
        run(f"DROP TABLE {table}")


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(applications, min_size=1, max_size=12))
def test_r11_the_stored_answer_built_by_the_database_is_json_dumps_of_the_result(
    loans: Any, apps: list[dict[str, Any]]
) -> None:
    """result_json is written by the INSERT from the row's own fields (RESULT_JSON), not sent:
    it must be byte for byte json.dumps(result, sort_keys=True), every reason list and a missing
    LTV included; and the read-back, which rebuilds it the same way, finds nothing to change."""
    loans.bridge.server.reset()
    loans._table_ready = False
    apps = [{**app, "loanId": f"P-{i}"} for i, app in enumerate(apps)]
    first = loans.handler(apps, None)["results"]
    with loans.bridge.server.connect() as conn, conn.cursor() as cur:
        cur.execute(loans.TABLE)  # (not made when every application is INVALID)
        cur.execute("SELECT loan_id, result_json FROM loan_decisions")
        stored = dict(cur.fetchall())
    decided = {r["loanId"]: r for r in first if r["decision"] != "INVALID"}
    assert stored == {i: json.dumps(r, sort_keys=True) for i, r in decided.items()}
    before = len(loans.bridge.statements)
    assert loans.handler(apps, None)["results"] == first  # read back: the same answers
    read_back = [s for s in loans.bridge.statements[before:] if s.lstrip().startswith("SELECT j.n")]
    assert len(read_back) == (1 if decided else 0)
