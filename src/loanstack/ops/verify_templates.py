"""`loanstack verify`, the export's side: CSV lines judged through templates of lines alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loanstack.ops.verify_export import DECISIONS_KEPT, PROBE_LINES, Line, judge, validation

# The ids a CSV line carries only label it: the function's reader keeps each as its cell's text
# (`from_csv`), its schema checks each against `ID` alone and copies it into the normalised
# application (`clean_or_none`, `examine`), and the rules never read them (DECISION_FIELDS). Two
# lines whose other cells are the same, both ids valid, therefore parse, validate and decide
# alike but for the ids: the first such line goes the whole way through the function's code and
# its normalised application is kept as a template; a later one takes the template with its own
# ids and is fingerprinted by the function's `fingerprint` (its content, ids included, checked
# line by line as before, D8). A line with an id the schema refuses, a quote, more cells than
# the header, or one the function refuses goes the whole way (test_verify_templates holds the two
# ways to the same lines). Most of a line's cost was the parse and the schema (~25 µs).
ID_FIELDS = ("loanId", "applicantId")


class Templates:
    """The lines of a CSV export's batches judged, reusing what the function made of lines
    alike (one per worker: the templates outlive a batch, at most DECISIONS_KEPT of them)."""

    def __init__(self, header: tuple[int, str], limits: dict[str, Any], path: Path) -> None:
        fn = validation()
        self.header, self.limits, self.path = header, limits, path
        self.key = f"incoming/{path.name}"
        names = fn.csv_cells(header[1])
        self.width = len(names) if isinstance(names, list) else -1
        at = [names.index(f) if isinstance(names, list) and f in names else -1 for f in ID_FIELDS]
        self.ids = (at[0], at[1]) if -1 not in at and at[0] != at[1] else None
        self.kept: dict[tuple[str, ...], tuple[dict[str, Any], str, str]] = {}
        self.looked_up, self.hits = 0, 0

    def judge(self, lines: list[tuple[int, str]]) -> Iterator[Line]:
        if self.ids is None or (self.looked_up >= PROBE_LINES and self.hits * 4 < PROBE_LINES):
            yield from self.whole(lines)  # no ids to set apart, or lines seldom alike
            return
        fn = validation()
        cells_of, valid_id, fingerprint, kept = (
            fn.csv_cells,
            fn.ID.fullmatch,
            fn.fingerprint,
            self.kept,
        )
        first, second = self.ids
        last, width = max(first, second), self.width
        for number, text in lines:
            if type(text) is not str:
                yield from self.whole([(number, text)])  # unreadable: the reader's message
                continue
            if not text.strip():
                continue  # a blank line is no row (csv_rows)
            cells = cells_of(text)
            if (
                type(cells) is not list
                or not last < len(cells) <= width
                or not valid_id(loan_id := cells[first])
                or not valid_id(applicant := cells[second])
            ):
                yield from self.whole([(number, text)])
                continue
            cells[first] = cells[second] = ""
            self.looked_up += 1
            found = kept.get(key := tuple(cells))
            if found is None:
                yield self.learn(number, text, key)
                continue
            self.hits += 1
            app = found[0].copy()
            app["loanId"], app["applicantId"] = loan_id, applicant
            yield number, loan_id, fingerprint(app), found[1], "", found[2]

    def learn(self, number: int, text: str, key: tuple[str, ...]) -> Line:
        """A line the whole way; its normalised application kept when the function takes it."""
        clean: list[dict[str, Any]] = []
        rows = validation().rows_of(self.key, [self.header, (number, text)])
        line = next(judge(rows, self.limits, self.path, clean))
        if clean and line[5] is not None:
            if len(self.kept) >= DECISIONS_KEPT:
                self.kept.clear()
            self.kept[key] = (clean[0], line[3], line[5])
        return line

    def whole(self, lines: list[tuple[int, str]]) -> Iterator[Line]:
        """Lines the whole way through the function's reader and `judge`, the header first."""
        rows = validation().rows_of(self.key, [self.header, *lines])
        yield from judge(rows, self.limits, self.path)
