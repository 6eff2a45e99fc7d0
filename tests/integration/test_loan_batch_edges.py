"""Batch files the red team wrote (SPEC D8): Mac line endings, ambiguous headers and keys, and
problem rows reported in line order, through the handler with the Data API on MariaDB."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.test_loan_batch_files import put, report, s3_event
from tests.integration.test_loan_recording import APP, rows

HEADER = ",".join(APP)
LINE = ",".join(str(v) for v in APP.values())


def test_d8_a_cr_only_csv_records_every_row(loans: Any) -> None:
    """Reproducer: Excel for Mac's "CSV (Macintosh)" gave rows: 0, problems: [] and no error."""
    lines = [HEADER] + [LINE.replace(APP["loanId"], f"M-{i}") for i in range(1, 4)]
    put("incoming/mac.csv", "\r".join(lines) + "\r")
    [summary] = loans.handler(s3_event("incoming/mac.csv"), None)["reports"]
    assert summary["rows"] == 3 and summary["summary"] == {"APPROVED": 3}
    assert [r[0] for r in rows(loans)] == ["M-1", "M-2", "M-3"]


def test_d8_a_header_naming_a_column_twice_is_a_reported_file_problem(loans: Any) -> None:
    put("incoming/twice.csv", f"{HEADER},loanAmount\n{LINE},1\n")
    [summary] = loans.handler(s3_event("incoming/twice.csv"), None)["reports"]
    assert "names loanAmount twice" in summary["error"]
    doc = report(summary["report"])
    assert doc["error"] == summary["error"] and doc["summary"] == {"INVALID": 1}
    assert loans.bridge.calls == {"ExecuteStatement": 0, "BatchExecuteStatement": 0}


def test_d8_an_unreadable_header_alone_is_reported_not_zero_silent_rows(loans: Any) -> None:
    put("incoming/junk.csv", b'"loanId,\xff\n')
    [summary] = loans.handler(s3_event("incoming/junk.csv"), None)["reports"]
    assert summary["rows"] == 0 and "header (line 1) is unreadable" in summary["error"]


def test_d8_a_duplicate_json_key_is_invalid_and_nothing_is_recorded(loans: Any) -> None:
    line = json.dumps({**APP, "loanId": "K-1"})[:-1] + ', "loanId": "K-2"}'
    put("incoming/dupkey.jsonl", line + "\n")
    [summary] = loans.handler(s3_event("incoming/dupkey.jsonl"), None)["reports"]
    assert summary["summary"] == {"INVALID": 1}
    [problem] = report(summary["report"])["problems"]
    assert problem["errors"][0]["field"] == "loanId"
    assert loans.bridge.calls == {"ExecuteStatement": 0, "BatchExecuteStatement": 0}


def test_d8_problem_rows_of_a_chunk_are_reported_in_line_order(loans: Any) -> None:
    """Reproducer: a CONFLICT on line 1 was listed after an INVALID on line 2 (the invalid row
    was written at once, the conflict when the chunk was recorded)."""
    loans.handler({**APP, "loanId": "O-1"}, None)
    lines = [
        json.dumps({**APP, "loanId": "O-1", "loanAmount": 350000}),  # 1 conflict
        "{not json",  # 2 invalid
        json.dumps({**APP, "loanId": "O-3", "creditScore": 500}),  # 3 rejected
        json.dumps({**APP, "loanId": "O-1", "loanAmount": 360000}),  # 4 conflict
        "[]",  # 5 invalid
    ]
    put("incoming/order.jsonl", "\n".join(lines) + "\n")
    [summary] = loans.handler(s3_event("incoming/order.jsonl"), None)["reports"]
    problems = report(summary["report"])["problems"]
    assert [(p["line"], p["decision"]) for p in problems] == [
        (1, "CONFLICT"),
        (2, "INVALID"),
        (3, "REJECTED"),
        (4, "CONFLICT"),
        (5, "INVALID"),
    ]
