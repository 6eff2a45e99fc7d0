"""Commands of the local target: the emulator kept running, and the demo on it."""

from __future__ import annotations

import argparse

from rich.console import Console

from loanstack import demo
from loanstack.errors import DeployError


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
        raise DeployError(str(exc)) from exc


def run_demo(args: argparse.Namespace, console: Console) -> int:
    return demo.run(console)
