"""`loanstack verify`, the export's side: CSV lines judged through templates of lines alike."""

from __future__ import annotations

import csv
import io
import re
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
CELL = r'[^,"\r\n]*'  # a cell of a line `csv_cells` splits at its commas (no quote, no line end)
NO_LINE = re.compile(r"(?!)")  # matches nothing: no ids to set apart, every line whole
NO_RAW_LINE = re.compile(rb"(?!)")


def line_pattern(low: int, high: int, id_pattern: str) -> re.Pattern[str]:
    """A line of cells split at commas whose cells `low` and `high` are valid ids (`ID`), in
    one match in C: (the cells before the first id, with their commas; that id; the cells
    between; the second id; the cells after). The line without its two ids, the groups other
    than the ids joined, is the template's key: the line's other cells and where they stand.
    A line it matches is one `csv_cells` splits at its commas with both ids valid and at least
    `high` + 1 cells; one it does not goes the whole way."""
    return re.compile(
        f"((?:{CELL},){{{low}}})({id_pattern})(,(?:{CELL},){{{high - low - 1}}})({id_pattern})"
        f'((?:,[^"\r\n]*)?)'  # = (,CELL)*: the cells after the second id, as many as there are
    )


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
        self.low = self.ids is not None and self.ids[0] < self.ids[1]  # the loan id comes first
        self.pattern, self.raw_pattern = NO_LINE, NO_RAW_LINE
        if self.ids is not None:
            self.pattern = line_pattern(min(self.ids), max(self.ids), fn.ID.pattern)
            self.raw_pattern = re.compile(self.pattern.pattern.encode())
        self.size_limit = csv.field_size_limit()  # csv_cells' bound (the reader's never exceeds it)
        # a line's bytes read in place (`judge_block`) when no longer than both bounds
        self.raw_limit = min(fn.MAX_LINE_BYTES, self.size_limit)
        # keys: line_pattern's (of the text, or of the bytes in judge_block), read_cells'
        self.kept: dict[str | bytes | tuple[str, ...], Kept] = {}
        self.looked_up, self.hits = 0, 0

    def seldom_alike(self) -> bool:
        """As `judge`'s decision cache: after PROBE_LINES lines mostly unlike, stop looking."""
        return self.looked_up >= PROBE_LINES and self.hits * 4 < PROBE_LINES

    def judge(self, lines: list[tuple[int, str]]) -> Iterator[Line]:
        """The batch's lines in order; runs of lines that go the whole way go together."""
        if self.ids is None or self.seldom_alike():
            yield from self.whole(lines)  # no ids to set apart, or lines seldom alike
            return
        fullmatch, size_limit, first_is_low = self.pattern.fullmatch, self.size_limit, self.low
        kept = self.kept
        fingerprint_of = self.fn.fingerprint_of
        whole: list[tuple[int, str]] = []
        for k, (number, text) in enumerate(lines):
            if type(text) is not str:
                whole.append((number, text))  # unreadable: the reader's message
                continue
            match = fullmatch(text)
            if match is not None and len(text) <= size_limit:
                self.looked_up += 1
                before, low_id, middle, high_id, after = match.groups()
                loan_id, applicant = (low_id, high_id) if first_is_low else (high_id, low_id)
                key: str | tuple[str, ...] = before + middle + after
                fits = key.count(",") < self.width  # no more cells than the header
            elif not text.strip():
                continue  # a blank line is no row (csv_rows)
            else:
                self.looked_up += 1
                read = self.read_cells(text)
                if read is None:
                    whole.append((number, text))
                    continue
                key, loan_id, applicant = read
                fits = True
            if whole:
                yield from self.whole(whole)
                whole = []
            found = kept.get(key)
            if found is None:
                if not fits:
                    whole.append((number, text))
                    continue
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

    def judge_block(self, number: int, data: bytes) -> list[Line]:
        """A block of whole lines (`Parallel.cut`, the first line numbered `number` > 1), its
        lines alike read in place: a line's bytes matched by `line_pattern` (compiled for
        bytes) whose key is kept get their ids and the template's answer, without the line
        being decoded or copied. Every other line, in order, is read by the function's reader
        (`lines_of`) and judged by `judge`; a line alike not yet kept is decoded and learned.

        The same lines as the reader's: a block is split where the reader splits it (`LINE_END`),
        an empty piece after its last line end is no line; the bytes pattern excludes `,` `"`
        and line ends as the text's does, and its ids are ASCII, so a line it matches is valid
        UTF-8 when its key is (a kept key was decoded when learned: the bytes between ASCII
        cells are the key's); a line longer than MAX_LINE_BYTES is never read in place."""
        fn = self.fn
        pieces = fn.LINE_END.split(data) if b"\r" in data else data.split(b"\n")
        if not pieces[-1]:
            pieces.pop()
        if self.ids is None or self.seldom_alike():
            return list(self.judge(lines_of(fn, number, pieces)))
        fullmatch, limit, kept = self.raw_pattern.fullmatch, self.raw_limit, self.kept
        fingerprint_of, first_is_low, width = fn.fingerprint_of, self.low, self.width
        out: list[Line] = []
        slow: list[bytes] = []  # a run of lines for the reader, from line `slow_from`
        slow_from = number
        for k, raw in enumerate(pieces):
            match = fullmatch(raw) if len(raw) <= limit else None
            found = None
            if match is not None:
                before, low_id, middle, high_id, after = match.groups()
                found = kept.get(key := before + middle + after)
                if found is None and key.count(b",") < width:
                    try:
                        text = raw.decode()
                    except UnicodeDecodeError:
                        pass  # the reader's message, below
                    else:
                        if slow:
                            out.extend(self.judge(lines_of(fn, slow_from, slow)))
                            slow = []
                        self.looked_up += 1
                        out.append(self.learn(number + k, text, key))
                        if self.seldom_alike():
                            rest = lines_of(fn, number + k + 1, pieces[k + 1 :])
                            out.extend(self.judge(rest))
                            return out
                        continue
            if found is None:
                if not slow:
                    slow_from = number + k
                slow.append(raw)
                continue
            if slow:
                out.extend(self.judge(lines_of(fn, slow_from, slow)))
                slow = []
            self.looked_up += 1
            self.hits += 1
            loan_id, applicant = (low_id, high_id) if first_is_low else (high_id, low_id)
            parts, decision, detail, amount = found
            loan_text = loan_id.decode()
            out.append(
                (number + k, loan_text, None, decision, detail, amount)
                if parts is None
                else (
                    number + k,
                    loan_text,
                    fingerprint_of(parts, loan_text, applicant.decode()),
                    decision,
                    detail,
                    amount,
                )
            )
        if slow:
            out.extend(self.judge(lines_of(fn, slow_from, slow)))
        return out

    def read_cells(self, text: str) -> tuple[tuple[str, ...], str, str] | None:
        """A line `line_pattern` does not match (quoted cells, an id the schema refuses, too
        few or too many cells): its key (its cells as the csv module reads them, the ids
        emptied) and ids when it can be a template's, else None (the whole way)."""
        cells = self.fn.csv_cells(text)
        first, second = self.ids or (0, 0)
        if (
            type(cells) is not list
            or not max(first, second) < len(cells) <= self.width
            or not self.fn.ID.fullmatch(loan_id := cells[first])
            or not self.fn.ID.fullmatch(applicant := cells[second])
        ):
            return None
        cells[first] = cells[second] = ""
        return tuple(cells), loan_id, applicant

    def learn(self, number: int, text: str, key: str | bytes | tuple[str, ...]) -> Line:
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


def lines_of(fn: ModuleType, number: int, pieces: list[bytes]) -> list[tuple[int, Any]]:
    """Whole lines without their ends (`pieces`, the first numbered `number` > 1) as the
    function's reader gives them in the whole file: read behind a blank line, so that the first
    is not the file's first (a byte order mark opens only that one); the blank line dropped."""
    texts = fn.text_lines(io.BytesIO(b"\n" + b"\n".join(pieces)), fn.MAX_LINE_BYTES)
    next(texts)
    return [(n + number - 2, text) for n, text in texts]
