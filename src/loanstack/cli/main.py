"""The `loanstack` command line: one sub-command per job; errors as one line that says what to do.

The parser and the dispatch live here; each command group's handlers live in their own module
(`offline`, `stack`, `ops`, `local`). The exit codes are `loanstack.errors`' table.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import Any

from loanstack import __version__
from loanstack import render as layout
from loanstack.aws.target import EMULATOR_DEFAULT_PORT
from loanstack.cli.common import ENVIRONMENTS, add_output_option, add_stack_options
from loanstack.cli.local import run_demo, run_emulator
from loanstack.cli.offline import run_check, run_cost, run_diagram, run_fmt, run_sync
from loanstack.cli.ops import (
    add_logs_parser,
    add_rotate_options,
    run_invoke,
    run_logs,
    run_migrate,
    run_rotate,
)
from loanstack.cli.reconcile import (
    add_correct_parser,
    add_verify_parser,
    run_correct,
    run_verify,
)
from loanstack.cli.restore import add_restore_parser, run_restore
from loanstack.cli.stack import run_deploy, run_destroy, run_outputs
from loanstack.cli.stackopts import (
    add_deploy_options,
    add_diff_parser,
    add_drift_parser,
    run_diff,
    run_drift,
)
from loanstack.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_PIPE,
    EXIT_TERMINATED,
    EXIT_USAGE,
    Declined,
    DeployError,
    Interrupted,
    Terminated,
    UsageError,
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="loanstack",
        description="Check, deploy, try and tear down the loan processing stack (lib/TapStack.json).",
        epilog=(
            "exit codes: 0 done (or declined: nothing changed), 1 failure, 2 usage, "
            "130 interrupted, 141 stdout closed, 143 terminated (docs/operations.md)"
        ),
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
    add_deploy_options(dep)
    add_output_option(dep)
    add_diff_parser(sub)

    des = sub.add_parser("destroy", help="empty the stack's buckets, delete it, report leftovers")
    add_stack_options(des, suffix_required=True)
    des.add_argument("--yes", action="store_true", help="do not ask for confirmation (dev)")
    des.add_argument(
        "--confirm-stack",
        metavar="NAME",
        help="prod: the stack's name, to delete it without a terminal (--yes is not enough)",
    )
    add_output_option(des)

    out = sub.add_parser(
        "outputs",
        help="print the last deploy's outputs (cfn-outputs/flat-outputs.json), or one stack's",
    )
    out.add_argument(
        "--suffix", help="that stack's record (cfn-outputs/tapstack-<suffix>.json): where, outputs"
    )
    add_output_option(out)

    inv = sub.add_parser("invoke", help="run the deployed validation function on a payload")
    inv.add_argument("function", choices=("validate",))
    inv.add_argument("--payload", required=True, help="JSON file, or - for standard input")
    add_stack_options(inv, suffix_required=False)
    add_output_option(inv)

    rot = sub.add_parser(
        "rotate",
        help="finish or clear an interrupted rotation, then rotate the database secret now and wait for it",
    )
    add_stack_options(rot, suffix_required=False)
    add_output_option(rot)
    add_rotate_options(rot)

    add_logs_parser(sub)

    emu = sub.add_parser("emulator", help="run the embedded AWS emulator for other commands")
    emu.add_argument("action", choices=("start", "status", "stop"))
    emu.add_argument(
        "--port",
        type=int,
        default=EMULATOR_DEFAULT_PORT,
        help=f"loopback port (default {EMULATOR_DEFAULT_PORT}; 0: a free one)",
    )
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
    add_output_option(mig)
    mig.add_argument("--no-verify", action="store_true", help="skip `loanstack verify` at the end")
    mig.add_argument(
        "--manifest",
        metavar="FILE",
        help="also save the run's manifest here (it is always written to S3 under manifests/)",
    )
    mig.add_argument(
        "--problems",
        metavar="FILE",
        help="write every problem row here as JSON Lines (default: next to --manifest FILE, "
        "else migration-<id>.problems.jsonl in the current directory)",
    )
    mig.add_argument(
        "--show", type=int, default=20, help="problem rows printed (default 20; all in the file)"
    )

    sub.add_parser("demo", help="deploy, try, rotate and destroy a dev stack on the emulator")
    add_verify_parser(sub)
    add_restore_parser(sub)
    add_correct_parser(sub)
    add_drift_parser(sub)
    return parser.parse_args(argv)


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
    "verify": run_verify,
    "restore": run_restore,
    "correct": run_correct,
    "demo": run_demo,
    "diff": run_diff,
    "plan": run_diff,
    "drift": run_drift,
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
    except BrokenPipeError:
        return reader_gone()
    except Declined as exc:
        print(f"loanstack: {' '.join(str(exc).split())}", file=sys.stderr)
        return 0
    except Interrupted as exc:
        return fail(exc, EXIT_INTERRUPTED)
    except UsageError as exc:
        return fail(exc, EXIT_USAGE)
    except DeployError as exc:
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


def reader_gone() -> int:
    """stdout's reader went away (`loanstack check | head -1`): stop quietly, as Unix tools do.
    stdout is pointed at /dev/null so the interpreter's last flush cannot fail again
    (https://docs.python.org/3/library/signal.html#note-on-sigpipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_PIPE


def fail(message: object, code: int) -> int:
    text = " ".join(str(message).split())  # one line, whatever the message held
    print(f"loanstack: error: {text}", file=sys.stderr)
    return code
