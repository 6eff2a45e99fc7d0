"""`loanstack migrate`: move a whole export through the batch path, resumably, to one report.

The tool never validates a row itself: it cuts the export into chunk files under
`incoming/<migration-id>/`, S3 runs the validation function on each (SPEC D6, up to its reserved
concurrency), and the tool merges the function's per-chunk reports into one
`reports/<migration-id>/migration.report.json`, with every line number moved from the chunk to
the export. The migration id is the export's SHA-256, so running the command again uploads only
what is missing, waits only for what is undecided, and after success prints the same report.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypedDict, cast

from rich.console import Console
from rich.text import Text

from loanstack import functions
from loanstack import render as layout
from loanstack.aws.outputs import output
from loanstack.aws.target import Target
from loanstack.errors import DeployError, UsageError

# The batch contract is the validation function's (its S3 layout, columns and decisions): read
# from its module, never restated here.
BATCH = functions.contract(functions.VALIDATION)
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
REQUIRED_COLUMNS: tuple[str, ...] = tuple(f for f in BATCH.FIELDS if f not in BATCH.OPTIONAL_FIELDS)
DEFAULT_CHUNK_ROWS = 10_000
MAX_CHUNK_ROWS = 1_000_000
READ_BYTES = 1 << 20
PROBLEMS: tuple[str, ...] = tuple(d for d in BATCH.DECISIONS if d not in BATCH.ACCEPTED)
# upload_fileobj switches to multipart above 8 MiB by default (boto3 TransferConfig); a chunk of
# the default size is a few MiB, a wide one may pass it.
# https://boto3.amazonaws.com/v1/documentation/api/latest/guide/s3.html#multipart-transfers


class Problem(TypedDict, total=False):
    """A row a report lists (a decision other than ACCEPTED), as the function writes it."""

    line: int  # in the chunk's report: the chunk's line; in the merged report: the export's
    loanId: str
    decision: str
    reasons: list[str]
    errors: list[dict[str, str]]
    recorded: str  # CONFLICT: the decision recorded for the loan id before


class FailedChunk(TypedDict):
    key: str
    lines: str  # the export's lines it held, "first-last"


class ChunkReport(TypedDict):
    """What the function writes for one batch file (`handle_batch_file`)."""

    source: str
    rows: int
    summary: dict[str, int]
    problems: list[Problem]


class MigrationReport(TypedDict):
    """The merged report: stored as reports/<migration>/migration.report.json, printed, emitted."""

    migration: str
    export: str
    sha256: str
    chunks: int
    rows: int
    summary: dict[str, int]  # rows per decision
    problems: list[Problem]
    failedChunks: list[FailedChunk]


@dataclass
class Export:
    """What the first pass learned: the id, the format, the header (CSV), the data lines."""

    path: Path
    kind: str
    digest: str
    header: bytes | None
    header_line: int  # the physical line of the CSV header (0 for JSON Lines)
    chunk_rows: int = DEFAULT_CHUNK_ROWS

    @property
    def migration_id(self) -> str:
        """The content's digest and how it is cut: a resume with another --chunk-rows is another
        migration, so no report of a chunk cut differently is ever taken for one of this cut."""
        return f"{self.digest[:24]}-{self.chunk_rows}"


@dataclass
class Chunk:
    number: int
    first_line: int  # the export's physical line of the chunk's first data line
    lines: int  # physical data lines in the chunk (blank ones included)
    size: int = 0

    def key(self, export: Export) -> str:
        return f"{BATCH.INCOMING}{export.migration_id}/part-{self.number:05d}.{export.kind}"

    def report_key(self, export: Export) -> str:
        return str(BATCH.report_key(self.key(export)))

    def export_line(self, chunk_line: int, export: Export) -> int:
        """A line of the chunk's report as a line of the export (a CSV chunk opens with the
        header, so its data starts at line 2)."""
        return self.first_line + chunk_line - (2 if export.kind == "csv" else 1)


@dataclass
class ProgressLine:
    """One line every `every` seconds (a terminal, a pipe and CI read it alike)."""

    console: Console
    started: float = field(default_factory=time.monotonic)
    last: float = 0.0
    every: float = 2.0

    def show(
        self, rows: int, uploaded: int, decided: int, total: int | None, force: bool = False
    ) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        rate = rows / max(now - self.started, 1e-9)
        of = f"/{total}" if total is not None else ""
        self.console.print(
            Text(
                f"lines read {rows:,}  chunks uploaded {uploaded}{of}  "
                f"chunks decided {decided}{of}  {rate:,.0f} lines/s"
            )
        )


# --- first pass: refuse bad input before anything is uploaded ---------------------------------


def inspect(path: Path) -> Export:
    """Hash the export and check what the function cannot: format, encoding, CSV columns."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UsageError(
            f"{path}: unknown export format {path.suffix or '(no extension)'!r}; "
            "name it .csv, .jsonl or .ndjson"
        )
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise UsageError(f"cannot read export {path}: {exc.strerror}") from exc
    digest = hashlib.sha256(kind.encode() + b"\0")
    header: bytes | None = None
    header_line = 0
    with handle:
        for number, line in physical_lines(handle, digest):
            if header is None and line.strip():
                check_first_line(path, number, line)
                if kind != "csv":
                    header = b""
                    continue
                header, header_line = line, number
                check_columns(path, number, line)
    if header is None:
        raise UsageError(f"{path} holds no rows")
    return Export(path, kind, digest.hexdigest(), header if kind == "csv" else None, header_line)


def physical_lines(handle: IO[bytes], digest: Any = None) -> Iterator[tuple[int, bytes]]:
    """(number, bytes without the newline), split on b"\\n" exactly as the function splits."""
    rest = b""
    number = 0
    for block in iter(lambda: handle.read(READ_BYTES), b""):
        if digest is not None:
            digest.update(block)
        *complete, rest = (rest + block).split(b"\n")
        for line in complete:
            number += 1
            yield number, line
    if rest:
        yield number + 1, rest


def check_first_line(path: Path, number: int, line: bytes) -> None:
    if line.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise UsageError(f"{path} is UTF-16, not UTF-8; convert it: iconv -f UTF-16 -t UTF-8")
    try:
        line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{path} is not UTF-8 (line {number}, byte {exc.start + 1}); convert it, e.g. "
            "iconv -f LATIN1 -t UTF-8"
        ) from exc


def check_columns(path: Path, number: int, line: bytes) -> None:
    import csv

    try:
        columns = next(csv.reader([line.decode("utf-8-sig")], strict=True))
    except csv.Error as exc:
        raise UsageError(f"{path}: the CSV header (line {number}) is not valid CSV: {exc}") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise UsageError(
            f"{path}: the CSV header (line {number}) lacks {', '.join(missing)}; "
            f"the columns are {', '.join(REQUIRED_COLUMNS)} and {', '.join(BATCH.OPTIONAL_FIELDS)}"
        )


# --- second pass: chunks ----------------------------------------------------------------------


def chunks(export: Export, rows: int) -> Iterator[tuple[Chunk, IO[bytes]]]:
    """Each chunk with its file (a temporary file, rewound): at most `rows` data lines."""
    number, current, body = 0, None, None
    with export.path.open("rb") as handle:
        for line_number, line in physical_lines(handle):
            if line_number <= export.header_line:
                continue  # the CSV header and any blank lines before it
            if current is None and not line.strip():
                continue  # blank lines between chunks are no rows
            if current is None:
                number += 1
                current = Chunk(number, line_number, 0)
                body = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the caller, per chunk
                if export.header is not None:
                    body.write(export.header + b"\n")
            assert body is not None
            body.write(line + b"\n")
            current.lines = line_number - current.first_line + 1
            if current.lines >= rows:
                yield finished(current, body)
                current, body = None, None
        if current is not None and body is not None:
            yield finished(current, body)


def finished(chunk: Chunk, body: IO[bytes]) -> tuple[Chunk, IO[bytes]]:
    chunk.size = body.tell()
    body.seek(0)
    return chunk, body


# --- AWS side ---------------------------------------------------------------------------------


@dataclass
class BatchPath:
    """The stack's batch path as migrate uses it: the documents bucket (chunks in, reports out)
    and the validation function's dead-letter queue."""

    s3: Any
    sqs: Any
    bucket: str
    dead_letter_url: str


def existing(stack: BatchPath, prefix: str) -> dict[str, int]:
    """key -> size of every object under `prefix`."""
    found: dict[str, int] = {}
    for page in stack.s3.get_paginator("list_objects_v2").paginate(
        Bucket=stack.bucket, Prefix=prefix
    ):
        for obj in page.get("Contents", []):
            found[obj["Key"]] = int(obj["Size"])
    return found


def dead_letters(stack: BatchPath, prefix: str, delete: bool = False) -> set[str]:
    """Keys under `prefix` whose S3 event sits in the dead-letter queue.

    Messages are received with a short visibility timeout and, unless `delete`, made visible
    again at once: the queue stays as it was for the alarm and for whoever reads it next.
    """
    keys: set[str] = set()
    handles: list[tuple[str, bool]] = []
    for _ in range(1000):  # the queue is small; this only bounds a runaway loop
        reply = stack.sqs.receive_message(
            QueueUrl=stack.dead_letter_url, MaxNumberOfMessages=10, VisibilityTimeout=30
        )
        messages = reply.get("Messages", [])
        if not messages:
            break
        for message in messages:
            ours = [k for k in event_keys(message.get("Body", "")) if k.startswith(prefix)]
            keys.update(ours)
            handles.append((message["ReceiptHandle"], bool(ours)))
    for handle, mine in handles:
        if delete and mine:
            stack.sqs.delete_message(QueueUrl=stack.dead_letter_url, ReceiptHandle=handle)
        else:
            stack.sqs.change_message_visibility(
                QueueUrl=stack.dead_letter_url, ReceiptHandle=handle, VisibilityTimeout=0
            )
    return keys


def event_keys(body: str) -> list[str]:
    """The object keys of an S3 event (a dead letter's body is the event Lambda received)."""
    from urllib.parse import unquote_plus

    try:
        records = json.loads(body).get("Records", [])
        return [unquote_plus(r["s3"]["object"]["key"]) for r in records]
    except (ValueError, AttributeError, KeyError, TypeError):
        return []


def retrigger(stack: BatchPath, key: str, kind: str) -> None:
    """A new ObjectCreated:Copy event for `key`: the object copied onto itself (S3 requires a
    change, hence REPLACE metadata; https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html)."""
    stack.s3.copy_object(
        Bucket=stack.bucket,
        Key=key,
        CopySource={"Bucket": stack.bucket, "Key": key},
        MetadataDirective="REPLACE",
        ContentType=content_type(kind),
        Metadata={"retried": str(int(time.time()))},
    )


# --- the command ------------------------------------------------------------------------------


@dataclass
class Options:
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    retry_failed: bool = False
    timeout: float = 3600.0
    poll: float = 0.5


def check_options(options: Options) -> None:
    if not 1 <= options.chunk_rows <= MAX_CHUNK_ROWS:
        raise UsageError(f"--chunk-rows must be between 1 and {MAX_CHUNK_ROWS:,}")
    if options.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")


def migrate(
    source: Path | Export, stack: BatchPath, console: Console, options: Options | None = None
) -> MigrationReport:
    """The merged report (also stored in S3 once every chunk is decided); a wait that runs out
    raises DeployError saying how to go on."""
    options = options or Options()
    check_options(options)
    export = source if isinstance(source, Export) else inspect(source)
    export.chunk_rows = options.chunk_rows
    path = export.path
    mid = export.migration_id
    final_key = f"{BATCH.REPORTS}{mid}/migration.report.json"
    console.print(
        Text(
            f"migration {mid}: {path} ({export.kind}) to s3://{stack.bucket}/{BATCH.INCOMING}{mid}/"
        )
    )
    done = existing(stack, f"{BATCH.REPORTS}{mid}/")
    if final_key in done and not options.retry_failed:
        console.print(Text(f"already migrated: s3://{stack.bucket}/{final_key}"))
        return cast(MigrationReport, json.loads(read_object(stack, final_key)))
    layout_ = upload(export, stack, console, options)
    failed = wait(export, layout_, stack, console, options)
    report = merge(export, layout_, stack, failed)
    if not failed:
        store(stack, final_key, report)
    return report


def upload(export: Export, stack: BatchPath, console: Console, options: Options) -> list[Chunk]:
    """Every chunk not already in S3 at its size; the chunk layout (for the line numbers)."""
    uploaded = existing(stack, f"{BATCH.INCOMING}{export.migration_id}/")
    progress = ProgressLine(console)
    layout_: list[Chunk] = []
    rows = sent = 0
    for chunk, body in chunks(export, options.chunk_rows):
        with body:
            key = chunk.key(export)
            if uploaded.get(key) != chunk.size:
                stack.s3.upload_fileobj(
                    body, stack.bucket, key, ExtraArgs={"ContentType": content_type(export.kind)}
                )
                sent += 1
        layout_.append(chunk)
        rows += chunk.lines
        progress.show(rows, len(layout_), 0, None)
    skipped = len(layout_) - sent
    console.print(
        Text(
            f"{len(layout_)} chunks of up to {options.chunk_rows:,} lines: {sent} uploaded"
            + (f", {skipped} already there" if skipped else "")
        )
    )
    return layout_


def content_type(kind: str) -> str:
    return "text/csv" if kind == "csv" else "application/x-ndjson"


def wait(
    export: Export, layout_: list[Chunk], stack: BatchPath, console: Console, options: Options
) -> list[Chunk]:
    """Until each chunk has a report or sits in the dead-letter queue; the failed chunks."""
    prefix = f"{BATCH.INCOMING}{export.migration_id}/"
    progress = ProgressLine(console)
    total_rows = sum(c.lines for c in layout_)
    deadline = time.monotonic() + options.timeout
    retried = options.retry_failed
    while True:
        reports = existing(stack, f"{BATCH.REPORTS}{export.migration_id}/")
        open_ = [c for c in layout_ if c.report_key(export) not in reports]
        failing = dead_letters(stack, prefix, delete=retried) if open_ else set()
        if retried and failing:
            again = [c.key(export) for c in open_ if c.key(export) in failing]
            for key in again:
                retrigger(stack, key, export.kind)
            console.print(Text(f"sent {len(again)} failed chunk(s) again"))
            retried = False
            continue
        retried = False
        failed = [c for c in open_ if c.key(export) in failing]
        decided = len(layout_) - len(open_)
        progress.show(total_rows, len(layout_), decided, len(layout_), force=not open_)
        if len(failed) == len(open_):
            return failed
        if time.monotonic() > deadline:
            raise DeployError(
                f"{len(open_) - len(failed)} of {len(layout_)} chunks not decided after "
                f"{options.timeout:.0f} s; run the same command again to keep waiting"
            )
        time.sleep(options.poll)


def read_object(stack: BatchPath, key: str) -> bytes:
    return bytes(stack.s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read())


def merge(
    export: Export, layout_: list[Chunk], stack: BatchPath, failed: list[Chunk]
) -> MigrationReport:
    """The chunks' reports as one, line numbers in the export's terms, in export order."""
    counts: Counter[str] = Counter()
    problems: list[Problem] = []
    failed_keys = {c.key(export) for c in failed}
    for chunk in layout_:
        if chunk.key(export) in failed_keys:
            continue
        report: ChunkReport = json.loads(read_object(stack, chunk.report_key(export)))
        counts.update(report.get("summary", {}))
        for problem in report.get("problems", []):
            problems.append({**problem, "line": chunk.export_line(problem["line"], export)})
    return {
        "migration": export.migration_id,
        "export": export.path.name,
        "sha256": export.digest,
        "chunks": len(layout_),
        "rows": sum(counts.values()),
        "summary": dict(sorted(counts.items())),
        "problems": problems,
        "failedChunks": [
            {
                "key": c.key(export),
                "lines": f"{c.first_line}-{c.first_line + c.lines - 1}",
            }
            for c in failed
        ],
    }


def store(stack: BatchPath, key: str, report: MigrationReport) -> None:
    with tempfile.TemporaryFile() as body:
        body.write(json.dumps(report, sort_keys=True).encode())
        body.seek(0)
        stack.s3.upload_fileobj(
            body, stack.bucket, key, ExtraArgs={"ContentType": "application/json"}
        )


def print_summary(console: Console, report: MigrationReport) -> None:
    """Rows per decision, every problem row (export line numbers), failed chunks; nothing cut."""
    layout.records(
        console,
        f"Migration {report['migration']}: {report['export']}, {report['rows']:,} rows",
        ("decision", "rows"),
        [(k, f"{v:,}") for k, v in report["summary"].items()],
        numbers=("rows",),
    )
    rows = [
        (str(p["line"]), p.get("loanId", ""), p["decision"], why(p))
        for p in report["problems"]
        if p["decision"] in PROBLEMS
    ]
    if rows:
        layout.records(
            console, "Rows not taken", ("line", "loan", "decision", "why"), rows, prose="why"
        )
    for chunk in report["failedChunks"]:
        console.print(
            Text(
                f"failed chunk {chunk['key']} (export lines {chunk['lines']}): in the dead-letter "
                "queue; fix the cause and run again with --retry-failed",
                style="bold red",
            ),
            soft_wrap=True,
        )


def why(problem: Problem) -> str:
    if problem.get("reasons"):
        return ", ".join(problem["reasons"])
    if problem["decision"] == "CONFLICT":
        return f"loan id already recorded ({problem.get('recorded', '?')}) with different content"
    return "; ".join(f"{e['field']}: {e['message']}" for e in problem.get("errors", []))


def stack_of(target: Target, outputs: dict[str, str]) -> BatchPath:
    return BatchPath(
        s3=target.client("s3"),
        sqs=target.client("sqs"),
        bucket=output(outputs, "LoanDocumentsBucketName"),
        dead_letter_url=output(outputs, "ValidationDeadLetterQueueUrl"),
    )
