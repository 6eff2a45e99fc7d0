"""The first line of each loan id in an export (D8: the first line with an id is the one
migrated, whatever the chunk size), and whether the ids come in the primary key's order; both
learned as `export.chunks` cuts the export, in one pass, with memory that does not grow with it.
"""

from __future__ import annotations

import csv
import sqlite3
import tempfile
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
    (`SeenIds`), so memory does not grow with the export. The id is read with the
    function's own parsing (as `verify` reads it): a line the function cannot read (too long,
    not UTF-8, a duplicate key) holds no id and is sent as it is, for the function to report.
    """

    def __init__(self, function: Any, kind: str, header: bytes | None, order: IdOrder) -> None:
        self.function = function  # the function's own parsing (the one loader, D6)
        self.kind = kind
        self.seen = SeenIds()
        self.order = order
        self.column = -1
        if header is not None:
            columns = next(csv.reader([header.decode("utf-8-sig")]))
            self.column = columns.index("loanId")

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
        # In a sorted export so far, an id above the last one cannot have been seen: no lookup.
        new = self.order.sorted and loan_id > self.order.last
        self.order.see(number, loan_id)
        sha = hash(line)
        first, first_sha = self.seen.setdefault(loan_id, number, sha, new)
        if first == number or first_sha == sha:
            return None  # the first line of the id, or the same text again
        text = loan_id.decode("utf-8", "replace")
        return {
            "line": number,
            "loanId": text,
            "decision": "CONFLICT",
            "errors": [
                {
                    "field": "loanId",
                    "message": f"also on line {first} of this export with other content; "
                    "only the first line of a loan id is migrated",
                }
            ],
        }

    def close(self) -> None:
        self.seen.close()


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
