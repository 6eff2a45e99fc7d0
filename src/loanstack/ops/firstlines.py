"""The first line of each loan id in an export (D8: the first line with an id is the one
migrated, whatever the chunk size), and whether the ids come in the primary key's order; both
learned as `export.chunks` cuts the export, in one pass, with memory that does not grow with it.

Most exports come sorted by loan id (the table's key), and while they do, a line's id is either
above every id before it (new), or equal to the last one (a repeat of the line that holds it):
nothing needs storing or looking up. So the ids go to disk only from the first line out of order
on, and then all at once (`FirstLines.backfill` reads the lines before it again). A block of
plain CSV lines is judged whole (`FirstLines.duplicates_in`): its ids cut out together, its
order by one comparison of neighbours in C; only the lines that break the run (blank, not
UTF-8, quoted, out of order, a repeat) go through the per-line path, which decides exactly as
before.
"""

from __future__ import annotations

import csv
import operator
import re
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class IdOrder:
    """Whether the export's loan ids come in the table's primary-key order, as the chunks are
    cut. The key is `utf8mb4_bin`, which orders by code point, and UTF-8 bytes compare in code
    point order, so the ids' bytes are compared as they are. Ids in that order are appended to
    the clustered index; ids at random touch a page anywhere in it, one read per row once the
    table outgrows the buffer pool (issue 23, item 15; docs/benchmarks.md).
    https://dev.mysql.com/doc/refman/8.0/en/innodb-index-types.html"""

    last: bytes = b""
    first_unsorted_line: int | None = None  # the export's line of the first id out of order

    def see(self, number: int, loan_id: bytes) -> None:
        if self.first_unsorted_line is None and loan_id < self.last:
            self.first_unsorted_line = number
        self.last = loan_id

    @property
    def sorted(self) -> bool:
        return self.first_unsorted_line is None


class FirstLines:
    """The first export line of each loan id, to hold back later lines with the same id.

    Keyed by the id's bytes (no hash can collide), valued by the line number and a hash of the
    line: a later line with the same text is the same application (sent: the function answers
    it idempotently), another text is a CONFLICT the tool reports. The ids are kept on disk
    (`SeenIds`) once they come out of order, so memory does not grow with the export. The id is read with the
    function's own parsing (as `verify` reads it): a line the function cannot read (too long,
    not UTF-8, a duplicate key) holds no id and is sent as it is, for the function to report.
    """

    def __init__(
        self,
        function: Any,
        kind: str,
        header: bytes | None,
        order: IdOrder,
        reread: Callable[[], Iterator[tuple[int, bytes]]] | None = None,
    ) -> None:
        self.function = function  # the function's own parsing (the one loader, D6)
        self.kind = kind
        self.seen = SeenIds()
        self.order = order
        self.column = -1
        self.ids: re.Pattern[bytes] | None = None
        if header is not None:
            columns = next(csv.reader([header.decode("utf-8-sig")]))
            self.column = columns.index("loanId")
            # the loanId cell of every line with that many cells, in one scan of a block
            self.ids = re.compile(rb"\n(?:[^,\n]*,){%d}([^,\n]*)" % self.column)
        # While the export is sorted: the first line of the last id (its number and text).
        self.last_first: tuple[int, bytes] = (0, b"")
        # The export's data lines read again from its start (once, if it turns out unsorted).
        self.reread = reread

    def loan_id(self, number: int, line: bytes) -> bytes | None:
        fn = self.function
        if len(line) > fn.MAX_LINE_BYTES:
            return None
        try:
            text = line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            return None
        if self.kind == "csv":
            cells = fn.csv_cells(text) if '"' in text else text.split(",")
            if isinstance(cells, fn.Unreadable) or len(cells) <= self.column:
                return None
            return cells[self.column].encode() or None
        value = fn.json_row(text)
        found = value.get("loanId") if isinstance(value, dict) else None
        return found.encode() if isinstance(found, str) else None

    def duplicate(self, number: int, line: bytes) -> dict[str, Any] | None:
        """The problem to report for a later line with another text under a known id, else None."""
        loan_id = self.loan_id(number, line) if line.strip() else None
        if not loan_id:
            return None
        order = self.order
        if order.sorted:
            # Sorted so far: an id above the last one is new, one equal to it is the last id's.
            if loan_id > order.last:
                order.see(number, loan_id)
                self.last_first = (number, line)
                return None
            if loan_id == order.last:
                first, text = self.last_first
                return None if text == line else conflict(number, loan_id, first)
            order.see(number, loan_id)  # the first line out of order
            self.backfill(number)
        sha = hash(line)
        first, first_sha = self.seen.setdefault(loan_id, number, sha, False)
        if first == number or first_sha == sha:
            return None  # the first line of the id, or the same text again
        return conflict(number, loan_id, first)

    def duplicates_in(
        self, number: int, lines: list[bytes], joined: bytes
    ) -> list[tuple[int, dict[str, Any]]]:
        """(position in `lines`, problem) of each line to hold back; `lines` are the export's
        lines from `number` on, `joined` is them joined by "\n". A run of plain CSV lines whose
        ids rise above the last one is taken whole; every other line goes through `duplicate`,
        which decides as it does for any line."""
        found: list[tuple[int, dict[str, Any]]] = []

        def judge(i: int) -> None:
            problem = self.duplicate(number + i, lines[i])
            if problem is not None:
                found.append((i, problem))

        ids = self.plain_ids(lines, joined) if self.order.sorted else None
        if ids is None:
            for i in range(len(lines)):
                judge(i)
            return found
        start = 0
        for end in [*self.breaks(ids, lines, joined), len(lines)]:
            i = start
            while i < end:  # lines [i, end) are plain, their ids rising
                if self.order.sorted and ids[i] > self.order.last:
                    self.order.last = ids[end - 1]
                    self.last_first = (number + end - 1, lines[end - 1])
                    break
                judge(i)  # not above the last id: a repeat, or the export is not sorted
                i += 1
            if end < len(lines):
                judge(end)
            start = end + 1
        return found

    def plain_ids(self, lines: list[bytes], joined: bytes) -> list[bytes] | None:
        """Each line's loanId cell, as `loan_id` reads it, when every line reads as
        `split(",")` does (no quote, not longer than the function reads, not a line of spaces
        only, enough cells); None when one may not."""
        if self.ids is None or b'"' in joined:
            return None
        if max(map(len, lines)) > self.function.MAX_LINE_BYTES:
            return None
        if self.column == 0:  # measured: faster than any regular expression over the block
            ids = [line.partition(b",")[0] for line in lines]
        else:
            ids = self.ids.findall(b"\n" + joined)
            if len(ids) != len(lines):
                return None  # a line with fewer cells: it has no id
        # An id that may be spaces only (its line may be blank, which holds no id): all of them
        # start above " " but for the empty ones (blank lines: breaks of the run), or the
        # block goes line by line.
        if min(filter(None, ids), default=b"!") < b" \xff":
            return None
        return ids

    @staticmethod
    def breaks(ids: list[bytes], lines: list[bytes], joined: bytes) -> list[int]:
        """The positions of the lines to judge alone, in order: not UTF-8 (no id), or an id not
        above the one before it (a blank line's empty id among them)."""
        found = not_utf8(joined)
        rising = list(map(operator.lt, ids, ids[1:]))  # rising[i]: id i below id i + 1
        at = -1
        while True:
            try:
                at = rising.index(False, at + 1)
            except ValueError:
                break
            found.add(at + 1)
        return sorted(found)

    def backfill(self, before: int) -> None:
        """Every id of the lines before line `before` to disk, at the first line out of order.
        The ids rose until then, so each id's first line is where it first appears, and its
        repeats come right after it."""
        if self.reread is None:
            raise RuntimeError("the export's lines cannot be read again")
        previous = b""
        for number, line in self.reread():
            if number >= before:
                break
            loan_id = self.loan_id(number, line) if line.strip() else None
            if not loan_id or loan_id == previous:
                continue
            previous = loan_id
            self.seen.setdefault(loan_id, number, hash(line), True)

    def close(self) -> None:
        self.seen.close()


def conflict(number: int, loan_id: bytes, first: int) -> dict[str, Any]:
    """The problem of a later line with another text under the id of line `first`."""
    return {
        "line": number,
        "loanId": loan_id.decode("utf-8", "replace"),
        "decision": "CONFLICT",
        "errors": [
            {
                "field": "loanId",
                "message": f"also on line {first} of this export with other content; "
                "only the first line of a loan id is migrated",
            }
        ],
    }


# past this many lines that are not UTF-8 in one block, the block goes line by line
MAX_NOT_UTF8 = 16


def not_utf8(joined: bytes) -> set[int]:
    """The positions of the lines (split at "\n") that are not UTF-8, found by decoding the
    whole block (a line end is never inside a UTF-8 sequence), then after each bad line."""
    found: set[int] = set()
    view, at = memoryview(joined), 0
    while True:
        try:
            str(view[at:], "utf-8")
            return found
        except UnicodeDecodeError as exc:
            bad = at + exc.start
        line = joined.count(b"\n", 0, bad)
        found.add(line)
        end = joined.find(b"\n", bad)
        if end < 0 or len(found) > MAX_NOT_UTF8:
            return found | (set(range(line, joined.count(b"\n") + 1)) if end >= 0 else set())
        at = end + 1


class SeenIds:
    """loan id -> (its first line, a hash of that line's text), in a temporary SQLite file: a
    1,000,000-row export held these in a dict of ~150 MiB (issue 20: the tool's memory must not
    grow with the export). New ids wait in a small dict and are written in batches; an id is
    looked up on disk only when it may have been seen (not for a sorted export's next id).
    https://www.sqlite.org/withoutrowid.html"""

    BATCH = 10_000

    def __init__(self) -> None:
        self.work = tempfile.TemporaryDirectory(prefix="loanstack-migrate-")
        self.db = sqlite3.connect(Path(self.work.name) / "ids.sqlite")
        self.db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
            "CREATE TABLE seen (id BLOB PRIMARY KEY, line INTEGER, sha INTEGER) WITHOUT ROWID;"
        )
        self.pending: dict[bytes, tuple[int, int]] = {}

    def setdefault(self, loan_id: bytes, line: int, sha: int, new: bool) -> tuple[int, int]:
        """The id's first (line, hash), recording (line, sha) when the id is new; `new` says the
        caller knows it is (no lookup)."""
        found = None if new else self.pending.get(loan_id) or self.lookup(loan_id)
        if found is not None:
            return found
        self.pending[loan_id] = (line, sha)
        if len(self.pending) >= self.BATCH:
            self.flush()
        return line, sha

    def lookup(self, loan_id: bytes) -> tuple[int, int] | None:
        row = self.db.execute("SELECT line, sha FROM seen WHERE id = ?", (loan_id,)).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def flush(self) -> None:
        self.db.executemany(
            "INSERT INTO seen VALUES (?, ?, ?)", ((k, *v) for k, v in self.pending.items())
        )
        self.pending.clear()

    def close(self) -> None:
        self.db.close()
        self.work.cleanup()
