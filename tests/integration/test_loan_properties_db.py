"""Issue 12: batch files of arbitrary rows through the function and a real MariaDB.

Any JSON per field, ids that repeat or differ only in case, any unicode written raw (lone
surrogates become invalid UTF-8 in the file): the handler never raises, the report accounts for
every non-blank line, the table holds at most one row per loan id, and each answer is the
reference decision (tests/unit/test_loan_properties.py) of the first application with that id,
or a CONFLICT when a later line has other content.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_loan_batch_files import put, report, s3_event
from tests.integration.test_loan_recording import APP
from tests.unit.test_loan_properties import applications, json_value, reference

ids = st.sampled_from(["K-1", "k-1", "K-2", "K_3"])
rows = st.one_of(
    st.builds(lambda app, loan_id: {**app, "loanId": loan_id}, applications, ids),
    st.builds(
        lambda loan_id, score: {**APP, "loanId": loan_id, "creditScore": score},
        ids,
        st.integers(550, 800),
    ),
    json_value,
)


def encode(row: Any, raw: bool) -> bytes:
    text = json.dumps(row, ensure_ascii=not raw)
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate is invalid UTF-8 in the file


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.tuples(rows, st.booleans()), min_size=1, max_size=25))
def test_any_batch_file_is_fully_accounted_and_one_row_per_loan(
    loans: Any, lines: list[tuple[Any, bool]]
) -> None:
    loans.bridge.server.reset()
    loans._table_ready = False
    body = b"\n".join(encode(row, raw) for row, raw in lines) + b"\n"
    put("incoming/property.jsonl", body)
    [summary] = loans.handler(s3_event("incoming/property.jsonl"), None)["reports"]
    assert summary["rows"] == len(lines)
    problems = {p["line"]: p for p in report(summary["report"])["problems"]}
    first: dict[str, tuple[Any, str]] = {}  # loan id -> (application, decision)
    for number, (row, raw) in enumerate(lines, start=1):
        decision, _, reasons = reference(row)
        text = json.dumps(row, ensure_ascii=not raw)
        if decision == "INVALID" or any(0xD800 <= ord(c) < 0xE000 for c in text):
            assert problems[number]["decision"] == "INVALID"
            continue
        same = loans.validate(row)[0]  # extra fields and 5 vs 5.0 are the same application
        if row["loanId"] in first and first[row["loanId"]][0] != same:
            assert problems[number]["decision"] == "CONFLICT"
            assert "recorded" not in problems[number]  # D8: not disclosed
            continue
        first.setdefault(row["loanId"], (same, decision))
        got = problems.get(number, {"decision": decision, "reasons": reasons})
        assert (got["decision"], got.get("reasons")) == (decision, reasons)
    with loans.bridge.server.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW TABLES LIKE 'loan_decisions'")
        stored = []
        if cur.fetchone():
            cur.execute("SELECT loan_id, decision FROM loan_decisions")
            stored = list(cur.fetchall())
    assert sorted(stored) == sorted((k, v[1]) for k, v in first.items())
