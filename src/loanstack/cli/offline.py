"""Commands on the template file alone, no target: check, fmt, cost, diagram, sync."""

from __future__ import annotations

import argparse
import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from rich.console import Console
from rich.text import Text

from loanstack import cost, diagram, embed, template
from loanstack import render as layout
from loanstack.cli.common import overrides
from loanstack.cli.parser import ENVIRONMENTS
from loanstack.compliance import field_tools, report
from loanstack.errors import DeployError, UsageError
from loanstack.names import ENVIRONMENT_SUFFIX, ENVIRONMENT_TYPE


def run_check(args: argparse.Namespace, console: Console) -> int:
    envs = tuple(args.env or ENVIRONMENTS)
    try:
        template.parameter_values(template.load(), {ENVIRONMENT_SUFFIX: args.suffix})
        if not field_tools.checkov_bin().exists():  # before minutes of cfn-lint, not after
            raise field_tools.ToolMissing(f"checkov not found at {field_tools.checkov_bin()}")
        found = list(report.rows(envs, args.suffix))
    except template.ParameterError as exc:
        raise UsageError(str(exc)) from exc
    except field_tools.ToolMissing as exc:
        raise DeployError(
            f"{exc}; `make check` installs what `loanstack check` needs and runs it"
        ) from exc
    failures = sum(row.result == "FAIL" for row in found)
    accepted = sum(row.result == "accepted" for row in found)
    if args.sarif:
        write_sarif(Path(args.sarif), found)
    if args.output == "json":
        layout.emit(
            {
                "failing": failures,
                "accepted": accepted,
                "findings": [report.as_dict(row) for row in found],
            }
        )
    else:
        layout.records(
            console,
            "loanstack check: lib/TapStack.json",
            ("env", "check", "req", "tool", "resource", "where", "result", "reason"),
            [
                (
                    row.env,
                    row.check,
                    row.requirement,
                    row.tool,
                    row.resource,
                    report.where(row),
                    row.result,
                    row.reason,
                )
                for row in found
            ],
            prose="reason",
        )
    console.print(f"{failures} failing, {accepted} accepted with a reason")
    return 1 if failures else 0


def write_sarif(path: Path, found: list[report.Row]) -> None:
    try:
        path.write_text(json.dumps(report.sarif(found), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from exc


def run_cost(args: argparse.Namespace, console: Console) -> int:
    given = overrides(args.param)
    params = template.judged_parameters(
        args.env, given.pop(ENVIRONMENT_SUFFIX, "estimate"), **given
    )
    params[ENVIRONMENT_TYPE] = args.env
    try:
        env = template.instantiate(parameters=params, context=template.Context(region=args.region))
        lines, assumptions = cost.estimate(env, args.region)
    except (template.ParameterError, FileNotFoundError, KeyError) as exc:
        raise UsageError(str(exc).strip("'\"")) from exc
    ordered = sorted(lines, key=lambda x: -x.monthly)
    total = sum((cents(ln.monthly) for ln in lines), Decimal(0))
    if args.output == "json":
        layout.emit(
            {
                "env": args.env,
                "region": args.region,
                "currency": "USD",
                "monthlyTotal": total,
                "lines": [
                    {
                        "resource": ln.resource,
                        "item": ln.item,
                        "quantity": Decimal(str(ln.quantity)),
                        "unit": ln.unit,
                        "unitPrice": Decimal(str(ln.unit_price)),
                        "monthly": cents(ln.monthly),
                    }
                    for ln in ordered
                ],
                "assumptions": {layout.camel(k): Decimal(str(v)) for k, v in assumptions.items()},
                "priceFile": cost.price_file(args.region),
            }
        )
        return 0
    rows = [
        (
            ln.resource,
            ln.item,
            f"{ln.quantity:,.2f}",
            ln.unit,
            layout.plain(ln.unit_price),
            f"{cents(ln.monthly):,.2f}",
        )
        for ln in ordered
    ]
    rows.append(("total", "", "", "", "", f"{total:,.2f}"))
    layout.records(
        console,
        f"Monthly estimate: {args.env} in {args.region} (USD, on-demand list prices)",
        ("resource", "item", "quantity", "unit", "unit price", "monthly"),
        rows,
        prose="item",
        numbers=("quantity", "unit price", "monthly"),
    )
    shown = ", ".join(f"{k}={layout.plain(v)}" for k, v in assumptions.items())
    console.print(Text("Assumptions: " + shown))
    console.print(
        f"Prices: {cost.price_file(args.region)} (sources and review date inside); "
        "free tiers ignored."
    )
    return 0


def cents(amount: float) -> Decimal:
    """A monthly amount in dollars and cents, rounded half up as a bill is."""
    return Decimal(str(amount)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


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
