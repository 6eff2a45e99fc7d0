"""The `loanstack` command line: one sub-command per job, errors as one line and exit code 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from loanstack import __version__, embed, linters, report, template

ENVIRONMENTS = ("dev", "prod")


class UsageError(Exception):
    """Bad input from the user: reported as one line, never a traceback."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="loanstack",
        description="Check, deploy, try and tear down the loan processing stack (lib/TapStack.json).",
    )
    parser.add_argument("--version", action="version", version=f"loanstack {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    chk = sub.add_parser(
        "check",
        help="judge the template: cfn-lint, checkov, own compliance checks, Control Tower rules",
    )
    chk.add_argument("--env", choices=ENVIRONMENTS, action="append", help="default: both")
    chk.add_argument("--suffix", default="check", help="EnvironmentSuffix to evaluate with")

    fmt = sub.add_parser("fmt", help="rewrite lib/TapStack.json in canonical form (2-space JSON)")
    fmt.add_argument("--check", action="store_true", help="exit 1 if the file is not canonical")

    syn = sub.add_parser("sync", help="embed lib/functions/*/index.py into the template's ZipFile")
    syn.add_argument("--check", action="store_true", help="exit 1 if an embedded copy is stale")
    return parser.parse_args(argv)


def run_sync(args: argparse.Namespace, console: Console) -> int:
    doc = template.load()
    if args.check:
        stale = embed.stale(doc)
        for logical_id in stale:
            console.print(f"[red]{logical_id}: embedded code differs from its source[/]")
        if stale:
            console.print("run: loanstack sync")
        return 1 if stale else 0
    changed = embed.sync(doc)
    if changed:
        template.TEMPLATE_PATH.write_text(template.canonical(doc), encoding="utf-8")
    console.print(f"embedded: {', '.join(changed) if changed else 'nothing changed'}")
    return 0


def run_fmt(args: argparse.Namespace, console: Console) -> int:
    path = template.TEMPLATE_PATH
    text = path.read_text(encoding="utf-8")
    wanted = template.canonical(template.load(path))
    if text == wanted:
        console.print(f"{path.name} is canonical")
        return 0
    if args.check:
        console.print(f"[red]{path.name} is not canonical: run loanstack fmt[/]")
        return 1
    path.write_text(wanted, encoding="utf-8")
    console.print(f"rewrote {path.name}")
    return 0


def run_check(args: argparse.Namespace, console: Console) -> int:
    envs = tuple(args.env or ENVIRONMENTS)
    try:
        template.parameter_values(template.load(), {"EnvironmentSuffix": args.suffix})
        found = list(report.rows(envs, args.suffix))
    except template.ParameterError as exc:
        raise UsageError(str(exc)) from exc
    except linters.ToolMissing as exc:
        raise UsageError(str(exc)) from exc
    table = Table(title="loanstack check: lib/TapStack.json", show_lines=False)
    for column in ("env", "check", "tool", "resource", "result", "reason"):
        table.add_column(column, overflow="fold")
    style = {"pass": "green", "accepted": "yellow", "FAIL": "bold red"}
    for row in found:
        result = f"[{style[row.result]}]{row.result}[/]"
        table.add_row(row.env, row.check, row.tool, row.resource, result, row.reason)
    console.print(table)
    failures = sum(row.result == "FAIL" for row in found)
    console.print(
        f"{failures} failing, {sum(r.result == 'accepted' for r in found)} accepted with a reason"
    )
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    try:
        if args.command == "check":
            return run_check(args, console)
        if args.command == "sync":
            return run_sync(args, console)
        if args.command == "fmt":
            return run_fmt(args, console)
    except UsageError as exc:
        print(f"loanstack: error: {exc}", file=sys.stderr)
        return 2
    raise AssertionError(f"unhandled command {args.command}")
