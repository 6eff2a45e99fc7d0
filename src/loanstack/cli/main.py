"""The `loanstack` command line: one sub-command per job; errors as one line that says what to do.

The dispatch lives here, the parser in `parser`; each command group's handlers live in their own
module (`offline`, `stack`, `ops`, `local`, ...), imported when their command runs: `--help` and a
usage error never import boto3, rich or the judges. The exit codes are `loanstack.errors`' table.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from loanstack.cli.parser import parse_args
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

# command -> (module of loanstack.cli, handler): imported when the command runs
HANDLERS: dict[str, tuple[str, str]] = {
    "check": ("offline", "run_check"),
    "cost": ("offline", "run_cost"),
    "diagram": ("offline", "run_diagram"),
    "sync": ("offline", "run_sync"),
    "fmt": ("offline", "run_fmt"),
    "deploy": ("stack", "run_deploy"),
    "destroy": ("stack", "run_destroy"),
    "outputs": ("stack", "run_outputs"),
    "invoke": ("ops", "run_invoke"),
    "rotate": ("ops", "run_rotate"),
    "logs": ("ops", "run_logs"),
    "emulator": ("local", "run_emulator"),
    "migrate": ("ops", "run_migrate"),
    "verify": ("reconcile", "run_verify"),
    "restore": ("restore", "run_restore"),
    "correct": ("reconcile", "run_correct"),
    "demo": ("local", "run_demo"),
    "diff": ("stackopts", "run_diff"),
    "plan": ("stackopts", "run_diff"),
    "drift": ("stackopts", "run_drift"),
}


def handler(command: str) -> Callable[..., int]:
    module, name = HANDLERS[command]
    found: Callable[..., int] = getattr(importlib.import_module(f"loanstack.cli.{module}"), name)
    return found


def terminate(signum: int, frame: Any) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from loanstack import render as layout  # rich: only once a command runs

    json_output = getattr(args, "output", "text") == "json"
    console = layout.console(stderr=json_output)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, terminate) if in_main_thread else None
    try:
        return int(handler(args.command)(args, console))
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
