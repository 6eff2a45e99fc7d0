"""The report of `loanstack migrate`: the chunks' reports merged into one, streamed.

A migration's problem rows can be every row of the export (a 1,000,000-row export of bad rows
once took 5.9 GB held as one list, issue 20). So nothing here holds more than one chunk's rows:
the lines a chunk held back as duplicates wait in a temporary file (`HeldBack`), the merge reads
one chunk's report at a time, in export order, and writes each problem row as one JSON line to
the problem file; the merged report keeps its counts, the first rows and the file's S3 key,
size and SHA-256 (`problemsFile`), never the list itself. The terminal shows the first rows and
a count of the rest.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import operator
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import IO, Any, TypedDict, cast

from rich.console import Console
from rich.text import Text

from loanstack import render as layout
from loanstack.ops.batchpath import BatchPath, bounded_transfer, dead_letters, read_object
from loanstack.ops.export import BATCH, Chunk, Export

# json.dumps(..., sort_keys=True) builds an encoder per call; the same output from one encoder
SORTED = json.JSONEncoder(sort_keys=True)
SHOWN = 20  # problem rows the terminal shows, and the report keeps as `firstProblems`
PROBLEMS_NAME = "migration.problems.jsonl"
# The decisions a report lists as problem rows: every one but those the batch contract accepts.
PROBLEMS: tuple[str, ...] = tuple(d for d in BATCH.DECISIONS if d not in BATCH.ACCEPTED)


class Problem(TypedDict, total=False):
    """A row a report lists (a decision other than ACCEPTED), as the function writes it."""

    line: int  # in the chunk's report: the chunk's line; in the merged report: the export's
    loanId: str
    decision: str
    reasons: list[str]
    errors: list[dict[str, str]]
    recorded: str  # CONFLICT: the decision recorded for the loan id before


class FailedChunk(TypedDict, total=False):
    key: str
    lines: str  # the export's lines it held, "first-last"
    error: str  # the function's error, as the dead-letter queue holds it


class ChunkReport(TypedDict):
    """What the function writes for one batch file (`handle_batch_file`)."""

    source: str
    rows: int
    summary: dict[str, int]
    problems: list[Problem]


class ProblemsFile(TypedDict):
    """Where the full problem list is: one JSON object per line, in export line order."""

    key: str  # reports/<migration>/migration.problems.jsonl in the documents bucket
    rows: int
    bytes: int
    sha256: str  # of the object's bytes, as `sha256sum` prints it


class MigrationReport(TypedDict, total=False):
    """The merged report: stored as reports/<migration>/migration.report.json, printed, emitted;
    `verify` is added by `loanstack migrate` when it reconciles (D8)."""

    migration: str
    export: str
    sha256: str  # the export file's SHA-256, as `sha256sum` prints it
    bytes: int  # the export file's size
    chunks: int
    rows: int
    summary: dict[str, int]  # rows per decision
    problemsFile: ProblemsFile  # every problem row (the list is never held in memory)
    firstProblems: list[Problem]  # the first SHOWN of them
    failedChunks: list[FailedChunk]
    sortedByLoanId: bool  # the export's loan ids in the primary key's order (export.IdOrder)
    firstUnsortedLine: int  # when not: the export's first line out of order
    verify: dict[str, Any]


def problems_key(migration: str) -> str:
    return f"{BATCH.REPORTS}{migration}/{PROBLEMS_NAME}"


class HeldBack:
    """The lines each chunk held back as duplicates (export.FirstLines), kept in a temporary
    file from the chunk's upload to the merge: an export of nothing but repeated ids holds no
    more of them in memory than one chunk's."""

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self.spans: dict[int, tuple[int, int]] = {}  # chunk number -> (offset, count)
        self.decisions: dict[int, Counter[str]] = {}  # chunk number -> rows per decision

    def keep(self, chunk: Chunk) -> None:
        """Move the chunk's duplicates to the file (the chunk's list is emptied)."""
        offset = self.file.seek(0, 2)
        for problem in chunk.duplicates:
            self.file.write(json.dumps(problem, sort_keys=True).encode() + b"\n")
        self.spans[chunk.number] = (offset, len(chunk.duplicates))
        self.decisions[chunk.number] = Counter(str(d["decision"]) for d in chunk.duplicates)
        chunk.duplicates = []

    def read(self, chunk: Chunk) -> Iterator[Problem]:
        """The chunk's held-back lines, in line order (as they were cut)."""
        offset, count = self.spans.get(chunk.number, (0, 0))
        for _ in range(count):
            self.file.seek(offset)
            line = self.file.readline()
            offset += len(line)
            yield cast(Problem, json.loads(line))

    def counts(self, chunk: Chunk) -> Counter[str]:
        return self.decisions.get(chunk.number, Counter())

    def close(self) -> None:
        self.file.close()


class ProblemWriter:
    """Problem rows to a binary file as JSON Lines, counted and hashed on the way; the first
    SHOWN kept for the report."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.rows = 0
        self.size = 0
        self.first: list[Problem] = []

    def write(self, problem: Problem) -> None:
        self.write_all([problem])

    def write_all(self, problems: list[Problem]) -> None:
        """Rows in order, written, hashed and counted as one block (a chunk's rows at a time:
        one write and one hash update, not one per row)."""
        if not problems:
            return
        block = ("\n".join(map(SORTED.encode, problems)) + "\n").encode()  # ASCII: ensure_ascii
        self.out.write(block)
        self.digest.update(block)
        self.rows += len(problems)
        self.size += len(block)
        if len(self.first) < SHOWN:
            self.first.extend(problems[: SHOWN - len(self.first)])

    def described(self, key: str) -> ProblemsFile:
        return {
            "key": key,
            "rows": self.rows,
            "bytes": self.size,
            "sha256": self.digest.hexdigest(),
        }


def by_line(problem: Problem) -> int:
    return int(problem["line"])


def chunk_problems(
    export: Export, chunk: Chunk, report: ChunkReport, held: HeldBack
) -> list[Problem]:
    """One chunk's problem rows in export line order: the function's (their line numbers moved
    to the export's, in the report's own rows: it is read for this merge only) and the lines
    the tool held back. Sorted here rather than trusted: the merge relies on the order; the
    function writes them in order, so checking it costs one comparison per row."""
    found = report.get("problems", [])
    offset = chunk.export_line(0, export)
    for problem in found:
        problem["line"] += offset
    lines = [p["line"] for p in found]
    if any(map(operator.gt, lines, lines[1:])):
        found.sort(key=by_line)
    if held.counts(chunk):
        return list(heapq.merge(found, held.read(chunk), key=by_line))
    return found


def merge(
    export: Export,
    layout_: list[Chunk],
    stack: BatchPath,
    failed: list[Chunk],
    held: HeldBack,
    out: ProblemWriter,
) -> MigrationReport:
    """The chunks' reports as one, line numbers in the export's terms, in export order: one
    chunk's report in memory at a time, each problem row written to `out` as it comes."""
    counts: Counter[str] = Counter()
    failed_keys = {c.key(export) for c in failed}
    errors = dead_letters(stack, f"{BATCH.INCOMING}{export.migration_id}/") if failed else {}
    for chunk in layout_:
        if chunk.key(export) in failed_keys:
            continue
        report: ChunkReport = json.loads(read_object(stack, chunk.report_key(export)))
        counts.update(report.get("summary", {}))
        counts.update(held.counts(chunk))
        out.write_all(chunk_problems(export, chunk, report, held))
        del report
    merged: MigrationReport = {
        "migration": export.migration_id,
        "export": export.path.name,
        "sha256": export.sha256,
        "bytes": export.size,
        "chunks": len(layout_),
        "rows": sum(counts.values()),
        "summary": dict(sorted(counts.items())),
        "problemsFile": out.described(problems_key(export.migration_id)),
        "firstProblems": out.first,
        "failedChunks": [
            {
                "key": c.key(export),
                "lines": f"{c.first_line}-{c.first_line + c.lines - 1}",
                "error": errors.get(c.key(export), ""),
            }
            for c in failed
        ],
        "sortedByLoanId": export.order.sorted,
    }
    if export.order.first_unsorted_line is not None:
        merged["firstUnsortedLine"] = export.order.first_unsorted_line
    return merged


def publish(stack: BatchPath, name: str, key: str) -> None:
    """The problem file to S3 next to the report, by its name: boto3 then reads each part from
    the file as it is sent (a file object's parts are read into memory first), within
    bounded_transfer's limits, so a 150 MiB list costs no more than a small one."""
    stack.s3.upload_file(
        name,
        stack.bucket,
        key,
        ExtraArgs={"ContentType": "application/x-ndjson"},
        Config=bounded_transfer(),
    )


def store(stack: BatchPath, key: str, report: MigrationReport) -> None:
    """The merged report (small: counts, the first rows, the problem file's reference)."""
    with tempfile.TemporaryFile() as body:
        body.write(json.dumps(report, sort_keys=True).encode())
        body.seek(0)
        stack.s3.upload_fileobj(
            body, stack.bucket, key, ExtraArgs={"ContentType": "application/json"}
        )


def download(stack: BatchPath, report: MigrationReport, into: IO[bytes]) -> None:
    """The report's problem file, streamed into `into` (a migration already done)."""
    stack.s3.download_fileobj(
        stack.bucket, report["problemsFile"]["key"], into, Config=bounded_transfer()
    )


def problems(stack: BatchPath, report: MigrationReport) -> Iterator[Problem]:
    """Every problem row of a stored report, read line by line from S3 (tests, the demo)."""
    body = stack.s3.get_object(Bucket=stack.bucket, Key=report["problemsFile"]["key"])["Body"]
    for line in body.iter_lines():
        if line:
            yield cast(Problem, json.loads(line))


def read_problems(handle: IO[bytes]) -> Iterator[Problem]:
    """Every problem row of a local problem file, line by line."""
    handle.seek(0)
    for line in handle:
        if line.strip():
            yield cast(Problem, json.loads(line))


def upgrade(stored: dict[str, Any], stack: BatchPath, migration: str) -> MigrationReport:
    """A report stored before the problem list moved to its own file (it held "problems"
    inline): its rows written to the file once, so the report reads like a new one. Such a
    report was small enough to be stored whole, so holding it here is what it always cost."""
    if "problemsFile" in stored:
        return cast(MigrationReport, stored)
    with tempfile.NamedTemporaryFile() as spool:
        out = ProblemWriter(spool)
        for problem in stored.pop("problems", []):
            out.write(cast(Problem, problem))
        spool.flush()
        key = problems_key(migration)
        publish(stack, spool.name, key)
    stored["problemsFile"], stored["firstProblems"] = out.described(key), out.first
    return cast(MigrationReport, stored)


# --- the terminal ------------------------------------------------------------------------------


def print_summary(
    console: Console,
    report: MigrationReport,
    shown: int = SHOWN,
    rows: Iterable[Problem] | None = None,
    where: str | None = None,
    logs: str = "loanstack logs",
) -> None:
    """Rows per decision, the first `shown` problem rows (export line numbers) with a count of
    the rest and where they all are, failed chunks with their error and `logs` (the command
    that shows the function's records). `rows` is the full list when the caller has
    it (the local problem file); the report's first rows otherwise."""
    layout.records(
        console,
        f"Migration {report['migration']}: {report['export']}, {report['rows']:,} rows",
        ("decision", "rows"),
        [(k, f"{v:,}") for k, v in report["summary"].items()],
        numbers=("rows",),
    )
    console.print(Text(order_line(report)), soft_wrap=True)
    source = rows if rows is not None else report.get("firstProblems", [])
    table = [
        (str(p["line"]), p.get("loanId", ""), p["decision"], why(p))
        for p in islice(source, max(shown, 0))
    ]
    if table:
        layout.records(
            console, "Rows not taken", ("line", "loan", "decision", "why"), table, prose="why"
        )
    console.print(Text(problems_line(report, len(table), where)), soft_wrap=True)
    for chunk in report["failedChunks"]:
        cause = chunk.get("error") or "no error recorded"
        console.print(
            Text(
                f"failed chunk {chunk['key']} (export lines {chunk['lines']}): {cause}; in the "
                f"dead-letter queue; the function's log: `{logs}`; fix the cause and run again "
                "with --retry-failed",
                style="bold red",
            ),
            soft_wrap=True,
        )


def problems_line(report: MigrationReport, printed: int, where: str | None) -> str:
    """How many problem rows there are beyond those printed, and where every one of them is."""
    found = report.get("problemsFile")
    if found is None:
        return "problem rows: not recorded in this report"
    total = found["rows"]
    if total == 0:
        return "no problem rows"
    more = f"and {total - printed:,} more; " if total > printed else ""
    local = f"{where} and " if where else ""
    return f"{more}all {total:,} problem rows (JSON Lines): {local}the documents bucket's {found['key']}"


def order_line(report: MigrationReport) -> str:
    """Whether the export came sorted by loan id, and what that costs when it did not."""
    if "sortedByLoanId" not in report:  # a report stored by an earlier version
        return "loan id order: not recorded in this report"
    if report["sortedByLoanId"]:
        return "loan ids sorted: each row was appended to the table"
    return (
        f"loan ids not sorted (line {report.get('firstUnsortedLine', '?')} is the first out of "
        "order): on a table larger than the database's memory each row costs a page read; "
        "sort the next export by loanId (docs/benchmarks.md)"
    )


def why(problem: Problem) -> str:
    if problem.get("reasons"):
        return ", ".join(problem["reasons"])
    if problem["decision"] == "CONFLICT" and not problem.get("errors"):
        return "loan id already recorded with different content"
    return "; ".join(f"{e['field']}: {e['message']}" for e in problem.get("errors", []))
