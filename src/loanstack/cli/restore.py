"""`loanstack restore`: the restore drill as a command; the work is in loanstack.ops.restore."""

from __future__ import annotations

import argparse
import datetime
from typing import Any

from rich.console import Console
from rich.text import Text

from loanstack import render as layout
from loanstack.aws.outputs import default_outputs_file, read_record
from loanstack.cli.common import connected, take_record
from loanstack.errors import UsageError
from loanstack.names import stack_name
from loanstack.ops import restore
from loanstack.stack.deploy import parameters_for


def parse_time(text: str) -> datetime.datetime:
    """--to-time as ISO 8601; a time without a zone is UTC (RDS takes UTC)."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(
            f"--to-time {text!r} is not an ISO 8601 time; e.g. 2026-11-30T09:00:00Z"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def run_restore(args: argparse.Namespace, console: Console) -> int:
    parameters_for("dev", args.suffix, {})  # a bad suffix is refused before any call
    if args.switch:
        raise UsageError(
            f"--switch: the template names its cluster aurora-loanprocessing-{args.suffix}, so no "
            "change set can point the stack at a restored cluster; restore without --switch and "
            "follow the Switch-over runbook in docs/audit-and-recovery.md"
        )
    request = restore.Request(
        args.suffix,
        env=args.env,
        to_time=parse_time(args.to_time) if args.to_time else None,
        latest=args.latest,
        snapshot=args.snapshot,
        new_cluster_id=args.new_cluster_id,
        subnet_group=args.db_subnet_group,
        security_groups=list(args.vpc_security_group_id),
        timeout=args.timeout,
    )
    restore.check_request(request)
    record = read_record(stack_name(args.suffix), default_outputs_file())
    if record is not None:  # the stack's region and target, unless given (a destroyed one: none)
        take_record(args, record)
    json_output = getattr(args, "output", "text") == "json"
    shown = layout.console(stderr=True) if json_output else console
    with connected(args, console) as target:
        shown.print(
            Text(f"target: {target.where()}, stack {stack_name(args.suffix)} ({args.env})"),
            soft_wrap=True,
        )
        summary = restore.restore(target, request, shown)
    summary["environment"] = args.env
    if json_output:
        layout.emit(summary)
    else:
        print_summary(console, summary)
    # a drill to the latest time must reconcile with the old cluster; an earlier time need not
    return 1 if request.latest and summary["totalsAgree"] is False else 0


def print_summary(console: Console, summary: dict[str, Any]) -> None:
    restored, old = summary["controlTotals"]["restored"], summary["controlTotals"]["oldCluster"]
    lines = [
        f"restored {summary['restored']['cluster']} (writer {summary['restored']['writer']})",
        f"restore point {summary['restorePoint']}: RPO of this drill {summary['rpoSeconds']} s",
        f"RTO of this drill: {summary['rtoSeconds']} s (start to the restored totals)",
        "loan_decisions on the restored cluster: " + totals_line(restored),
    ]
    if old is not None:
        lines.append("loan_decisions on the old cluster now: " + totals_line(old))
        lines.append("control totals agree" if summary["totalsAgree"] else (
            "control totals DIFFER: rows written after the restore point, or lost before it"
        ))  # fmt: skip
    lines += ["switch-over:", *summary["switchOver"]]
    for line in lines:
        console.print(Text(line), soft_wrap=True)


def totals_line(totals: dict[str, Any]) -> str:
    return (
        f"{totals['rows']:,} rows, loan amounts {totals['loanAmount']}, "
        f"hash total of loan ids {totals['loanIdHashTotal'][:16]}"
    )
