"""Migration batch files (JSON Lines and CSV) dropped under incoming/ (SPEC D6).

One bad row never sinks a file: it is reported with its line number, the good rows are recorded
in bounded Data API batches, and the file gets exactly one report under reports/.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from tests.integration.conftest import BUCKET
from tests.integration.test_loan_recording import APP, inserts, rows


def s3_event(key: str) -> dict[str, Any]:
    return {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                         "s3": {"bucket": {"name": BUCKET}, "object": {"key": key}}}]}  # fmt: skip


def put(key: str, body: str | bytes) -> None:
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)


def report(key: str) -> dict[str, Any]:
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return dict(json.loads(body))


def jsonl_file() -> str:
    lines = [
        json.dumps({**APP, "loanId": "B-1"}),  # 1 approved
        json.dumps({**APP, "loanId": "B-2", "creditScore": 600}),  # 2 review
        "{not json",  # 3 malformed
        "",  # 4 blank: skipped, not counted
        json.dumps({**APP, "loanId": "B-3", "creditScore": 500}),  # 5 rejected
        json.dumps({**APP, "loanId": "B-4", "termMonths": "thirty"}),  # 6 invalid field
        json.dumps([1, 2]),  # 7 not an object
        json.dumps({**APP, "loanId": "B-5"}),  # 8 approved
    ]
    return "\n".join(lines) + "\n"


def test_r11_d6_jsonl_batch_gives_one_report_with_counts_and_line_numbers(loans: Any) -> None:
    put("incoming/2026-11-28/part-0001.jsonl", jsonl_file())
    out = loans.handler(s3_event("incoming/2026-11-28/part-0001.jsonl"), None)
    [summary] = out["reports"]
    assert summary["summary"] == {"APPROVED": 2, "MANUAL_REVIEW": 1, "REJECTED": 1, "INVALID": 3}
    doc = report("reports/2026-11-28/part-0001.jsonl.report.json")
    assert doc["rows"] == 7 and doc["summary"] == summary["summary"] and "error" not in doc
    problems = {p["line"]: p for p in doc["problems"]}
    assert sorted(problems) == [3, 5, 6, 7]
    assert problems[5]["reasons"] == ["CREDIT_SCORE_BELOW_MINIMUM"]
    assert problems[6]["errors"] == [{"field": "termMonths", "message": "must be an integer"}]
    assert [r[0] for r in rows(loans)] == ["B-1", "B-2", "B-3", "B-5"]
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]
    assert not any(o["Key"].startswith("validations/") for o in listed), "never one object per row"


def test_r11_d6_csv_batch_parses_numbers_and_reports_bad_cells(loans: Any) -> None:
    header = ",".join(APP)
    good = ",".join(str(v) for v in APP.values())
    personal = "P-1,A-2,personal,20000,36,8,720,90000,500,"
    bad = "P-2,A-3,personal,lots,36,8,720,90000,500,"
    put("incoming/legacy.csv", "\n".join([header, good, personal, bad, '"P-3","A-4"']) + "\n")
    [summary] = loans.handler(s3_event("incoming/legacy.csv"), None)["reports"]
    assert summary["summary"] == {"APPROVED": 2, "INVALID": 2}
    problems = {p["line"]: p for p in report("reports/legacy.csv.report.json")["problems"]}
    assert problems[4]["errors"] == [{"field": "loanAmount", "message": "must be a number"}]
    assert problems[5]["loanId"] == "P-3"
    assert [r[0] for r in rows(loans)] == ["L-100", "P-1"]


def test_d6_rows_go_to_aurora_in_bounded_batches(
    loans: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCH_SIZE", "3")
    put(
        "incoming/ten.jsonl",
        "".join(json.dumps({**APP, "loanId": f"T-{i}"}) + "\n" for i in range(10)),
    )
    loans.handler(s3_event("incoming/ten.jsonl"), None)
    assert inserts(loans) == 4  # 3 + 3 + 3 + 1
    assert len(rows(loans)) == 10


def test_r11_a_batch_file_processed_twice_changes_nothing(loans: Any) -> None:
    put("incoming/again.jsonl", jsonl_file())
    first = loans.handler(s3_event("incoming/again.jsonl"), None)
    before = rows(loans)
    second = loans.handler(s3_event("incoming/again.jsonl"), None)
    assert second == first and rows(loans) == before


def test_r11_conflicting_rows_are_reported_and_not_overwritten(loans: Any) -> None:
    loans.handler({**APP, "loanId": "B-1"}, None)
    put(
        "incoming/conflict.jsonl", json.dumps({**APP, "loanId": "B-1", "loanAmount": 350000}) + "\n"
    )
    [summary] = loans.handler(s3_event("incoming/conflict.jsonl"), None)["reports"]
    assert summary["summary"] == {"CONFLICT": 1}
    assert report(summary["report"])["problems"][0]["line"] == 1
    assert len(rows(loans)) == 1


def test_r11_invalid_utf8_on_line_3_of_7_is_that_row_only(loans: Any) -> None:
    lines = [(json.dumps({**APP, "loanId": f"D-{i}"}) + "\n").encode() for i in range(1, 8)]
    lines[2] = b'{"loanId": "D-3", "applicantId": "\xff\xfe"}\n'
    put("incoming/damaged.jsonl", b"".join(lines))
    [summary] = loans.handler(s3_event("incoming/damaged.jsonl"), None)["reports"]
    assert summary["rows"] == 7 and summary["summary"] == {"APPROVED": 6, "INVALID": 1}
    [problem] = report(summary["report"])["problems"]
    assert problem["line"] == 3 and "UTF-8" in problem["errors"][0]["message"]
    assert [r[0] for r in rows(loans)] == ["D-1", "D-2", "D-4", "D-5", "D-6", "D-7"]


def test_r11_objects_outside_incoming_are_ignored(loans: Any) -> None:
    put("reports/x.jsonl", jsonl_file())
    [summary] = loans.handler(s3_event("reports/x.jsonl"), None)["reports"]
    assert summary == {"source": "reports/x.jsonl", "ignored": True}
    assert loans.bridge.calls == {"ExecuteStatement": 0, "BatchExecuteStatement": 0}
