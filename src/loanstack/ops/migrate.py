"""`loanstack migrate`: move a whole export through the batch path, resumably, to one report.

The tool never validates a row itself: it cuts the export into chunk files under
`incoming/<migration-id>/`, S3 runs the validation function on each (SPEC D6, up to its reserved
concurrency), and the tool merges the function's per-chunk reports into one
`reports/<migration-id>/migration.report.json`, with every line number moved from the chunk to
the export. The migration id is the export's SHA-256, so running the command again uploads only
what is missing, waits only for what is undecided, and after success prints the same report.
"""

from __future__ import annotations

import heapq
import json
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, cast

from botocore.exceptions import ClientError
from rich.console import Console
from rich.text import Text

from loanstack import render as layout
from loanstack.aws.outputs import output
from loanstack.aws.target import Target
from loanstack.errors import DeployError, UsageError
from loanstack.ops.export import (
    BATCH,
    DEFAULT_CHUNK_ROWS,
    Chunk,
    Export,
    chunks,
    inspect,
)

MAX_CHUNK_ROWS = 1_000_000
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
    problems: list[Problem]
    failedChunks: list[FailedChunk]
    sortedByLoanId: bool  # the export's loan ids in the primary key's order (export.IdOrder)
    firstUnsortedLine: int  # when not: the export's first line out of order
    verify: dict[str, Any]


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


# --- second pass: chunks ----------------------------------------------------------------------


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


def dead_letters(stack: BatchPath, prefix: str, delete: bool = False) -> dict[str, str]:
    """Keys under `prefix` whose S3 event sits in the dead-letter queue, each with the error
    Lambda gave it (the message attribute ErrorMessage:
    https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html).

    Messages are received with a short visibility timeout and, unless `delete`, made visible
    again at once: the queue stays as it was for the alarm and for whoever reads it next.
    """
    keys: dict[str, str] = {}
    handles: list[tuple[str, bool]] = []
    for _ in range(1000):  # the queue is small; this only bounds a runaway loop
        reply = stack.sqs.receive_message(
            QueueUrl=stack.dead_letter_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=30,
            MessageAttributeNames=["ErrorMessage"],
        )
        messages = reply.get("Messages", [])
        if not messages:
            break
        for message in messages:
            ours = [k for k in event_keys(message.get("Body", "")) if k.startswith(prefix)]
            error = message.get("MessageAttributes", {}).get("ErrorMessage", {})
            keys.update(dict.fromkeys(ours, str(error.get("StringValue", ""))))
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
    # Every chunk this run cut, appended as it is in S3 (its SHA-256 and VersionId): the
    # manifest's list, complete up to where a failing run stopped.
    seen: list[Chunk] = field(default_factory=list)


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
    try:
        return migrate_export(export, stack, console, options)
    finally:
        if export.handle is not None:
            export.handle.close()


def migrate_export(
    export: Export, stack: BatchPath, console: Console, options: Options
) -> MigrationReport:
    """migrate() once the export is open: the handle it was hashed through is closed after."""
    export.chunk_rows = options.chunk_rows
    options.seen.clear()
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
        describe(export, stack, options)
        stored = cast(MigrationReport, json.loads(read_object(stack, final_key)))
        # A report stored before the fields changed gave sha256(format NUL bytes) as "sha256":
        # the id matched, so this is the same file; give its plain digest and size.
        stored["sha256"], stored["bytes"] = export.sha256, export.size
        return stored
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
        chunk.version_id = version_of(stack, key)
        options.seen.append(chunk)
        layout_.append(chunk)
        rows += chunk.lines
        progress.show(rows, len(layout_), 0, None)
    skipped = len(layout_) - sent
    console.print(
        Text(
            f"{layout.plural(len(layout_), 'chunk')} of up to {options.chunk_rows:,} lines: {sent} uploaded"
            + (f", {skipped} already there" if skipped else "")
        )
    )
    return layout_


def version_of(stack: BatchPath, key: str) -> str | None:
    """The object's current VersionId (None where the bucket is not versioned)."""
    found = stack.s3.head_object(Bucket=stack.bucket, Key=key).get("VersionId")
    return None if found in (None, "null") else str(found)


def describe(export: Export, stack: BatchPath, options: Options) -> None:
    """The chunks of a migration already complete, cut again to be hashed (nothing uploaded):
    the manifest of a repeated run lists them too."""
    for chunk, body in chunks(export, options.chunk_rows):
        body.close()
        key = chunk.key(export)
        try:
            chunk.version_id = version_of(stack, key)
        except ClientError:
            chunk.version_id = None  # expired or removed since; the manifest says so
        options.seen.append(chunk)


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
        failing = dead_letters(stack, prefix, delete=retried) if open_ else {}
        if retried and failing:
            again = [c.key(export) for c in open_ if c.key(export) in failing]
            for key in again:
                retrigger(stack, key, export.kind)
            console.print(Text(f"sent {layout.plural(len(again), 'failed chunk')} again"))
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
    errors = dead_letters(stack, f"{BATCH.INCOMING}{export.migration_id}/") if failed else {}
    for chunk in layout_:
        if chunk.key(export) in failed_keys:
            continue
        report: ChunkReport = json.loads(read_object(stack, chunk.report_key(export)))
        counts.update(report.get("summary", {}))
        counts.update(d["decision"] for d in chunk.duplicates)
        found = (
            cast(Problem, {**p, "line": chunk.export_line(p["line"], export)})
            for p in report.get("problems", [])
        )
        duplicates = cast(list[Problem], chunk.duplicates)
        problems.extend(heapq.merge(found, duplicates, key=lambda p: int(p["line"])))
    merged: MigrationReport = {
        "migration": export.migration_id,
        "export": export.path.name,
        "sha256": export.sha256,
        "bytes": export.size,
        "chunks": len(layout_),
        "rows": sum(counts.values()),
        "summary": dict(sorted(counts.items())),
        "problems": problems,
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


def store(stack: BatchPath, key: str, report: MigrationReport) -> None:
    with tempfile.TemporaryFile() as body:
        body.write(json.dumps(report, sort_keys=True).encode())
        body.seek(0)
        stack.s3.upload_fileobj(
            body, stack.bucket, key, ExtraArgs={"ContentType": "application/json"}
        )


def print_summary(console: Console, report: MigrationReport, logs: str = "loanstack logs") -> None:
    """Rows per decision, every problem row (export line numbers), failed chunks with their
    error and `logs`, the command that shows the function's records; nothing cut."""
    layout.records(
        console,
        f"Migration {report['migration']}: {report['export']}, {report['rows']:,} rows",
        ("decision", "rows"),
        [(k, f"{v:,}") for k, v in report["summary"].items()],
        numbers=("rows",),
    )
    console.print(Text(order_line(report)), soft_wrap=True)
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


def stack_of(target: Target, outputs: dict[str, str]) -> BatchPath:
    return BatchPath(
        s3=target.client("s3"),
        sqs=target.client("sqs"),
        bucket=output(outputs, "LoanDocumentsBucketName"),
        dead_letter_url=output(outputs, "ValidationDeadLetterQueueUrl"),
    )
