"""`loanstack verify` without SQLite when both sides come in loan id order: a streaming merge.

An export written in loan id order (as `migrate` notes it, "sortedByLoanId") and the table read
in pages by loan id meet line by line: all the lines of one id are together, and the stored row
of that id is the next one the pages give. Each line's state is then decided as verify.STATE
decides it in SQL, in one pass and without writing either side down (the SQLite path spent
~15 µs a line inserting, grouping and joining). The first line whose id sorts before the one
above it, or a table page out of order, raises Unordered: the caller starts over on SQLite
(tests/unit/test_verify_merge.py holds the two paths to the same verdicts).
"""

from __future__ import annotations

import json
import queue
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from operator import lt
from typing import IO, Any

from loanstack.ops.verify_db import Database, Stored, one_line
from loanstack.ops.verify_export import Line
from loanstack.ops.verify_report import (
    CHANGED,
    DUPLICATE,
    EXTRA,
    INVALID,
    MISSING,
    RECONCILED,
    REPEATED,
    STATES,
    UNEXPECTED,
    Reconciliation,
    amount_sum,
    id_hash_sum,
    note,
)

TOTALS_BATCH = 10_000
# Lines taken together: a run of lines that are each the first and valid line of an id, ids
# rising, met by the same number of stored rows with the same ids, fingerprints and decisions,
# is reconciled as a whole, by comparing the columns (C-level tuple equality) instead of a
# line at a time (~3 µs a line under load). Any other run goes line by line. A loan book has a
# problem line in a few hundred: a run of 64 is nearly always whole.
BULK = 64


class Unordered(Exception):
    """The export's loan ids (or the table's pages) are not in order: the merge cannot decide."""


class Pages(threading.Thread):
    """The table's rows read ahead on a thread (the Data API is mostly waited for), at most a few
    pages held, so memory stays flat; `stop` ends the reading early."""

    def __init__(
        self, database: Database, mine: str, read: Callable[[Any, str], Iterator[Any]] | None = None
    ) -> None:
        super().__init__(name="verify-pages", daemon=True)
        self.database, self.mine, self.read = database, mine, read
        self.pages: queue.Queue[list[Any] | BaseException | None] = queue.Queue(maxsize=4)
        self.stopped = threading.Event()

    def run(self) -> None:
        """The table's pages (`read`: another kind of page, verify_digest's groups)."""
        try:
            read = self.read or (lambda database, mine: database.pages(mine))
            for page in read(self.database, self.mine):
                if not self.hand(page):
                    return
            self.hand(None)
        except BaseException as exc:  # re-raised on the main thread, as one line
            self.hand(one_line(exc))

    def hand(self, item: list[Any] | BaseException | None) -> bool:
        while not self.stopped.is_set():
            try:
                self.pages.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def rows(self) -> Iterator[Stored]:
        for page in self.items():
            yield from page

    def items(self) -> Iterator[list[Any]]:
        while True:
            item = self.pages.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        self.stopped.set()
        self.join()


class Merge:
    """The walk along the table's rows, a loan id at a time (both sides ascending)."""

    def __init__(self, rows: Iterator[Stored], result: Reconciliation, extra: IO[str]) -> None:
        self.rows, self.result, self.extra = rows, result, extra
        self.row: Stored | None = next(self.rows, None)
        self.recorded: list[tuple[str, str]] = []
        self.source: list[tuple[str, str]] = []
        # ids counted on both sides (a valid first line and its stored row): hashed once
        self.both: list[str] = []
        self.both_source: list[str] = []  # their amounts, as the lines give them
        self.both_recorded: list[str] = []  # and as the table holds them

    def advance(self, current: str) -> None:
        """The next stored row after the one of id `current`."""
        self.row = next(self.rows, None)
        if self.row is not None and self.row[0] <= current:
            raise Unordered("the table's pages are not in loan id order")

    def unmatched_below(self, loan_id: str | None) -> None:
        """Stored rows of ids no line holds (all that are left when `loan_id` is None): counted
        as recorded and reported as extra when this export recorded them (verify.EXTRA_ROWS)."""
        while self.row is not None and (loan_id is None or self.row[0] < loan_id):
            stored_id, _sha, decision, mine, amount = self.row
            if mine:
                self.add(self.recorded, stored_id, amount)
                self.extra.write(json.dumps([stored_id, decision]) + "\n")
            self.advance(stored_id)

    def matched(self, loan_id: str, first_valid: bool) -> Stored | None:
        """The stored row of `loan_id` (the first line of the id just met), taken off the walk;
        counted as recorded when this export recorded it or its first line is valid."""
        self.unmatched_below(loan_id)
        if self.row is None or self.row[0] != loan_id:
            return None
        found = self.row
        if found[3] or first_valid:
            self.add(self.recorded, loan_id, found[4])
        self.advance(loan_id)
        return found

    def add(self, batch: list[tuple[str, str]], loan_id: str, amount: str) -> None:
        batch.append((loan_id, amount))
        if len(batch) >= TOTALS_BATCH:
            self.flush()

    def flush(self) -> None:
        source, recorded, both = self.result.source, self.result.recorded, self.both
        if both:
            shared = id_hash_sum(both)
            amounts = amount_sum(self.both_source)
            if self.both_recorded != self.both_source:  # the same texts (as a rule): summed once
                amounts_recorded = amount_sum(self.both_recorded)
            else:
                amounts_recorded = amounts
            source.add_sums(len(both), amounts, shared)
            recorded.add_sums(len(both), amounts_recorded, shared)
        source.add_all(self.source)
        recorded.add_all(self.recorded)
        for batch in (self.source, self.recorded, both, self.both_source, self.both_recorded):
            batch.clear()


class Ahead:
    """The table's rows as one stream (`stream`) that can be looked ahead of (`peek`): rows
    looked at and not taken stay in order in front of the rest."""

    def __init__(self, rows: Iterator[Stored]) -> None:
        self.rows = rows
        self.buffer: deque[Stored] = deque()

    def stream(self) -> Iterator[Stored]:
        while True:
            while self.buffer:
                yield self.buffer.popleft()
            row = next(self.rows, None)
            if row is None:
                return
            yield row

    def peek(self, count: int) -> list[Stored]:
        """The next `count` rows the stream will give (fewer at the end), not taken."""
        if len(self.buffer) < count:
            self.buffer.extend(islice(self.rows, count - len(self.buffer)))
        return list(islice(self.buffer, count))

    def skip(self, count: int) -> None:
        """Takes `count` rows that `peek` gave (usually all the buffer holds: cleared at once)."""
        if count == len(self.buffer):
            self.buffer.clear()
            return
        for _ in range(count):
            self.buffer.popleft()


def merged(
    lines: Iterable[Line], rows: Iterator[Stored], result: Reconciliation, out: IO[str] | None
) -> None:
    """Every line's state and the extra rows into `result` (and `out`), as verify.reconcile's
    SQL gives them: line issues in line order, then extra rows by loan id. A run of BULK lines
    that agrees with the table's next rows is reconciled at once; else the usual line (the
    first of its id, whose stored row is the next one of the walk) is decided inline: a method
    call per line was a third of the merge's time."""
    counts: dict[str, int] = dict.fromkeys(STATES, 0)
    ahead = Ahead(rows)
    line_runs = iter(lines)
    with tempfile.TemporaryFile("w+", encoding="utf-8") as extra:
        walk = Merge(ahead.stream(), result, extra)
        source, recorded, table = walk.source, walk.recorded, walk.rows
        both, both_source, both_recorded = walk.both, walk.both_source, walk.both_recorded
        group: str | None = None
        first_sha: str | None = None
        stored: Stored | None = None
        while run := list(islice(line_runs, BULK)):
            head = walk.row
            if head is not None and (
                agreed := agreeing(run, head, ahead.peek(len(run) - 1), group)
            ):
                ids, shas, amounts, stored_amounts = agreed
                counts[RECONCILED] += len(run)
                both.extend(ids)
                both_source.extend(amounts)
                both_recorded.extend(stored_amounts)
                group, first_sha = ids[-1], shas[-1]
                ahead.skip(len(run) - 1)
                walk.row = following = next(table, None)
                if following is not None and following[0] <= group:
                    raise Unordered("the table's pages are not in loan id order")
                if len(both) >= TOTALS_BATCH:
                    walk.flush()
                continue
            for n, loan_id, sha, decision, detail, amount in run:
                if loan_id is None:  # no id: nothing to compare (verify.STATE's NULL joins)
                    state = INVALID if sha is None else MISSING
                elif loan_id != group:
                    if group is not None and loan_id < group:
                        raise Unordered(f"line {n}: loan id {loan_id} comes after {group}")
                    group, first_sha = loan_id, sha
                    stored = walk.row
                    if stored is not None and stored[0] == loan_id:  # the walk's next row
                        if sha is not None and amount is not None:
                            both.append(loan_id)
                            both_source.append(amount)
                            both_recorded.append(stored[4])
                        elif stored[3] or sha is not None:
                            recorded.append((loan_id, stored[4]))
                        walk.row = following = next(table, None)
                        if following is not None and following[0] <= loan_id:
                            raise Unordered("the table's pages are not in loan id order")
                    else:
                        stored = walk.matched(loan_id, sha is not None)
                        if sha is not None and amount is not None:
                            source.append((loan_id, amount))
                    if len(both) >= TOTALS_BATCH or len(source) + len(recorded) >= TOTALS_BATCH:
                        walk.flush()
                    state = line_state(sha, decision, stored)
                elif sha is None:
                    state = INVALID
                else:  # a later line of the id: the first one was migrated (D8)
                    state = REPEATED if first_sha == sha else DUPLICATE
                counts[state] += 1
                if state in (RECONCILED, REPEATED, INVALID):
                    continue
                issue: dict[str, Any] = {"line": n, "loanId": loan_id, "state": state}
                if state == UNEXPECTED:
                    issue |= {"expected": decision, "recorded": stored[2] if stored else None}
                elif detail:
                    issue["detail"] = detail
                note(result, out, issue)
        result.lines += sum(counts.values())
        result.counts.update({state: count for state, count in counts.items() if count})
        walk.unmatched_below(None)
        walk.flush()
        extra.seek(0)
        for text in extra:
            stored_id, decided = json.loads(text)
            result.counts[EXTRA] += 1
            note(result, out, {"loanId": stored_id, "state": EXTRA, "recorded": decided})


Columns = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]


def agreeing(
    run: list[Line], head: Stored, following: list[Stored], group: str | None
) -> Columns | None:
    """The run's ids, fingerprints and amounts and the stored amounts when each of its lines is
    RECONCILED as the line-by-line walk would decide it: every line valid (a fingerprint and an
    amount) and the first of its id (ids rising from `group`, the id of the line before), and
    the stored rows from `head` on holding the same ids, fingerprints and decisions, in the
    same number (so no stored row lies between two of them: none is extra)."""
    _numbers, ids, shas, decisions, _details, amounts = zip(*run, strict=True)
    if None in ids or None in shas or None in amounts:
        return None
    if len(following) != len(run) - 1 or (group is not None and not ids[0] > group):
        return None
    if len(ids) > 1 and not all(map(lt, ids, islice(ids, 1, None))):
        return None
    stored_ids, stored_shas, stored_decisions, _mine, stored_amounts = zip(
        *(head, *following), strict=True
    )
    if stored_ids != ids or stored_shas != shas or stored_decisions != decisions:
        return None
    return ids, shas, amounts, stored_amounts


def line_state(sha: str | None, decision: str, stored: Stored | None) -> str:
    """The first line of an id against its stored row (NULL columns compare as SQL's do)."""
    if sha is None:
        return INVALID
    if stored is None:
        return MISSING
    if stored[1] is not None and stored[1] != sha:
        return CHANGED
    if stored[2] is not None and stored[2] != decision:
        return UNEXPECTED
    return RECONCILED
