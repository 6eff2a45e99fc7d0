"""verify reads the table of a paused dev cluster (0 ACU): it waits while the cluster resumes."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from loanstack.errors import DeployError
from loanstack.ops import verify, verify_db, verify_export
from loanstack.testing import loanbook

RESUMING = {"Error": {"Code": "DatabaseResumingException", "Message": "resuming after pause"}}


class DataApi:
    def __init__(self, resuming: int) -> None:
        self.resuming, self.calls = resuming, 0

    def execute_statement(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= self.resuming:
            raise ClientError(RESUMING, "ExecuteStatement")  # type: ignore[arg-type]
        rows = [{"r": json.dumps(["L-1", "ab", "APPROVED", 1, "100.00"])}]  # as PAGE answers
        return {"formattedRecords": json.dumps(rows)}


def test_d8_verify_waits_for_a_paused_cluster_to_resume() -> None:
    api = DataApi(resuming=2)
    database = verify_db.Database(api, "arn:cluster", "arn:secret", resume_poll=0)
    assert list(database.rows("incoming/x%")) == [("L-1", "ab", "APPROVED", True, "100.00")]
    assert api.calls == 3


def test_d8_a_cluster_that_never_resumes_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_db, "RESUME_SECONDS", 0)
    database = verify_db.Database(DataApi(resuming=99), "arn:cluster", "arn:secret", resume_poll=0)
    with pytest.raises(DeployError, match="the Data API failed: resuming after pause"):
        list(database.rows("incoming/x%"))


def test_d8_the_page_writes_its_rows_as_text_never_as_mysqls_json_type() -> None:
    """Aurora MySQL 3's JSON_ARRAY and JSON_OBJECT are of MySQL's JSON type, which the Data
    API's JSON records may give as nested JSON; JSON_QUOTE returns a utf8mb4 string (MySQL 8.0's
    reference), so each row's text is built from it and from plain strings alone."""
    for sql in (verify_db.PAGE, verify_db.ROWS):
        flat = " ".join(sql.split())
        assert flat.count("JSON_QUOTE(") == 3, flat  # the id, the fingerprint, the decision
        assert "JSON_ARRAY" not in flat and "JSON_OBJECT" not in flat, flat


def test_d8_a_page_flag_is_a_bool_whatever_shape_the_page_gives_it() -> None:
    """The page's own true/false is kept (read by calls in C); 1/0 and "1", as pages of another
    shape give it, are read as before."""
    read = verify_db.stored(
        [["L-1", "ab", "APPROVED", True, "1.00"], ["L-2", "c", "X", False, "2"]]
    )
    assert read == [("L-1", "ab", "APPROVED", True, "1.00"), ("L-2", "c", "X", False, "2")]
    for mine, flag in ((1, True), (0, False), ("1", True), ("0", False), (None, False)):
        [row] = verify_db.stored([["L-1", "ab", "APPROVED", mine, "1.00"]])
        assert row == ("L-1", "ab", "APPROVED", flag, "1.00") and type(row[3]) is bool, mine


def test_d8_a_page_whose_arrays_come_as_nested_json_is_read() -> None:
    rows = [
        {"r": ["L-1", "ab", "APPROVED", 1, "100.00"]},
        {"r": '["L-2", "cd", "REJECTED", 0, "5.00"]'},
    ]
    assert verify_db.values(rows) == [
        ["L-1", "ab", "APPROVED", 1, "100.00"],
        ["L-2", "cd", "REJECTED", 0, "5.00"],
    ]


@pytest.mark.parametrize(
    "row", ['["L-1", "ab", "APPROVED", true]', '"L-1"', "5", '{"loanId": "L-1"}', "null"]
)
def test_d8_a_row_that_is_not_an_array_of_five_values_is_refused(row: str) -> None:
    five = '["L-0", "ab", "APPROVED", true, "1.00"]'
    for found in ([{"r": five}, {"r": row}], [{"g": f"{five},{row}", "n": 2}]):
        with pytest.raises(ValueError, match="not an array of five values"):
            verify_db.values(found)


class Broken:
    """A Data API whose client fails in a way no ClientError describes, or answers a page of a
    shape verify cannot read."""

    def __init__(self, answer: dict[str, Any] | None) -> None:
        self.answer = answer

    def execute_statement(self, **_: Any) -> dict[str, Any]:
        if self.answer is None:
            raise RuntimeError("connection pool is closed")
        return self.answer


@pytest.mark.parametrize(
    "answer",
    [None, {"formattedRecords": json.dumps([{"r": {"not": "an array"}}])}],
    ids=["client-raises", "page-unreadable"],
)
def test_d8_a_failure_on_the_table_reader_thread_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: dict[str, Any] | None
) -> None:
    """The table is read on a thread: what fails there reaches the main thread as one line
    (DeployError), on the merge and on the SQLite path, never as a thread's traceback."""
    seen: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", seen.append)
    sorted_path, unsorted_path = tmp_path / "sorted.csv", tmp_path / "unsorted.csv"
    loanbook.write_export(sorted_path, 30)
    head, *rows = sorted_path.read_bytes().splitlines()
    unsorted_path.write_bytes(b"\n".join([head, *reversed(rows)]) + b"\n")
    limits = verify_export.validation().thresholds()
    for path in (sorted_path, unsorted_path):
        database = verify_db.Database(Broken(answer), "arn:cluster", "arn:secret")
        with pytest.raises(DeployError) as caught:
            verify.reconcile(path, database, limits)
        message = str(caught.value)
        assert "\n" not in message and message.endswith("run verify again"), message
    assert seen == []


def test_d8_a_page_whose_groups_hold_fewer_rows_than_they_count_is_refused() -> None:
    """A group cut at a row's end (group_concat_max_len) still parses: its count tells."""
    one = json.dumps(["L-1", "ab", "APPROVED", 1, "100.00"])
    database = verify_db.Database(
        Broken({"formattedRecords": json.dumps([{"g": one, "n": 2}])}), "arn:c", "arn:s"
    )
    with pytest.raises(DeployError, match=r"cannot read.*fewer rows than they count"):
        list(database.rows("incoming/x%"))
    whole = {"formattedRecords": json.dumps([{"g": one + "," + one.replace("L-1", "L-2"), "n": 2}])}
    database = verify_db.Database(Broken(whole), "arn:c", "arn:s")
    assert [row[0] for row in database.rows("incoming/x%")] == ["L-1", "L-2"]


def test_d8_the_page_raises_mysqls_group_concat_limit_for_its_statement() -> None:
    """MySQL 8.0's group_concat_max_len defaults to 1,024 bytes, under a group of rows."""
    assert "/*+ SET_VAR(group_concat_max_len = 1048576) */" in verify_db.PAGE


class Table:
    """A Data API over a sorted list of ids that answers PAGE's keyset, LIMIT and OFFSET (in
    groups, as the database does), and runs `change` before the n-th call."""

    def __init__(
        self,
        ids: list[str],
        change: dict[int, Any] | None = None,
        cut: bool = False,
        most: int = 0,
    ) -> None:
        """`cut`: groups come back with their last row lost (a group limit not raised); `most`:
        a call for more rows than that is refused as over the 1 MiB response."""
        self.ids, self.change, self.calls = sorted(ids), change or {}, 0
        self.cut, self.most, self.sql = cut, most, list[str]()
        self.lock = threading.Lock()

    def execute_statement(self, sql: str, parameters: list[Any], **_: Any) -> dict[str, Any]:
        with self.lock:
            self.calls += 1
            self.sql.append(sql)
            self.change.get(self.calls, lambda ids: None)(self.ids)
            after = parameters[0]["value"]["stringValue"]
            limit, skip = map(int, re.findall(r"LIMIT (\d+) OFFSET (\d+)", sql)[0])
            found = [i for i in self.ids if i > after][skip : skip + limit]
        if self.most and len(found) > self.most:
            error = {"Code": "DatabaseErrorException", "Message": verify_db.TOO_LARGE}
            raise ClientError({"Error": error}, "ExecuteStatement")  # type: ignore[arg-type]
        rows = [json.dumps([i, "ab", "APPROVED", 1, "1.00"]) for i in found]
        if "GROUP_CONCAT" not in sql:
            return {"formattedRecords": json.dumps([{"r": r} for r in rows])}
        groups = [rows[k : k + 3] for k in range(0, len(rows), 3)]
        kept = [g[:-1] if self.cut else g for g in groups]
        answer = [{"g": ",".join(k), "n": len(g)} for k, g in zip(kept, groups, strict=True)]
        return {"formattedRecords": json.dumps(answer)}


def test_d8_two_pages_asked_at_once_read_every_row_once() -> None:
    ids = [f"L-{k:03d}" for k in range(100)]
    for page_rows in (1, 2, 7, 10, 99, 100, 101):
        table = Table(ids)
        database = verify_db.Database(table, "arn:c", "arn:s", page_rows=page_rows)
        assert [row[0] for row in database.rows("x")] == ids, page_rows


@pytest.mark.parametrize("change", ["insert", "delete", "both"])
def test_d8_a_table_that_changes_between_the_two_pages_is_read_once(change: str) -> None:
    """A row added or removed before the page asked ahead shifts its OFFSET: that page is asked
    again after the last id read, so no row is read twice or skipped (the rows that were there
    throughout are all read, in order)."""

    gone = {f"L-{k:03d}" for k in range(3, 100, 10)}

    def changed(ids: list[str]) -> None:
        if change in ("insert", "both"):
            ids.extend(f"L-{k:03d}a" for k in range(0, 100, 5))
        if change in ("delete", "both"):
            ids[:] = [i for i in ids if i not in gone]
        ids.sort()

    ids = [f"L-{k:03d}" for k in range(100)]
    for call in range(2, 12):
        table = Table(ids, {call: changed})
        read = [
            row[0] for row in verify_db.Database(table, "arn:c", "arn:s", page_rows=10).rows("x")
        ]
        assert read == sorted(set(read)), call
        assert set(ids) - gone <= set(read), call


def test_d8_groups_cut_short_are_read_again_one_row_per_value() -> None:
    """The group limit not raised (the hint never reached the database): the page is read
    again one row per value, and so is every page after it, so every row is read once."""
    ids = [f"L-{k:03d}" for k in range(100)]
    for page_rows in (1, 7, 10, 100, 4000):
        table = Table(ids, cut=True)
        database = verify_db.Database(table, "arn:c", "arn:s", page_rows=page_rows)
        assert [row[0] for row in database.rows("x")] == ids, page_rows
        assert not database.grouped
        grouped = [k for k, sql in enumerate(table.sql) if "GROUP_CONCAT" in sql]
        assert len(grouped) <= 2, (page_rows, grouped)  # this page, and the one asked with it


@pytest.mark.parametrize("most", [1, 3, 16, 99])
def test_d8_a_page_over_the_1_mib_response_is_asked_in_halves(most: int) -> None:
    """A page the Data API refuses as over its 1 MiB response is asked again in halves (the
    second after the first's last id), down to one row: every row is read once, in order."""
    ids = [f"L-{k:03d}" for k in range(100)]
    for page_rows in (1, 2, 7, 100, 4000):
        table = Table(ids, most=most)
        database = verify_db.Database(table, "arn:c", "arn:s", page_rows=page_rows)
        assert [row[0] for row in database.rows("x")] == ids, (most, page_rows)


def test_d8_one_row_over_the_1_mib_response_is_one_line() -> None:
    table = Table(["L-1", "L-2"])
    table.most = -1  # every call that finds a row is over the limit
    database = verify_db.Database(table, "arn:c", "arn:s", page_rows=4)
    with pytest.raises(DeployError, match=r"one row .* 1 MiB response; check the table"):
        list(database.rows("x"))
