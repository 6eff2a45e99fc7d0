"""Commands of the local target: the emulator kept running, and the demo on it."""

from __future__ import annotations

import argparse

from rich.console import Console

from loanstack import demo
from loanstack.aws.target import local_door


def run_emulator(args: argparse.Namespace, console: Console) -> int:
    door = local_door()
    return int(door.command(args.action, console, args.port, args.detach))


def run_demo(args: argparse.Namespace, console: Console) -> int:
    return demo.run(console)
