"""Issue 12, part 1: inputs that used to sink a call or a whole batch file, each one a reproducer.

Every case runs the function as deployed (Data API on MariaDB, S3 on moto) and checks what the
table and the report hold: a decision or INVALID per row, never an exception.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import boto3
import pytest

from loanstack import template
from tests.integration.conftest import BUCKET
from tests.integration.test_loan_batch_files import put, report, s3_event
from tests.integration.test_loan_recording import APP, rows

MiB = 2**20


@pytest.mark.parametrize(
    ("changes", "decision"),
    [
        ({"loanAmount": 10**400}, "INVALID"),  # was OverflowError
        ({"annualInterestRate": 1e-17}, "APPROVED"),  # was ZeroDivisionError
        ({"annualInterestRate": 5e-324}, "APPROVED"),  # the smallest positive float
        ({"annualIncome": 1e-300}, "INVALID"),  # was decimal.InvalidOperation
        ({"collateralValue": 1e-300}, "INVALID"),
        ({"collateralValue": 0.003}, "INVALID"),  # was "Out of range value for loan_to_value"
        ({"collateralValue": 0.01}, "REJECTED"),  # LTV 30,000,000 is stored
        ({"annualIncome": 0.01, "termMonths": 120}, "REJECTED"),  # DTI ~2.5e12 is stored
        ({"loanAmount": 1e9, "termMonths": 120, "annualInterestRate": 100}, "REJECTED"),
    ],
)
def test_numbers_the_schema_meets_end_as_a_decision_or_invalid(
    loans: Any, changes: dict[str, Any], decision: str
) -> None:
    result = loans.handler({**APP, **changes}, None)
    assert result["decision"] == decision
    if decision == "INVALID":
        assert loans.bridge.statements == []  # nothing written
    else:
        assert len(rows(loans)) == 1


def test_a_tiny_rate_pays_like_zero_percent_to_the_cent(loans: Any) -> None:
    zero = loans.handler({**APP, "loanId": "Z-0", "annualInterestRate": 0}, None)
    tiny = loans.handler({**APP, "loanId": "Z-1", "annualInterestRate": 1e-17}, None)
    assert tiny["metrics"] == zero["metrics"]  # 300,000 / 360 = 833.33 either way


def test_r11_loan_ids_differing_only_in_case_are_two_loans(loans: Any) -> None:
    first = loans.handler({**APP, "loanId": "L-1"}, None)
    second = loans.handler({**APP, "loanId": "l-1", "creditScore": 600}, None)  # was KeyError
    assert (first["decision"], second["decision"]) == ("APPROVED", "MANUAL_REVIEW")
    assert [r[:2] for r in rows(loans)] == [("L-1", "APPROVED"), ("l-1", "MANUAL_REVIEW")]
    out = loans.handler([{**APP, "loanId": "x-9"}, {**APP, "loanId": "X-9"}], None)
    assert out["summary"] == {"APPROVED": 2}


def upgrade_sql() -> str:
    """The one-time migration as the README gives it (so the README's SQL is what is tested)."""
    readme = (template.ROOT / "README.md").read_text()
    section = readme.split("### Upgrading the decisions table", 1)[1]
    return section.split("```sql\n", 1)[1].split("```", 1)[0]


def test_a_table_of_the_previous_version_is_refused_until_migrated_by_the_readme(
    loans: Any,
) -> None:
    """No DDL from a cold start: the function says what to do; the README's ALTER fixes it."""
    old = loans.TABLE.replace(
        "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY", "NOT NULL PRIMARY KEY"
    ).replace("DECIMAL(20,4)", "DECIMAL(12,4)")
    old = old.replace("VARCHAR(1100)", "VARCHAR(1024)")
    with loans.bridge.server.connect() as conn, conn.cursor() as cur:
        cur.execute(old)
    with pytest.raises(loans.OutdatedTable, match="Upgrading the decisions table"):
        loans.handler({**APP, "loanId": "M-1"}, None)
    with loans.bridge.server.connect() as conn, conn.cursor() as cur:
        cur.execute(upgrade_sql())
        cur.execute(loans.OUTDATED)
        assert cur.fetchone() == (0,)
    loans.handler({**APP, "loanId": "M-1"}, None)
    assert loans.handler({**APP, "loanId": "m-1", "collateralValue": 0.01}, None)["decision"] == (
        "REJECTED"
    )
    assert [r[0] for r in rows(loans)] == ["M-1", "m-1"]


def test_a_list_too_long_for_a_synchronous_answer_is_one_invalid_result(loans: Any) -> None:
    """[{}] * 20000 answered 12 MB, over Lambda's 6 MB response limit."""
    out = loans.handler([{}] * (loans.MAX_LIST_ITEMS + 1), None)
    assert out["decision"] == "INVALID" and "batch file" in out["errors"][0]["message"]
    assert len(loans.handler([{}] * loans.MAX_LIST_ITEMS, None)["results"]) == loans.MAX_LIST_ITEMS


def csv_file(rows_count: int, damaged: int) -> str:
    lines = [",".join(APP)]
    for i in range(1, rows_count + 1):
        values = [f"C-{i}", *(str(v) for v in list(APP.values())[1:])]
        if i == damaged:
            values[1] = '"A-7'  # a quote opened and never closed
        lines.append(",".join(values))
    return "\n".join(lines) + "\n"


def test_r11_an_unclosed_csv_quote_in_row_4_of_50_loses_only_that_row(loans: Any) -> None:
    put("incoming/quote.csv", csv_file(50, damaged=4))
    [summary] = loans.handler(s3_event("incoming/quote.csv"), None)["reports"]
    assert summary["rows"] == 50  # was 4
    assert summary["summary"] == {"APPROVED": 49, "INVALID": 1}
    [problem] = report(summary["report"])["problems"]
    assert problem["line"] == 5 and "quoted field" in problem["errors"][0]["message"]
    assert len(rows(loans)) == 49  # was 3


def test_an_unreadable_csv_header_makes_every_row_invalid_and_counted(loans: Any) -> None:
    put("incoming/header.csv", b"\xffloanId,applicantId\nL-1,A-1\nL-2,A-2\n")
    [summary] = loans.handler(s3_event("incoming/header.csv"), None)["reports"]
    assert summary["rows"] == 2 and summary["summary"] == {"INVALID": 2}
    problems = report(summary["report"])["problems"]
    assert "header (line 1)" in problems[0]["errors"][0]["message"]


@pytest.mark.parametrize("depth", [60_000, 100_000])
def test_deeply_nested_json_lines_are_invalid_rows(loans: Any, depth: int) -> None:
    body = json.dumps({**APP, "loanId": "N-1"}) + "\n" + "[" * depth + "\n"
    put("incoming/nested.jsonl", body + json.dumps({**APP, "loanId": "N-2"}) + "\n")
    [summary] = loans.handler(s3_event("incoming/nested.jsonl"), None)[
        "reports"
    ]  # was RecursionError
    assert summary["summary"] == {"APPROVED": 2, "INVALID": 1}
    [problem] = report(summary["report"])["problems"]
    message = "longer than 65536 bytes" if depth > 65536 else "not valid JSON"
    assert problem["line"] == 2 and message in problem["errors"][0]["message"]


def test_r11_a_line_past_the_maximum_is_invalid_and_reading_goes_on(loans: Any) -> None:
    long_line = json.dumps({**APP, "loanId": "X-1", "notes": "n" * 3_000_000})
    body = "\n".join([json.dumps({**APP, "loanId": "X-0"}), long_line, json.dumps(APP)]) + "\n"
    put("incoming/long.jsonl", body)
    [summary] = loans.handler(s3_event("incoming/long.jsonl"), None)["reports"]
    assert summary["rows"] == 3 and summary["summary"] == {"APPROVED": 2, "INVALID": 1}


@pytest.mark.parametrize(
    ("record", "complaint"),
    [
        ({"s3": {}}, "s3.bucket.name"),
        ({"s3": None}, "s3.bucket.name"),
        (None, "s3.bucket.name"),
        ({"s3": {"bucket": {"name": BUCKET}, "object": {"key": 7}}}, "s3.object.key"),
    ],
)
def test_malformed_s3_events_get_one_clear_error_each(
    loans: Any, record: Any, complaint: str
) -> None:
    good = s3_event("incoming/good.jsonl")["Records"][0]
    put("incoming/good.jsonl", json.dumps(APP) + "\n")
    out = loans.handler({"Records": [record, good]}, None)
    bad, fine = out["reports"]
    assert set(bad) == {"error"} and complaint in bad["error"] and "record 0" in bad["error"]
    assert fine["summary"] == {"APPROVED": 1}


def test_a_key_longer_than_the_old_source_column_still_processes(loans: Any) -> None:
    key = "incoming/" + "k" * 1000 + ".jsonl"  # 1,015 bytes: S3 allows up to 1,024
    put(key, json.dumps(APP) + "\n")
    [summary] = loans.handler(s3_event(key), None)["reports"]
    assert summary["summary"] == {"APPROVED": 1}
    assert len(summary["report"].encode()) <= 1024
    assert report(summary["report"])["source"] == key
    with loans.bridge.server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT source FROM loan_decisions")
        assert cur.fetchone() == (f"s3://{BUCKET}/{key}",)


@pytest.mark.parametrize("count", [3_000, 5_000])  # 5,000: the most one list may hold
def test_r11_big_lists_stay_inside_the_data_api_limits(
    loans: Any, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    monkeypatch.delenv(
        "DOCUMENTS_BUCKET"
    )  # documents: test_a_list_writes_its_documents_in_parallel
    apps = [{**APP, "loanId": f"B-{i}", "creditScore": 560 + i % 290} for i in range(count)]
    out = loans.handler(apps, None)
    assert len(out["results"]) == count and "CONFLICT" not in out["summary"]
    assert loans.bridge.largest["request"] < 4 * MiB  # was 9.8 MiB for 10,000 (4.9 for 5,000)
    assert loans.bridge.largest["response"] <= 0.75 * MiB  # was 0.92 MiB for 3,000: no margin
    assert len(rows(loans)) == count
    again = loans.handler(apps, None)  # every row read back as stored
    assert again == out and loans.bridge.largest["response"] <= 0.75 * MiB
    monkeypatch.setenv("REVIEW_CREDIT_SCORE", "900")  # now every stored answer is read back
    assert loans.handler(apps, None) == out
    assert loans.bridge.largest["response"] <= 0.75 * MiB


def test_a_list_writes_its_documents_in_parallel(
    loans: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = boto3.client("s3")
    active, most, lock = 0, 0, threading.Lock()
    original = s3.put_object

    def put_object(**kwargs: Any) -> Any:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        time.sleep(0.01)  # a put takes time in AWS; let them overlap
        try:
            return original(**kwargs)
        finally:
            with lock:
                active -= 1

    monkeypatch.setattr(s3, "put_object", put_object)
    monkeypatch.setattr(loans, "s3_client", lambda: s3)
    loans.handler([{**APP, "loanId": f"P-{i}"} for i in range(64)], None)
    assert most > 1, "documents were written one after another"
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="validations/")
    assert listed["KeyCount"] == 64


def test_r11_an_answer_recorded_under_other_rules_is_returned_as_stored(
    loans: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = loans.handler(APP, None)
    monkeypatch.setenv("MIN_CREDIT_SCORE", "800")  # today's rules would reject it
    assert loans.handler(APP, None) == first
    put("incoming/again.jsonl", json.dumps(APP) + "\n")
    [summary] = loans.handler(s3_event("incoming/again.jsonl"), None)["reports"]
    assert summary["summary"] == {"APPROVED": 1}


def test_missing_values_are_stored_as_sql_null(loans: Any) -> None:
    personal = {**APP, "loanId": "U-1", "loanType": "personal", "loanAmount": 20000,
                "termMonths": 36}  # fmt: skip
    del personal["collateralValue"]
    loans.handler([personal], None)
    with loans.bridge.server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT loan_to_value, source FROM loan_decisions")
        assert cur.fetchall() == ((None, None),)
