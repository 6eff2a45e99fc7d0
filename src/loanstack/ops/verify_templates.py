"""`loanstack verify`, the export's side: CSV lines judged through templates of lines alike."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

# (line number, loan id or None, fingerprint or None (INVALID), decision, detail, amount or None):
# one plain tuple per line, the row written to SQLite as it is (no object per line to build)
Line = tuple[int, str | None, str | None, str, str, str | None]
# verify_export.judge: (rows, limits, path, clean_out) -> lines (given, as this module is its)
Judge = Callable[
    [Iterable[tuple[int, Any]], dict[str, Any], Path, list[dict[str, Any]] | None], Iterator[Line]
]
KEPT = 4096  # templates kept, as verify_export's decisions
PROBE_LINES = 512  # lines looked up before a book seldom alike stops looking

# The ids a CSV line carries only label it: the function's reader keeps each as its cell's text
# (`from_csv`), its schema checks each against `ID` alone and copies it into the normalised
# application (`clean_or_none`, `examine`: a valid id adds no error), and the rules never read
# them (DECISION_FIELDS). Two lines whose other cells are the same, both ids valid, therefore
# parse, validate and decide alike but for the ids: the first such line goes the whole way
# through the function's code and what it made of it is kept: the normalised application and
# decision, or the INVALID answer's fields. A later one takes that with its own ids and, when
# valid, is fingerprinted by the function's own code with its own ids: `fingerprint` is
# `fingerprint_of` its `fingerprint_parts` (the text around the ids) and the ids, so the parts
# are made once per template and each line hashes its whole text (its content, ids included,
# checked line by line as before, D8). A line with an id the schema refuses, cells the csv module cannot
# read (a stray quote: `csv_cells` gives the reader's message) or more cells than the header goes
# the whole way; a well-quoted line is a template like any other, keyed by the cells the csv
# module read, which are all the function's reader reads of it (test_verify_templates holds the
# two ways to the same lines).
# Most of a line's cost was the parse and the schema (~25 µs).
ID_FIELDS = ("loanId", "applicantId")
# What a line alike is given: (the fingerprint's text around the ids, or None when INVALID,
# decision, detail, amount)
Kept = tuple[tuple[str, str, str] | None, str, str, str | None]


class Templates:
    """The lines of a CSV export's batches judged, reusing what the function made of lines
    alike (one per worker: the templates outlive a batch, at most KEPT of them)."""

    def __init__(
        self,
        header: tuple[int, str],
        limits: dict[str, Any],
        path: Path,
        fn: ModuleType,
        judge: Judge,
    ) -> None:
        """`fn` is the validation function's module, `judge` verify_export's (the whole way)."""
        self.fn, self.judge_rows = fn, judge
        self.header, self.limits, self.path = header, limits, path
        self.key = f"incoming/{path.name}"
        names = fn.csv_cells(header[1])
        self.width = len(names) if isinstance(names, list) else -1
        at = [names.index(f) if isinstance(names, list) and f in names else -1 for f in ID_FIELDS]
        self.ids = (at[0], at[1]) if -1 not in at and at[0] != at[1] else None
        self.kept: dict[tuple[str, ...], Kept] = {}
        self.looked_up, self.hits = 0, 0

    def seldom_alike(self) -> bool:
        """As `judge`'s decision cache: after PROBE_LINES lines mostly unlike, stop looking."""
        return self.looked_up >= PROBE_LINES and self.hits * 4 < PROBE_LINES

    def judge(self, lines: list[tuple[int, str]]) -> Iterator[Line]:
        """The batch's lines in order; runs of lines that go the whole way go together."""
        if self.ids is None or self.seldom_alike():
            yield from self.whole(lines)  # no ids to set apart, or lines seldom alike
            return
        fn = self.fn
        cells_of, valid_id, fingerprint_of = fn.csv_cells, fn.ID.fullmatch, fn.fingerprint_of
        first, second = self.ids
        last, width, kept = max(first, second), self.width, self.kept
        whole: list[tuple[int, str]] = []
        for k, (number, text) in enumerate(lines):
            if type(text) is not str:
                whole.append((number, text))  # unreadable: the reader's message
                continue
            if not text.strip():
                continue  # a blank line is no row (csv_rows)
            self.looked_up += 1
            cells = cells_of(text)
            if (
                type(cells) is not list
                or not last < len(cells) <= width
                or not valid_id(loan_id := cells[first])
                or not valid_id(applicant := cells[second])
            ):
                whole.append((number, text))
                continue
            if whole:
                yield from self.whole(whole)
                whole = []
            cells[first] = cells[second] = ""
            found = kept.get(key := tuple(cells))
            if found is None:
                yield self.learn(number, text, key)
                if self.seldom_alike():
                    yield from self.whole(lines[k + 1 :])
                    return
                continue
            self.hits += 1
            parts, decision, detail, amount = found
            if parts is None:
                yield number, loan_id, None, decision, detail, amount
                continue
            yield (
                number,
                loan_id,
                fingerprint_of(parts, loan_id, applicant),
                decision,
                detail,
                amount,
            )
        yield from self.whole(whole)

    def learn(self, number: int, text: str, key: tuple[str, ...]) -> Line:
        """A line the whole way; what the function made of it kept for the lines alike."""
        clean: list[dict[str, Any]] = []
        rows = self.fn.rows_of(self.key, [self.header, (number, text)])
        line = next(self.judge_rows(rows, self.limits, self.path, clean))
        if len(self.kept) >= KEPT:
            self.kept.clear()
        parts = self.fn.fingerprint_parts(clean[0]) if clean else None
        self.kept[key] = (parts, line[3], line[4], line[5])
        return line

    def whole(self, lines: list[tuple[int, str]]) -> Iterator[Line]:
        """Lines the whole way through the function's reader and `judge`, the header first."""
        if lines:
            rows = self.fn.rows_of(self.key, [self.header, *lines])
            yield from self.judge_rows(rows, self.limits, self.path, None)
