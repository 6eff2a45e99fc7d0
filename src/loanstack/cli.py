"""The `loanstack` command line: one sub-command per job, errors as one line and exit code 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from loanstack import __version__, cost, diagram, embed, linters, report, template

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

    cst = sub.add_parser("cost", help="estimate the monthly bill of one environment")
    cst.add_argument("--env", choices=ENVIRONMENTS, required=True)
    cst.add_argument("--region", default="us-east-1")
    cst.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="parameter override"
    )

    dia = sub.add_parser("diagram", help="print the architecture as Mermaid (from the template)")
    dia.add_argument("--write", action="store_true", help="update the diagram block in README.md")

    syn = sub.add_parser("sync", help="embed lib/functions/*/index.py into the template's ZipFile")
    syn.add_argument("--check", action="store_true", help="exit 1 if an embedded copy is stale")
    return parser.parse_args(argv)


def overrides(pairs: list[str]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param takes KEY=VALUE, got {pair!r}")
        found[key] = value
    return found


def run_cost(args: argparse.Namespace, console: Console) -> int:
    params = {"EnvironmentSuffix": "estimate", **overrides(args.param), "EnvironmentType": args.env}
    try:
        instance = template.instantiate(
            parameters=params, context=template.Context(region=args.region)
        )
        lines, assumptions = cost.estimate(instance, args.region)
    except (template.ParameterError, FileNotFoundError, KeyError) as exc:
        raise UsageError(str(exc).strip("'\"")) from exc
    table = Table(
        title=f"Monthly estimate: {args.env} in {args.region} (USD, on-demand list prices)"
    )
    for column, justify in (
        ("resource", "left"),
        ("item", "left"),
        ("quantity", "right"),
        ("unit", "left"),
        ("unit price", "right"),
        ("monthly", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for ln in sorted(lines, key=lambda x: -x.monthly):
        table.add_row(
            ln.resource,
            ln.item,
            f"{ln.quantity:,.2f}",
            ln.unit,
            f"{ln.unit_price:g}",
            f"{ln.monthly:,.2f}",
        )
    total = sum(ln.monthly for ln in lines)
    table.add_row("total", "", "", "", "", f"[bold]{total:,.2f}[/]")
    console.print(table)
    console.print("Assumptions: " + ", ".join(f"{k}={v:g}" for k, v in assumptions.items()))
    console.print(
        "Prices: data/prices-us-east-1.json (sources and review date inside); free tiers ignored."
    )
    return 0


def run_diagram(args: argparse.Namespace, console: Console) -> int:
    doc = template.load()
    if args.write:
        changed = diagram.write_readme(doc)
        console.print("README.md diagram " + ("updated" if changed else "already current"))
    else:
        print(diagram.mermaid(doc), end="")
    return 0


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
        if args.command == "cost":
            return run_cost(args, console)
        if args.command == "diagram":
            return run_diagram(args, console)
        if args.command == "sync":
            return run_sync(args, console)
        if args.command == "fmt":
            return run_fmt(args, console)
    except UsageError as exc:
        print(f"loanstack: error: {exc}", file=sys.stderr)
        return 2
    raise AssertionError(f"unhandled command {args.command}")
