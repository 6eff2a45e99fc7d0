"""A batch file's chunks go to Aurora on one thread, in file order, while the next chunk is read
and decided (the validation function's `InOrder`): the report is what recording each chunk in
turn gave, whatever the chunk size; a chunk that fails stops the file before anything after it
is written; and the next chunk's rows are decided while a chunk is in flight.

The Data API is a stand-in here (`record_chunk` answers from a dict, first row of an id wins),
so what is tested is the handler's order of work, not SQL (tests/integration covers that).
"""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import pytest

from tests.support.helpers import load_function

APP = {
    "loanId": "L-1", "applicantId": "A-1", "loanType": "personal", "loanAmount": 20000, "termMonths": 36,
    "annualInterestRate": 8, "creditScore": 720, "annualIncome": 90000, "monthlyDebtPayments": 500,
}  # fmt: skip
HEADER = ",".join(APP)


def row(loan_id: str, amount: str = "20000", score: str = "720") -> str:
    values = {**APP, "loanId": loan_id, "loanAmount": amount, "creditScore": score}
    return ",".join(str(v) for v in values.values())


# Tricky for ordering: problem rows (INVALID, REJECTED) between good ones, a blank line, a loan
# id repeated with the same and with different content (the first line must win, a CONFLICT
# after), a repeat inside what would be one chunk.
LINES = [
    HEADER,
    row("L-1"),
    row("L-2", score="abc"),
    row("L-3"),
    row("L-1"),
    row("L-4", score="300"),
    "",
    row("L-5"),
    row("L-3", amount="30000"),
    row("L-6"),
    row("L-6"),
    "not,a,row",
    row("L-7"),
    row("L-8", amount="-1"),
    row("L-9"),
]
DATA = ("\n".join(LINES) + "\n").encode()


class FakeS3:
    def __init__(self, data: bytes) -> None:
        self.data, self.reports = data, dict[str, Any]()

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        return {"Body": io.BytesIO(self.data)}

    def upload_fileobj(self, body: Any, bucket: str, key: str, **_: Any) -> None:
        self.reports[key] = json.loads(body.read())


def install(
    monkeypatch: pytest.MonkeyPatch, loans: Any, data: bytes, batch_size: int
) -> tuple[FakeS3, list[list[str]]]:
    """The function with a fake S3 and a fake Data API; returns them and the chunks sent."""
    s3, sent, stored = FakeS3(data), list[list[str]](), dict[str, str]()
    monkeypatch.setenv("BATCH_SIZE", str(batch_size))
    monkeypatch.setattr(loans, "s3_client", lambda: s3)

    def record_chunk(entries: list[Any], source: str | None) -> list[Any]:
        sent.append([e.app["loanId"] for e in entries])
        answers = []
        for e in entries:
            first = stored.setdefault(e.app["loanId"], loans.fingerprint(e.app))
            if first == loans.fingerprint(e.app):
                answers.append(e.result)
            else:
                answers.append(loans.answer(e, "x" * 64, "{}"))
        return answers

    monkeypatch.setattr(loans, "record_chunk", record_chunk)
    return s3, sent


@pytest.mark.parametrize("batch_size", [1, 2, 3, 7, 1000])
def test_the_report_is_the_same_whatever_the_chunk_size(
    monkeypatch: pytest.MonkeyPatch, batch_size: int
) -> None:
    loans = load_function("loan_validation")
    s3, sent = install(monkeypatch, loans, DATA, batch_size)
    answer = loans.handle_batch_file("bucket", "incoming/tricky.csv")
    report = s3.reports[answer["report"]]
    problems = [(p["line"], p["loanId"], p["decision"]) for p in report["problems"]]
    assert problems == [
        (3, "L-2", "INVALID"),
        (6, "L-4", "REJECTED"),
        (9, "L-3", "CONFLICT"),
        (12, "not", "INVALID"),
        (14, "L-8", "INVALID"),
    ]
    assert report["rows"] == 13 and sum(report["summary"].values()) == 13
    assert report["summary"]["APPROVED"] == 8  # L-1 and L-6 twice, same content: same answer
    flat = [loan_id for chunk in sent for loan_id in chunk]
    assert flat == ["L-1", "L-3", "L-1", "L-4", "L-5", "L-3", "L-6", "L-6", "L-7", "L-9"]
    assert all(len(set(chunk)) == len(chunk) <= batch_size for chunk in sent)


def test_a_chunk_that_fails_stops_the_file_before_anything_after_it_is_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loans = load_function("loan_validation")
    s3, sent = install(monkeypatch, loans, DATA, 2)
    recorded = loans.record_chunk

    def failing(entries: list[Any], source: str | None) -> list[Any]:
        if len(sent) == 1:  # the second chunk
            sent.append(["failed"])
            raise RuntimeError("the database is gone")
        return list(recorded(entries, source))

    monkeypatch.setattr(loans, "record_chunk", failing)
    with pytest.raises(RuntimeError, match="the database is gone"):
        loans.handle_batch_file("bucket", "incoming/tricky.csv")
    assert sent == [["L-1", "L-3"], ["failed"]]
    assert s3.reports == {}  # no report claims the file was done


def test_the_next_chunk_is_decided_while_a_chunk_is_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reproducer: each chunk's Data API call waited for, the function's work in series with
    the database's (at concurrency 1 a migration's time per row was the sum of both)."""
    loans = load_function("loan_validation")
    lines = [HEADER] + [row(f"P-{i}") for i in range(6)]
    _s3, sent = install(monkeypatch, loans, ("\n".join(lines) + "\n").encode(), 3)
    recorded, evaluate = loans.record_chunk, loans.evaluate
    second_chunk_read = threading.Event()
    overlapped: list[bool] = []

    def decide(raw: Any, limits: Any) -> Any:
        if raw.get("loanId") == "P-4":
            second_chunk_read.set()
        return evaluate(raw, limits)

    def slow(entries: list[Any], source: str | None) -> list[Any]:
        if not sent:  # the first chunk waits (bounded) for the reader to reach the second
            overlapped.append(second_chunk_read.wait(timeout=5))
        return list(recorded(entries, source))

    monkeypatch.setattr(loans, "evaluate", decide)
    monkeypatch.setattr(loans, "record_chunk", slow)
    answer = loans.handle_batch_file("bucket", "incoming/p.csv")
    assert overlapped == [True]
    assert answer["summary"] == {"APPROVED": 6}
    assert sent == [["P-0", "P-1", "P-2"], ["P-3", "P-4", "P-5"]]
