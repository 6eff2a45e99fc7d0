"""`loanstack migrate`: move a whole export through the batch path, resumably, to one report.

The tool never validates a row itself: it cuts the export into chunk files under
`incoming/<migration-id>/`, S3 runs the validation function on each (SPEC D6, up to its reserved
concurrency), and the tool merges the function's per-chunk reports into one
`reports/<migration-id>/migration.report.json`, with every line number moved from the chunk to
the export. The migration id is the export's SHA-256, so running the command again uploads only
what is missing, waits only for what is undecided, and after success prints the same report.

This module runs the command (cut and upload, wait, merge); the AWS calls are in batchpath.py,
the report (merged and streamed: the problem rows go to a file, never to a list) in
migrate_report.py. Memory holds one chunk's rows and one entry per chunk, whatever the export's
size (docs/benchmarks.md, "Memory").
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from botocore.exceptions import ClientError
from rich.console import Console
from rich.text import Text

from loanstack import render as layout
from loanstack.errors import DeployError, UsageError
from loanstack.ops.batchpath import (
    BatchPath,
    content_type,
    dead_letters,
    event_keys,
    existing,
    read_object,
    retrigger,
    stack_of,
    version_of,
)
from loanstack.ops.export import (
    BATCH,
    DEFAULT_CHUNK_ROWS,
    Chunk,
    Export,
    chunks,
    inspect,
)
from loanstack.ops.migrate_report import (
    PROBLEMS,
    SHOWN,
    FailedChunk,
    HeldBack,
    MigrationReport,
    Problem,
    ProblemWriter,
    download,
    merge,
    order_line,
    print_summary,
    problems,
    publish,
    read_problems,
    store,
    upgrade,
    why,
)

# What callers (the CLI, the demo, tests) reach through this module.
__all__ = [
    "BATCH",
    "PROBLEMS",
    "SHOWN",
    "BatchPath",
    "Chunk",
    "Export",
    "FailedChunk",
    "MigrationReport",
    "Options",
    "Path",
    "Problem",
    "chunks",
    "dead_letters",
    "event_keys",
    "existing",
    "inspect",
    "migrate",
    "order_line",
    "print_summary",
    "problems",
    "read_problems",
    "retrigger",
    "stack_of",
    "why",
]

MAX_CHUNK_ROWS = 1_000_000
# upload_fileobj switches to multipart above 8 MiB by default (boto3 TransferConfig); a chunk of
# the default size is a few MiB, a wide one may pass it.
# https://boto3.amazonaws.com/v1/documentation/api/latest/guide/s3.html#multipart-transfers


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


@dataclass
class Options:
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    retry_failed: bool = False
    timeout: float = 3600.0
    poll: float = 0.5
    # Where the full problem list is also written locally (JSON Lines); None: S3 only.
    problems_file: Path | None = None
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
    mid = export.migration_id
    final_key = f"{BATCH.REPORTS}{mid}/migration.report.json"
    console.print(
        Text(
            f"migration {mid}: {export.path} ({export.kind}) to "
            f"s3://{stack.bucket}/{BATCH.INCOMING}{mid}/"
        )
    )
    done = existing(stack, f"{BATCH.REPORTS}{mid}/")
    if final_key in done and not options.retry_failed:
        console.print(Text(f"already migrated: s3://{stack.bucket}/{final_key}"))
        describe(export, stack, options)
        stored = json.loads(read_object(stack, final_key))
        report = upgrade(stored, stack, mid)
        # A report stored before the fields changed gave sha256(format NUL bytes) as "sha256":
        # the id matched, so this is the same file; give its plain digest and size.
        report["sha256"], report["bytes"] = export.sha256, export.size
        if options.problems_file is not None:
            with open_local(options.problems_file) as local:
                download(stack, report, local)
        return report
    held = HeldBack()
    try:
        layout_ = upload(export, stack, console, options, held)
        failed = wait(export, layout_, stack, console, options)
        report = merge_and_publish(export, layout_, stack, failed, held, options)
    finally:
        held.close()
    if not failed:
        store(stack, final_key, report)
    return report


def merge_and_publish(
    export: Export,
    layout_: list[Chunk],
    stack: BatchPath,
    failed: list[Chunk],
    held: HeldBack,
    options: Options,
) -> MigrationReport:
    """merge() with its problem rows streamed to a file: the local one asked for, or a
    temporary one; then to S3 next to the report (also when chunks failed: the rows of the
    chunks that were decided are known)."""
    with spool_for(options.problems_file) as spool:
        report = merge(export, layout_, stack, failed, held, ProblemWriter(spool))
        spool.flush()
        publish(stack, spool.name, report["problemsFile"]["key"])
    return report


def spool_for(path: Path | None) -> IO[bytes]:
    """A named file: S3 reads it by name, part by part, never whole (batchpath.bounded_transfer)."""
    return open_local(path) if path is not None else tempfile.NamedTemporaryFile()


def open_local(path: Path) -> IO[bytes]:
    """The local problem file, opened for writing and reading (one line if it cannot be)."""
    try:
        return path.open("w+b")
    except OSError as exc:
        raise UsageError(f"cannot write the problem file {path}: {exc.strerror}") from exc


def upload(
    export: Export, stack: BatchPath, console: Console, options: Options, held: HeldBack
) -> list[Chunk]:
    """Every chunk not already in S3 at its size; the chunk layout (for the line numbers). Each
    chunk's held-back lines go to `held` as it leaves, so the layout holds no rows."""
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
        held.keep(chunk)
        chunk.version_id = version_of(stack, key)
        options.seen.append(chunk)
        layout_.append(chunk)
        rows += chunk.lines
        progress.show(rows, len(layout_), 0, None)
    skipped = len(layout_) - sent
    console.print(
        Text(
            f"{layout.plural(len(layout_), 'chunk')} of up to {options.chunk_rows:,} lines: "
            f"{sent} uploaded" + (f", {skipped} already there" if skipped else "")
        )
    )
    return layout_


def describe(export: Export, stack: BatchPath, options: Options) -> None:
    """The chunks of a migration already complete, cut again to be hashed (nothing uploaded):
    the manifest of a repeated run lists them too."""
    for chunk, body in chunks(export, options.chunk_rows):
        body.close()
        chunk.duplicates = []  # the stored report has them; the manifest needs only the chunk
        key = chunk.key(export)
        try:
            chunk.version_id = version_of(stack, key)
        except ClientError:
            chunk.version_id = None  # expired or removed since; the manifest says so
        options.seen.append(chunk)


def listed_after(reports: set[str], open_keys: list[str]) -> str | None:
    """The last report key already seen that sorts before every report still awaited: each poll
    lists only what may be new, not every report again (a ListObjects response costs the
    emulator about a millisecond per key, and a 1,000,000-row migration has 100 reports)."""
    if not open_keys:
        return None
    first_open = min(open_keys)
    return max((k for k in reports if k < first_open), default=None)


def wait(
    export: Export, layout_: list[Chunk], stack: BatchPath, console: Console, options: Options
) -> list[Chunk]:
    """Until each chunk has a report or sits in the dead-letter queue; the failed chunks."""
    prefix = f"{BATCH.INCOMING}{export.migration_id}/"
    progress = ProgressLine(console)
    total_rows = sum(c.lines for c in layout_)
    deadline = time.monotonic() + options.timeout
    retried = options.retry_failed
    reports: set[str] = set()
    while True:
        open_keys = [c.report_key(export) for c in layout_ if c.report_key(export) not in reports]
        reports.update(
            existing(
                stack, f"{BATCH.REPORTS}{export.migration_id}/", listed_after(reports, open_keys)
            )
        )
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
