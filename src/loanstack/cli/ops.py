"""Commands on a deployed stack: invoke, rotate, logs, migrate."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from loanstack import render as layout
from loanstack.aws.outputs import read_stack
from loanstack.aws.target import again
from loanstack.cli.common import (
    announce,
    connected,
    ctrl_c_ends_it,
    follow_up,
)
from loanstack.errors import Interrupted, UsageError
from loanstack.ops import manifest, verify
from loanstack.ops.invoke import invoke_validation
from loanstack.ops.logs import formatted, log_events, log_group, parse_since
from loanstack.ops.rotate import rotate_secrets


def run_invoke(args: argparse.Namespace, console: Console) -> int:
    raw = read_stdin() if args.payload == "-" else read_payload(args.payload)
    try:
        payload = json.loads(raw.removeprefix("\ufeff"))  # a byte order mark is no JSON
    except (ValueError, RecursionError) as exc:  # RecursionError: nested past Python's limit
        raise UsageError(f"payload is not JSON the function can take: {exc}") from exc
    path = follow_up(args)
    read_stack(path)  # a missing outputs file is reported before anything starts
    with connected(args, console) as target:
        target.outputs_file = path
        announce(target, path)
        result = invoke_validation(target, payload)
    if args.output == "json":
        layout.emit(result)  # the function's reply, its keys as it writes them (camelCase)
    else:
        print(json.dumps(result, indent=2))
    return 0


def read_payload(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"payload {path} is not text (UTF-8 JSON expected)") from exc
    except OSError as exc:
        raise UsageError(f"cannot read payload {path}: {exc.strerror}") from exc


def read_stdin() -> str:
    try:
        return sys.stdin.buffer.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError("payload on standard input is not text (UTF-8 JSON expected)") from exc


def run_rotate(args: argparse.Namespace, console: Console) -> int:
    path = follow_up(args)
    read_stack(path)
    with connected(args, console) as target:
        target.outputs_file = path
        announce(target, path)
        rotated = rotate_secrets(target, console, args.secret)
    if args.output == "json":  # one secret: its versions; both: per secret
        layout.emit(rotated.get(args.secret, rotated))
    return 0


def run_logs(args: argparse.Namespace, console: Console) -> int:
    """The records on stdout (one per line, `--format`); where they come from on stderr.
    `--output json` is `--format json`: a stream has no end to close one document with."""
    since = parse_since(args.since)
    form = "json" if args.output == "json" else args.format
    path = follow_up(args)
    stack = read_stack(path)
    with ctrl_c_ends_it() if args.follow else nullcontext(), connected(args, console) as target:
        target.outputs_file = path
        announce(target, path)
        group = log_group(target, stack, args.function)
        layout.console(stderr=True).print(Text(f"log group {group}"))
        try:
            for event in log_events(target, group, since, args.follow, args.filter):
                print(formatted(event, form), flush=args.follow)
        except KeyboardInterrupt:
            pass  # --follow ends with Ctrl-C, as `aws logs tail --follow` does
    return 0


def run_migrate(args: argparse.Namespace, console: Console) -> int:
    from loanstack.ops import migrate
    from loanstack.ops.export import inspect as inspect_export

    options = migrate.Options(
        chunk_rows=args.chunk_rows, retry_failed=args.retry_failed, timeout=args.timeout
    )
    migrate.check_options(options)
    if args.show < 0:
        raise UsageError("--show must be 0 or more rows")
    export = inspect_export(Path(args.export))  # bad input is refused before anything else
    options.problems_file = problems_path(args, export, options.chunk_rows)
    writable(options.problems_file)  # refused before anything is sent
    path = follow_up(args)
    stack = read_stack(path)
    if args.suffix and not stack.function_name.endswith(f"-{args.suffix}"):
        raise UsageError(
            f"the outputs file is for another stack than suffix {args.suffix}: "
            "run `loanstack deploy` for it first"
        )
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # for `logs --since`
    with connected(args, console) as target:
        target.outputs_file = path
        announce(target, path)
        options.poll = target.poll_seconds
        recorder = manifest.Recorder.start(target, stack, export, options.chunk_rows)
        recorder.chunks = options.seen
        error: BaseException | None = None
        try:
            result = migrate.migrate(export, migrate.stack_of(target, stack), console, options)
            recorder.report = result
            if not (args.no_verify or result["failedChunks"]):  # D8: proven, not assumed
                result["verify"] = verify.after_migrate(target, stack, result, export.path, console)
        except KeyboardInterrupt as exc:
            error = Interrupted(
                "interrupted: chunks already uploaded are still processed; run the same command "
                "again to resume"
            )
            raise error from exc
        except BaseException as exc:
            error = exc
            raise
        finally:  # the manifest is written also when the run fails
            if error is not None:
                failed = manifest.finish_quietly(recorder, error, console)
                if failed is not None and args.manifest:
                    save(Path(args.manifest), failed, console)
        document = manifest.finish_or_fail(recorder, console)
    if args.manifest:
        save(Path(args.manifest), document, console)
    if args.output == "json":
        console.print(Text(f"problem rows: {options.problems_file}"))
        layout.emit(result)
    else:
        logs = f"{again(target, 'logs')} --filter errorMessage --since {started}"
        with options.problems_file.open("rb") as listed:
            where = str(options.problems_file)
            rows = migrate.read_problems(listed)
            migrate.print_summary(console, result, args.show, rows, where, logs)
    reconciled = result.get("verify", {}).get("reconciled", True)
    return 1 if result["failedChunks"] or not reconciled else 0


def problems_path(args: argparse.Namespace, export: Any, chunk_rows: int) -> Path:
    """--problems FILE, else next to --manifest FILE, else migration-<id>.problems.jsonl in the
    current directory: every problem row of the run, as JSON Lines."""
    if args.problems:
        return Path(args.problems)
    if args.manifest:
        return Path(args.manifest).with_suffix(".problems.jsonl")
    export.chunk_rows = chunk_rows
    return Path(f"migration-{export.migration_id}.problems.jsonl")


def writable(path: Path) -> None:
    """The problem file's directory exists and may be written (checked without creating it)."""
    folder = path.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise UsageError(f"cannot write the problem file {path}: no writable directory {folder}")


def save(path: Path, document: Mapping[str, object], console: Console) -> None:
    """The local copy of the manifest (the one in S3 is the record); a failed write is said in
    one line and does not change the run's exit status."""
    try:
        path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    except OSError as exc:
        console.print(Text(f"cannot write manifest {path}: {exc.strerror}", style="bold red"))
