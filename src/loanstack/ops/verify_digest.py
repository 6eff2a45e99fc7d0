"""`loanstack verify` comparing the table a group at a time: the database hashes each group of
GROUP_SIZE rows (verify_db.DIGEST) and the tool hashes what the export says those rows must be,
so a page of a table that agrees carries no row data (reading the rows' JSON cost the tool, the
Data API's server and the database more than a third of verify's CPU: docs/benchmarks.md).

The stored rows a group covers are those after the group before's last id up to its own. The
export's lines of those ids (lines in loan id order: all the lines of an id fall in one group)
say what they must be: the first line of each id, when valid (a fingerprint and an amount), in
order. When the group's count, last id and digest agree, the table holds exactly those rows with
those fingerprints and decisions, and nothing else in the range (no extra row, no row of an
invalid line's id): the rows are given to the merge as the lines say them (verify_merge), so
every state is decided as before, and the recorded amount is the database's sum (`correction`).
Any other group is read row by row (`Detail`), as every page was before: correctness never
depends on the digest, only speed (tests/unit/test_verify_merge.py holds both to the SQLite
path's verdicts).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from itertools import islice
from operator import itemgetter, lt
from typing import Any

from loanstack.ops.verify_db import Group, Stored
from loanstack.ops.verify_export import Line
from loanstack.ops.verify_merge import Unordered
from loanstack.ops.verify_report import amount_sum

# Values whose JSON_QUOTE is the value between two quotes on MySQL 8.0 and MariaDB alike
# (`plain`): ASCII without the control characters, the quote and the backslash JSON escapes, and
# the solidus some escape. A value with anything else (a control character, non-ASCII) never agrees here: its
# group is read row by row, which is exact whatever the escaping.
# https://dev.mysql.com/doc/refman/8.0/en/json-creation-functions.html#function_json-quote
ESCAPED = bytes(range(32)) + b'\x7f"\\/'
# Groups read together when one disagrees: a loan book with a problem row every few hundred
# would otherwise pay a Data API call per group it reads.
DETAIL_GROUPS = 8
# Lines read ahead at once to find a group's lines.
TAKEN = 512
# Columns of a group's expected rows: ids, fingerprints, decisions, amounts.
Columns = tuple[Any, Any, Any, Any]


def digest_pages(database: Any, mine: str) -> Iterator[list[Group]]:
    """The table's groups, a page at a time, the next page asked on a thread while this one is
    compared (as Database.pages): after the same id, its first row this page's last (OFFSET,
    alone in its group); used only when that row is this page's last, else asked again after it
    (the table changed), so every row is covered once."""
    rows, after, first = database.page_rows, "", True
    with ThreadPoolExecutor(1, thread_name_prefix="verify-digest") as ahead:
        while True:
            following = None
            if not first and rows > 1:
                following = ahead.submit(database.digests, after, mine, rows - 1, 1)
            first = False
            page = database.digests(after, mine)
            yield page
            if sum(group[0] for group in page) < rows:
                return
            after = page[-1][1]
            if following is None:
                continue
            more = following.result()
            if not more or more[0][:2] != (1, after):
                continue  # the table changed: asked again after this page's last id
            yield more[1:]
            if sum(group[0] for group in more) < rows:
                return
            after = more[-1][1]


class Detail:
    """The rows of a range of ids, read by Database.fetch (ROW), a few groups ahead at once."""

    def __init__(self, database: Any, mine: str) -> None:
        self.database, self.mine = database, mine
        self.held: deque[Stored] = deque()
        self.low: str | None = None  # every row above `low` up to `high` is held (or was given)
        self.high: str | None = None  # None: up to the end of the table

    def rows(self, after: str, upto: str, ask: int) -> list[Stored]:
        """The stored rows of ids after `after` up to `upto`; `ask` rows are read when they are
        not held yet (reading on until `upto` is reached)."""
        if self.low is None or self.low > after or (self.high is not None and self.high < upto):
            self.held, self.low, self.high = deque(), after, after
            while self.high is not None and self.high < upto:
                page = self.database.fetch(self.high, self.mine, 0, ask)
                self.held.extend(page)
                self.high = page[-1][0] if len(page) >= ask else None
        held = self.held
        while held and held[0][0] <= after:
            held.popleft()
        found: list[Stored] = []
        while held and held[0][0] <= upto:
            found.append(held.popleft())
        self.low = upto
        return found


class Digested:
    """The table's rows as the merge takes them, built from the groups' digests and the export's
    lines (a second cursor on them: itertools.tee), read row by row where a group disagrees."""

    def __init__(self, database: Any, mine: str, pages: Iterator[list[Group]]) -> None:
        self.pages, self.detail = pages, Detail(database, mine)
        self.block: list[Line] = []  # lines read ahead, from `at` on not taken yet
        self.ids: list[str | None] = []
        self.at = 0
        self.sorted = True
        self.seen: str | None = None  # the last loan id met in the lines
        self.sums: list[str] = []  # the database's amount sums of the groups agreed
        self.said: list[str] = []  # the lines' amounts of those groups' rows
        self.correction = Decimal(0)
        self.agreed = self.read = 0  # groups agreed, groups read row by row
        self.missed = 0  # groups differing in a row, up to this one

    def rows(self, lines: Iterator[Line]) -> Iterator[Stored]:
        after = ""
        for page in self.pages:
            for index, (count, last, digest, amount, ok) in enumerate(page):
                if last <= after:
                    raise Unordered("the table's pages are not in loan id order")
                chunk = self.take(lines, last)
                given = self.agreeing(chunk, count, last, digest, amount if ok else None)
                self.missed = 0 if given is not None else self.missed + 1
                if given is not None:
                    self.agreed += 1
                    yield from given
                else:
                    self.read += 1
                    # a group cut: the page's are too; groups differing in a row (rows of other
                    # exports' ids) read in ever larger calls, as pages were before
                    wide = DETAIL_GROUPS << min(self.missed, 8)
                    ahead = page[index : index + wide] if ok else page[index:]
                    ask = sum(group[0] for group in ahead)
                    yield from self.detail.rows(after, last, max(ask, 1))
                after = last
        self.settle()

    def take(self, lines: Iterator[Line], last: str) -> list[Line]:
        """The lines up to the first one of an id above `last` (lines with no id where they
        are), found in blocks by bisection (C-level: a loop per line cost ~1.5 µs a line)."""
        chunk: list[Line] = []
        while True:
            block, ids, at = self.block, self.ids, self.at
            if at >= len(block):
                self.block = block = list(islice(lines, TAKEN))
                self.ids = ids = list(map(itemgetter(1), block))
                self.at = at = 0
                self.sorted = None not in ids
                if not block:
                    return chunk
            if self.sorted:  # ids out of order split anywhere: the merge raises Unordered
                end = bisect_right(ids, last, at)  # type: ignore[type-var]
            else:
                end = at
                while end < len(ids) and ((found := ids[end]) is None or found <= last):
                    end += 1
            chunk += block[at:end]
            self.at = end
            if end < len(block):
                return chunk

    def agreeing(
        self, chunk: list[Line], count: int, last: str, digest: str, amount: str | None
    ) -> list[Stored] | None:
        """The group's rows as its lines say them, when the digest proves the table holds them
        (`amount` None: the group is not whole, or an amount is NULL: never agreeing)."""
        if not chunk:
            return None
        _numbers, ids, shas, decisions, _details, amounts = zip(*chunk, strict=True)
        seen, self.seen = self.seen, ids[-1] if ids[-1] is not None else self.seen
        rising = seen is None or (ids[0] is not None and seen < ids[0])
        if (
            not rising
            or None in ids
            or None in shas
            or None in amounts
            or not all(map(lt, ids, islice(ids, 1, None)))
        ):
            expected = self.expected(chunk, seen)  # the usual chunk has none of these
            if expected is None:
                return None
            ids, shas, decisions, amounts = expected
        if amount is None or len(ids) != count or not ids or ids[-1] != last:
            return None
        values = "".join((*ids, *shas, *decisions))
        if not plain(values):
            return None
        text = "\n".join(map('"{}","{}","{}"'.format, ids, shas, decisions))
        if sha256_hex(text.encode()) != digest.lower():
            return None
        self.sums.append(amount)
        self.said.extend(amounts)
        if len(self.said) >= 10_000:
            self.settle()
        return list(zip(ids, shas, decisions, [True] * len(ids), amounts, strict=True))

    def expected(self, chunk: list[Line], seen: str | None) -> Columns | None:
        """The ids, fingerprints, decisions and amounts of the chunk's first lines of an id that
        are valid (None: a first line with a fingerprint and no amount, never agreeing)."""
        columns: Columns = ([], [], [], [])
        for _n, loan_id, sha, decision, _detail, line_amount in chunk:
            if loan_id is None or loan_id == seen:
                continue
            seen = loan_id
            if sha is None:
                continue  # an invalid first line: no stored row when the digest agrees
            if line_amount is None:
                return None
            for column, value in zip(columns, (loan_id, sha, decision, line_amount), strict=True):
                column.append(value)
        self.seen = seen
        return columns

    def settle(self) -> None:
        """The recorded amount's correction: the database's sums less the lines' amounts the
        rows were given with."""
        if self.said:
            self.correction += sum(map(Decimal, self.sums)) - amount_sum(self.said)
        self.sums.clear()
        self.said.clear()


def sha256_hex(data: bytes) -> str:
    """SHA-256 in pieces under 2,048 bytes: hashlib lets other threads run while it hashes more
    than that, and taking the GIL back behind the page reader cost the main thread ~90 µs a
    group (cProfile of bench.verify)."""
    digest = hashlib.sha256()
    for k in range(0, len(data), 2047):
        digest.update(data[k : k + 2047])
    return digest.hexdigest()


def plain(values: str) -> bool:
    """Whether JSON_QUOTE writes each of these values as it is, between quotes: ASCII (known to
    the string, no scan) with none of ESCAPED once the bytes are filtered (a table lookup in C;
    str.isprintable or a regular expression cost ~1 µs a row)."""
    if not values.isascii():
        return False
    data = values.encode("ascii")
    return len(data.translate(None, ESCAPED)) == len(data)
