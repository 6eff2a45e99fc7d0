"""The `loanstack` command line: one sub-command per job; errors as one line that says what to do.

Exit codes (the same for the same kind of error): 0 done (also "no changes" and destroying a
stack that is not there), 1 failure (AWS or the emulator refused, the stack failed, `check` found
an unexplained finding), 2 usage (bad arguments or input files, an action not confirmed), 130
interrupted (Ctrl-C), 143 terminated (SIGTERM). No traceback reaches the user
(`LOANSTACK_DEBUG=1` shows one for an unexpected error).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.prompt import Confirm
from rich.text import Text

from loanstack import __version__, cost, demo, deploy, diagram, embed, template
from loanstack import output as layout
from loanstack.compliance import field_tools, report

ENVIRONMENTS = ("dev", "prod")
EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 130, 143


class UsageError(deploy.UsageError):
    """Bad input from the user: reported as one line, never a traceback (exit 2)."""


class Terminated(BaseException):
    """SIGTERM (CI, `timeout`, `docker stop`): unwinds like Ctrl-C so the emulator is stopped."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="loanstack",
        description="Check, deploy, try and tear down the loan processing stack (lib/TapStack.json).",
        epilog="exit codes: 0 done, 1 failure, 2 usage, 130 interrupted, 143 terminated",
    )
    parser.add_argument("--version", action="version", version=f"loanstack {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    chk = sub.add_parser(
        "check",
        help="judge the template: cfn-lint, checkov, own compliance checks, Control Tower rules",
    )
    chk.add_argument("--env", choices=ENVIRONMENTS, action="append", help="default: both")
    chk.add_argument("--suffix", default="check", help="EnvironmentSuffix to evaluate with")
    chk.add_argument("--sarif", metavar="FILE", help="also write the findings as SARIF 2.1.0")
    add_output_option(chk)

    fmt = sub.add_parser("fmt", help="rewrite lib/TapStack.json in canonical form (2-space JSON)")
    fmt.add_argument("--check", action="store_true", help="exit 1 if the file is not canonical")

    cst = sub.add_parser("cost", help="estimate the monthly bill of one environment")
    cst.add_argument("--env", choices=ENVIRONMENTS, required=True)
    cst.add_argument("--region", default="us-east-1")
    cst.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="parameter override"
    )
    add_output_option(cst)

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
        help="bucket to stage the template in (default: loanstack-templates-<account>-<region>, created on first use)",
    )
    add_output_option(dep)

    des = sub.add_parser("destroy", help="empty the stack's buckets, delete it, report leftovers")
    add_stack_options(des, suffix_required=True)
    des.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    out = sub.add_parser("outputs", help="print cfn-outputs/flat-outputs.json")
    add_output_option(out)

    inv = sub.add_parser("invoke", help="run the deployed validation function on a payload")
    inv.add_argument("function", choices=("validate",))
    inv.add_argument("--payload", required=True, help="JSON file, or - for standard input")
    add_stack_options(inv, suffix_required=False)

    rot = sub.add_parser(
        "rotate",
        help="finish or clear an interrupted rotation, then rotate the database secret now and wait for it",
    )
    add_stack_options(rot, suffix_required=False)
    add_output_option(rot)

    logs = sub.add_parser("logs", help="print (or --follow) a deployed function's log records")
    logs.add_argument("function", nargs="?", choices=tuple(deploy.LOGGED), default="validate")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new records")
    logs.add_argument(
        "--since", default="10m", help="how far back to start: 30s, 10m, 2h, 1d (default 10m)"
    )
    add_stack_options(logs, suffix_required=False)

    emu = sub.add_parser("emulator", help="run the embedded AWS emulator for other commands")
    emu.add_argument("action", choices=("start", "status", "stop"))
    emu.add_argument("--port", type=int, default=0, help="loopback port (default: a free one)")
    emu.add_argument(
        "--detach", action="store_true", help="(start) run in the background and return"
    )

    mig = sub.add_parser(
        "migrate",
        help="move a CSV or JSON Lines export through the validation function, resumably, to one report",
    )
    mig.add_argument("export", help="the export file: .csv (with a header) or .jsonl/.ndjson")
    mig.add_argument(
        "--chunk-rows", type=int, default=10_000, help="lines per chunk file (default 10000)"
    )
    mig.add_argument(
        "--retry-failed", action="store_true", help="send chunks in the dead-letter queue again"
    )
    mig.add_argument(
        "--timeout", type=float, default=3600, help="seconds to wait for the chunks (default 3600)"
    )
    add_stack_options(mig, suffix_required=False)
    mig.add_argument("--suffix", help="EnvironmentSuffix (checked against the outputs file)")
    add_output_option(mig)

    sub.add_parser("demo", help="deploy, try, rotate and destroy a dev stack on the emulator")
    return parser.parse_args(argv)


def add_stack_options(parser: argparse.ArgumentParser, suffix_required: bool) -> None:
    if suffix_required:
        parser.add_argument("--suffix", required=True, help="EnvironmentSuffix, e.g. dev42")
    parser.add_argument("--region", default=default_region())
    parser.add_argument(
        "--target",
        choices=("local", "aws"),
        help=(
            "default: local (the emulator at $LOANSTACK_EMULATOR_URL, or one for this command); "
            "AWS only with --target aws or when confirmed at a terminal"
        ),
    )


def add_output_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help="json: one JSON document on stdout, human text on stderr",
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


@contextmanager
def connected(args: argparse.Namespace, console: Console) -> Iterator[deploy.Target]:
    """The target chosen by the rule in `deploy.choose_target`, its errors as one line, and
    its emulator (when this command started one) stopped on the way out."""
    target = deploy.connect(args.target, args.region, lambda question: ask(console, question))
    try:
        with deploy.aws_errors(target):
            yield target
    finally:
        target.close()


def run_deploy(args: argparse.Namespace, console: Console) -> int:
    params = deploy.parameters_for(args.env, args.suffix, overrides(args.param))
    with connected(args, console) as target:
        warn_if_ephemeral(target, console)
        d = deploy.Deployment(
            target, args.env, args.suffix, params, console, template_bucket=args.template_bucket
        )
        outputs = deploy.deploy(
            d, confirm=lambda: args.yes or ask(console, "Execute this change set?")
        )
        where = {"target": target.name, "account": target.account(), "region": target.region}
    if args.output == "json":
        layout.emit({"stack": d.name, **where, "outputs": outputs})
    else:
        deploy.outputs_table(console, outputs)
    return 0


def run_destroy(args: argparse.Namespace, console: Console) -> int:
    deploy.parameters_for("dev", args.suffix, {})  # a bad suffix is refused before connecting
    name = deploy.stack_name(args.suffix)
    with connected(args, console) as target:
        if deploy.stack_status(target, name) is None:
            console.print(Text(f"no stack {name} in {target.where()}: nothing to destroy"))
            return 0
        if not (args.yes or ask(console, f"Delete stack {name} and its data?")):
            raise UsageError("not confirmed (use --yes)")
        deploy.destroy(target, args.suffix, console)
    return 0


def run_invoke(args: argparse.Namespace, console: Console) -> int:
    raw = read_stdin() if args.payload == "-" else read_payload(args.payload)
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"payload is not JSON: {exc}") from exc
    deploy.read_outputs()  # a missing outputs file is reported before anything starts
    with connected(args, console) as target:
        result = deploy.invoke_validation(target, payload)
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
    deploy.read_outputs()
    with connected(args, console) as target:
        versions = deploy.rotate(target, console)
    if args.output == "json":
        layout.emit(versions)
    return 0


def run_outputs(args: argparse.Namespace, console: Console) -> int:
    outputs = deploy.read_outputs()
    if args.output == "json":
        layout.emit(outputs)
    else:
        deploy.outputs_table(console, outputs)
    return 0


def run_logs(args: argparse.Namespace, console: Console) -> int:
    since = deploy.parse_since(args.since)
    outputs = deploy.read_outputs()
    with connected(args, console) as target:
        group = deploy.log_group(target, outputs, args.function)
        console.print(Text(f"log group {group} ({target.where()})"))
        try:
            for record in deploy.log_records(target, group, since, args.follow):
                console.print(Text(record), soft_wrap=True)
        except KeyboardInterrupt:
            pass  # --follow ends with Ctrl-C, as `aws logs tail --follow` does
    return 0


def run_migrate(args: argparse.Namespace, console: Console) -> int:
    from loanstack import migrate

    options = migrate.Options(
        chunk_rows=args.chunk_rows, retry_failed=args.retry_failed, timeout=args.timeout
    )
    migrate.check_options(options)
    export = migrate.inspect(Path(args.export))  # bad input is refused before anything else
    outputs = deploy.read_outputs()
    if args.suffix and not deploy.output(outputs, "LoanValidationFunctionName").endswith(
        f"-{args.suffix}"
    ):
        raise UsageError(
            f"the outputs file is for another stack than suffix {args.suffix}: "
            "run `loanstack deploy` for it first"
        )
    with connected(args, console) as target:
        options.poll = target.poll_seconds
        try:
            result = migrate.migrate(export, migrate.stack_of(target, outputs), console, options)
        except KeyboardInterrupt as exc:
            raise deploy.Interrupted(
                "interrupted: chunks already uploaded are still processed; run the same command "
                "again to resume"
            ) from exc
    if args.output == "json":
        layout.emit(result)
    else:
        migrate.print_summary(console, result)
    return 1 if result["failedChunks"] else 0


def run_emulator(args: argparse.Namespace, console: Console) -> int:
    from loanstack.emulator import EmulatorError, control

    try:
        if args.action == "status":
            return control.status(console)
        if args.action == "stop":
            return control.stop(console)
        if args.detach:
            return control.start_detached(console, args.port)
        return control.serve(console, args.port)
    except EmulatorError as exc:
        raise deploy.DeployError(str(exc)) from exc


def warn_if_ephemeral(target: deploy.Target, console: Console) -> None:
    if target.emulator is not None:
        console.print(
            "[yellow]note:[/] this emulator lives as long as this command; to keep the stack for "
            f"`invoke`, `rotate` or `destroy`, run `loanstack emulator start` and export "
            f"{deploy.EMULATOR_URL_VARIABLE}"
        )


def ask(console: Console, question: str) -> bool:
    """A yes/no question at a terminal; without one (CI, a pipe) the answer is no."""
    if not sys.stdin.isatty():
        return False
    try:
        return Confirm.ask(Text(question), console=console)
    except EOFError:
        return False


def run_cost(args: argparse.Namespace, console: Console) -> int:
    params = {"EnvironmentSuffix": "estimate", **overrides(args.param), "EnvironmentType": args.env}
    try:
        instance = template.instantiate(
            parameters=params, context=template.Context(region=args.region)
        )
        lines, assumptions = cost.estimate(instance, args.region)
    except (template.ParameterError, FileNotFoundError, KeyError) as exc:
        raise UsageError(str(exc).strip("'\"")) from exc
    ordered = sorted(lines, key=lambda x: -x.monthly)
    total = round(sum(ln.monthly for ln in lines), 2)
    if args.output == "json":
        layout.emit(
            {
                "env": args.env,
                "region": args.region,
                "currency": "USD",
                "monthly_total": total,
                "lines": [
                    {
                        "resource": ln.resource,
                        "item": ln.item,
                        "quantity": ln.quantity,
                        "unit": ln.unit,
                        "unit_price": ln.unit_price,
                        "monthly": round(ln.monthly, 2),
                    }
                    for ln in ordered
                ],
                "assumptions": assumptions,
            }
        )
        return 0
    rows = [
        (
            ln.resource,
            ln.item,
            f"{ln.quantity:,.2f}",
            ln.unit,
            f"{ln.unit_price:g}",
            f"{ln.monthly:,.2f}",
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
    console.print(Text("Assumptions: " + ", ".join(f"{k}={v:g}" for k, v in assumptions.items())))
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
        if not field_tools.checkov_bin().exists():  # before minutes of cfn-lint, not after
            raise field_tools.ToolMissing(f"checkov not found at {field_tools.checkov_bin()}")
        found = list(report.rows(envs, args.suffix))
    except template.ParameterError as exc:
        raise UsageError(str(exc)) from exc
    except field_tools.ToolMissing as exc:
        raise deploy.DeployError(
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
            ("env", "check", "tool", "resource", "result", "reason"),
            [(row.env, row.check, row.tool, row.resource, row.result, row.reason) for row in found],
            prose="reason",
        )
    console.print(f"{failures} failing, {accepted} accepted with a reason")
    return 1 if failures else 0


def write_sarif(path: Path, found: list[report.Row]) -> None:
    try:
        path.write_text(json.dumps(report.sarif(found), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from exc


HANDLERS: dict[str, Any] = {
    "check": run_check,
    "cost": run_cost,
    "diagram": run_diagram,
    "sync": run_sync,
    "fmt": run_fmt,
    "deploy": run_deploy,
    "destroy": run_destroy,
    "outputs": run_outputs,
    "invoke": run_invoke,
    "rotate": run_rotate,
    "logs": run_logs,
    "emulator": run_emulator,
    "migrate": run_migrate,
    "demo": lambda a, c: demo.run(c),
}


def terminate(signum: int, frame: Any) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    json_output = getattr(args, "output", "text") == "json"
    console = layout.console(stderr=json_output)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, terminate) if in_main_thread else None
    try:
        return int(HANDLERS[args.command](args, console))
    except deploy.Interrupted as exc:
        return fail(exc, EXIT_INTERRUPTED)
    except deploy.UsageError as exc:
        return fail(exc, EXIT_USAGE)
    except deploy.DeployError as exc:
        return fail(exc, EXIT_FAILURE)
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_INTERRUPTED)
    except Terminated:
        return fail("terminated (SIGTERM)", EXIT_TERMINATED)
    except Exception as exc:  # the last line of defence: still one line, never a traceback
        if os.environ.get("LOANSTACK_DEBUG"):
            traceback.print_exc()
        return fail(
            f"unexpected {type(exc).__name__}: {exc} (LOANSTACK_DEBUG=1 shows where)",
            EXIT_FAILURE,
        )
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def fail(message: object, code: int) -> int:
    text = " ".join(str(message).split())  # one line, whatever the message held
    print(f"loanstack: error: {text}", file=sys.stderr)
    return code
