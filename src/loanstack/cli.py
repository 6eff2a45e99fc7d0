"""The `loanstack` command line: one sub-command per job, errors as one line and exit code 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.prompt import Confirm
from rich.table import Table

from loanstack import __version__, cost, demo, deploy, diagram, embed, linters, report, template

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

    dep = sub.add_parser("deploy", help="create or update the stack through a change set")
    dep.add_argument("--env", choices=ENVIRONMENTS, required=True)
    add_stack_options(dep, suffix_required=True)
    dep.add_argument("--yes", action="store_true", help="execute the change set without asking")
    dep.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="parameter override"
    )
    dep.add_argument(
        "--template-bucket",
        help="(aws) bucket to stage the template in when it exceeds the 51,200-byte body limit",
    )

    des = sub.add_parser("destroy", help="empty the stack's buckets, delete it, report leftovers")
    add_stack_options(des, suffix_required=True)
    des.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    sub.add_parser("outputs", help="print cfn-outputs/flat-outputs.json as a table")

    inv = sub.add_parser("invoke", help="run the deployed validation function on a payload")
    inv.add_argument("function", choices=("validate",))
    inv.add_argument("--payload", required=True, help="JSON file, or - for standard input")
    add_stack_options(inv, suffix_required=False)

    rot = sub.add_parser(
        "rotate",
        help="finish or clear an interrupted rotation, then rotate the database secret now and wait for it",
    )
    add_stack_options(rot, suffix_required=False)

    emu = sub.add_parser("emulator", help="run the embedded AWS emulator for other commands")
    emu.add_argument("action", choices=("start",))

    sub.add_parser("demo", help="deploy, try, rotate and destroy a dev stack on the emulator")
    return parser.parse_args(argv)


def add_stack_options(parser: argparse.ArgumentParser, suffix_required: bool) -> None:
    if suffix_required:
        parser.add_argument("--suffix", required=True, help="EnvironmentSuffix, e.g. dev42")
    parser.add_argument("--region", default=default_region())
    parser.add_argument(
        "--target",
        choices=("local", "aws"),
        help="default: aws when AWS credentials are configured, else the local emulator",
    )


def default_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def overrides(pairs: list[str]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param takes KEY=VALUE, got {pair!r}")
        found[key] = value
    return found


def run_deploy(args: argparse.Namespace, console: Console) -> int:
    params = deploy.parameters_for(args.env, args.suffix, overrides(args.param))
    target = deploy.connect(args.target, args.region)
    try:
        warn_if_ephemeral(target, console)
        d = deploy.Deployment(
            target, args.env, args.suffix, params, console, template_bucket=args.template_bucket
        )
        outputs = deploy.deploy(
            d, confirm=lambda: args.yes or ask(console, "Execute this change set?")
        )
    finally:
        target.close()
    deploy.outputs_table(console, outputs)
    return 0


def run_destroy(args: argparse.Namespace, console: Console) -> int:
    deploy.parameters_for("dev", args.suffix, {})  # a bad suffix is refused before connecting
    if not (
        args.yes or ask(console, f"Delete stack {deploy.stack_name(args.suffix)} and its data?")
    ):
        raise UsageError("not confirmed (use --yes)")
    target = deploy.connect(args.target, args.region)
    try:
        deploy.destroy(target, args.suffix, console)
    finally:
        target.close()
    return 0


def run_invoke(args: argparse.Namespace, console: Console) -> int:
    raw = sys.stdin.read() if args.payload == "-" else read_payload(args.payload)
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"payload is not JSON: {exc}") from exc
    deploy.read_outputs()  # a missing outputs file is reported before anything starts
    target = deploy.connect(args.target, args.region)
    try:
        result = deploy.invoke_validation(target, payload)
    finally:
        target.close()
    print(json.dumps(result, indent=2))
    return 0


def read_payload(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read payload {path}: {exc.strerror}") from exc


def run_rotate(args: argparse.Namespace, console: Console) -> int:
    deploy.read_outputs()
    target = deploy.connect(args.target, args.region)
    try:
        deploy.rotate(target, console)
    finally:
        target.close()
    return 0


def run_outputs(args: argparse.Namespace, console: Console) -> int:
    deploy.outputs_table(console, deploy.read_outputs())
    return 0


def run_emulator(args: argparse.Namespace, console: Console) -> int:
    from loanstack.emulator import Emulator, EmulatorError

    try:
        emulator = Emulator().start()
    except EmulatorError as exc:
        raise UsageError(str(exc)) from exc
    console.print(f"emulator listening on {emulator.url}; in another shell:")
    console.print(f"  export {deploy.EMULATOR_URL_VARIABLE}={emulator.url}")
    console.print("Ctrl-C stops it (and forgets every stack).")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


def warn_if_ephemeral(target: deploy.Target, console: Console) -> None:
    if target.emulator is not None:
        console.print(
            "[yellow]note:[/] this emulator lives as long as this command; to keep the stack for "
            f"`invoke`, `rotate` or `destroy`, run `loanstack emulator start` and export "
            f"{deploy.EMULATOR_URL_VARIABLE}"
        )


def ask(console: Console, question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    return Confirm.ask(question, console=console)


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
        handler = {
            "deploy": run_deploy,
            "destroy": run_destroy,
            "outputs": run_outputs,
            "invoke": run_invoke,
            "rotate": run_rotate,
            "emulator": run_emulator,
            "demo": lambda a, c: demo.run(c),
        }[args.command]
        return int(handler(args, console))
    except deploy.DeployError as exc:
        print(f"loanstack: error: {exc}", file=sys.stderr)
        return 1
    except UsageError as exc:
        print(f"loanstack: error: {exc}", file=sys.stderr)
        return 2
