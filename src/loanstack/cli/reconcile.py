"""`loanstack verify` and `loanstack correct`: the reconciliation (D8) and the explicit
correction of a recorded decision, as commands; the work is in loanstack.ops.verify/correct."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.text import Text

from loanstack import render as layout
from loanstack.aws.outputs import read_stack
from loanstack.cli.common import (
    announce,
    connected,
    follow_up,
)
from loanstack.cli.ops import read_payload
from loanstack.errors import UsageError
from loanstack.ops import manifest_check
from loanstack.ops.correct import check_who_and_why, correct
from loanstack.ops.verify import (
    Database,
    check,
    export_kind,
    function_environment,
    print_result,
    thresholds,
)


def run_verify(args: argparse.Namespace, console: Console) -> int:
    path = Path(args.export)
    export_kind(path)
    if not path.is_file():
        raise UsageError(f"cannot read export {path}: no such file")
    document = manifest_check.read(Path(args.manifest)) if getattr(args, "manifest", None) else None
    record = follow_up(args)
    stack = read_stack(record)
    report = Path(args.report) if args.report else None
    with connected(args, console) as target:
        target.outputs_file = record
        announce(target, record)
        result = check(target, stack, path, report)
    summary = result.summary()
    disagreements = manifest_check.check(document, result) if document is not None else []
    if document is not None:
        summary["manifest"] = {
            "migration": document.get("migration"),
            "agrees": not disagreements,
            "disagreements": disagreements,
        }
    if getattr(args, "output", "text") == "json":
        layout.emit(summary)
    else:
        print_result(console, result)
        if document is not None:
            for line in disagreements:
                console.print(Text(f"manifest: {line}", style="bold red"), soft_wrap=True)
            if not disagreements:
                console.print(
                    Text(
                        f"manifest of migration {document.get('migration')} agrees with the "
                        "export and the database",
                        style="bold green",
                    )
                )
    return 0 if result.reconciled and not disagreements else 1


def run_correct(args: argparse.Namespace, console: Console) -> int:
    check_who_and_why(args.by, args.reason)
    app = read_payload(args.application)
    try:
        application = json.loads(app.removeprefix("\ufeff"))
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"{Path(args.application).name} is not JSON: {exc}") from exc
    path = follow_up(args)
    stack = read_stack(path)
    with connected(args, console) as target:
        target.outputs_file = path
        announce(target, path)
        database = Database(target.client("rds-data"), stack.cluster_arn, stack.master_secret_arn)
        limits = thresholds(function_environment(target, stack))
        result = correct(database, application, args.by, args.reason, limits)
        if result["supersedes"] is not None:  # the document the function keeps, as it writes it
            decided = {k: v for k, v in result.items() if k != "supersedes"}
            target.client("s3").put_object(
                Bucket=stack.bucket,
                Key=f"validations/{result['loanId']}.json",
                Body=json.dumps(decided, sort_keys=True).encode(),
                ContentType="application/json",
            )
    if getattr(args, "output", "text") == "json":
        layout.emit(result)
    elif result["supersedes"] is None:
        console.print(Text(f"loan {result['loanId']}: this application is what is recorded"))
    else:
        console.print(
            Text(
                f"loan {result['loanId']}: now {result['decision']}; the earlier decision is in "
                "loan_decision_history"
            )
        )
    return 0
