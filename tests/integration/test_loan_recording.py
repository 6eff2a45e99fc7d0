"""Decisions recorded through the Data API against a real MySQL-compatible server (MariaDB).

The SQL the function sends is executed for real: idempotency, conflicts and batch inserts are
judged by what the table holds, not by a mock's call log.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import BUCKET

APP = {
    "loanId": "L-100", "applicantId": "A-7", "loanType": "mortgage", "loanAmount": 300000, "termMonths": 360,
    "annualInterestRate": 6.5, "creditScore": 760, "annualIncome": 150000, "monthlyDebtPayments": 800,
    "collateralValue": 400000,
}  # fmt: skip


def rows(loans: Any, where: str = "") -> list[tuple[Any, ...]]:
    with loans.bridge.server.connect() as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT loan_id, decision, reasons, monthly_payment, loan_to_value FROM loan_decisions {where} ORDER BY loan_id"
        )
        return list(cur.fetchall())


def inserts(loans: Any) -> int:
    """Data API calls that wrote decisions (each one statement carrying a whole chunk)."""
    return sum(s.lstrip().startswith("INSERT") for s in loans.bridge.statements)


def document(key: str) -> dict[str, Any]:
    return dict(json.loads(boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()))


def test_r11_a_decision_is_recorded_once_and_documented(loans: Any) -> None:
    result = loans.handler(APP, None)
    assert result["decision"] == "APPROVED"
    [(loan_id, decision, reasons, payment, ltv)] = rows(loans)
    assert (loan_id, decision, reasons) == ("L-100", "APPROVED", "")
    assert float(payment) == result["metrics"]["monthlyPayment"] == 1896.2
    assert float(ltv) == 0.75
    assert document("validations/L-100.json") == result


def test_r11_resubmitting_the_same_application_returns_the_stored_answer_without_a_new_row(
    loans: Any,
) -> None:
    first = loans.handler(APP, None)
    again = loans.handler(dict(reversed(list(APP.items()))), None)  # same content, other key order
    assert again == first
    assert len(rows(loans)) == 1


def test_r11_same_loan_id_with_other_content_is_a_conflict_and_the_row_is_kept(loans: Any) -> None:
    loans.handler(APP, None)
    conflict = loans.handler({**APP, "loanAmount": 390000}, None)
    assert conflict["decision"] == "CONFLICT"
    assert "recorded" not in conflict  # D8: the recorded decision is not the caller's to see
    assert conflict["errors"][0]["field"] == "loanId"
    [(_, decision, *_)] = rows(loans)
    assert decision == "APPROVED"
    assert document("validations/L-100.json")["decision"] == "APPROVED"


def test_r11_invalid_input_writes_nothing(loans: Any) -> None:
    result = loans.handler({**APP, "creditScore": "excellent"}, None)
    assert result["decision"] == "INVALID"
    assert loans.bridge.calls == {"ExecuteStatement": 0, "BatchExecuteStatement": 0}
    assert boto3.client("s3").list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


def test_r11_a_list_is_answered_in_order_with_a_summary_in_one_batch(loans: Any) -> None:
    apps = [
        {**APP, "loanId": f"L-{i}", "creditScore": score}
        for i, score in enumerate([760, 600, 500, 760, 700])
    ]
    apps.insert(2, {"loanId": "broken"})
    out = loans.handler(apps, None)
    assert [r.get("loanId") for r in out["results"]] == [
        "L-0",
        "L-1",
        "broken",
        "L-2",
        "L-3",
        "L-4",
    ]
    assert [r["decision"] for r in out["results"]] == [
        "APPROVED",
        "MANUAL_REVIEW",
        "INVALID",
        "REJECTED",
        "APPROVED",
        "APPROVED",
    ]
    assert out["summary"] == {"APPROVED": 3, "MANUAL_REVIEW": 1, "INVALID": 1, "REJECTED": 1}
    assert len(rows(loans)) == 5
    assert inserts(loans) == 1


def test_r11_duplicates_inside_one_list_are_one_row(loans: Any) -> None:
    out = loans.handler([APP, APP, {**APP, "creditScore": 600}], None)
    assert [r["decision"] for r in out["results"]] == ["APPROVED", "APPROVED", "CONFLICT"]
    assert len(rows(loans)) == 1


def test_r11_a_loan_repeated_in_one_list_has_its_document_written_once(
    loans: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys: list[str] = []
    make = loans.s3_client

    def counting() -> Any:
        client = make()
        client.meta.events.register(
            "provide-client-params.s3.PutObject", lambda params, **_: keys.append(params["Key"])
        )
        return client

    monkeypatch.setattr(loans, "s3_client", counting)
    out = loans.handler([APP, APP, {**APP, "loanId": "L-101"}, APP], None)
    assert [r["decision"] for r in out["results"]] == ["APPROVED"] * 4
    assert sorted(keys) == ["validations/L-100.json", "validations/L-101.json"]
    assert document("validations/L-100.json") == out["results"][0]


def test_r11_logs_carry_no_personal_data(loans: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        loans.handler({**APP, "applicantName": "Jane Q. Doe", "nationalId": "123-45-6789"}, None)
        loans.handler(
            {**APP, "loanId": "L-101", "creditScore": "n/a", "applicantName": "Jane Q. Doe"}, None
        )
    text = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    for personal in ("Jane", "123-45-6789", "A-7", "150000"):
        assert personal not in text
    assert [getattr(r, "loanId", None) for r in caplog.records if r.msg == "loan decision"] == [
        "L-100",
        "L-101",
    ]


def test_r11_permanent_database_failure_of_a_batch_file_raises_for_the_dead_letter_queue(
    loans: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Denied:
        def execute_statement(self, **_: Any) -> Any:
            raise ClientError(
                {"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "ExecuteStatement"
            )

        batch_execute_statement = execute_statement

    monkeypatch.setattr(loans, "rds_data_client", Denied)
    boto3.client("s3").put_object(
        Bucket=BUCKET, Key="incoming/x.jsonl", Body=json.dumps(APP) + "\n"
    )
    event = {
        "Records": [{"s3": {"bucket": {"name": BUCKET}, "object": {"key": "incoming/x.jsonl"}}}]
    }
    with pytest.raises(ClientError, match="AccessDenied"):
        loans.handler(event, None)
