"""What the command groups share: parameter overrides, the connected target, yes/no questions."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.prompt import Confirm
from rich.text import Text

from loanstack.aws.errors import aws_errors
from loanstack.aws.target import EMULATOR_URL_VARIABLE, Target, connect
from loanstack.errors import UsageError

ENVIRONMENTS = ("dev", "prod")


def overrides(pairs: list[str]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param takes KEY=VALUE, got {pair!r}")
        found[key] = value
    return found


@contextmanager
def connected(args: argparse.Namespace, console: Console) -> Iterator[Target]:
    """The target chosen by the rule in `choose_target`, its errors as one line, and
    its emulator (when this command started one) stopped on the way out."""
    target = connect(args.target, args.region, lambda question: ask(console, question))
    try:
        with aws_errors(target):
            yield target
    finally:
        target.close()


def warn_if_ephemeral(target: Target, console: Console) -> None:
    if target.ephemeral:
        console.print(
            "[yellow]note:[/] this emulator lives as long as this command; to keep the stack for "
            f"`invoke`, `rotate` or `destroy`, run `loanstack emulator start` and export "
            f"{EMULATOR_URL_VARIABLE}"
        )


def ask(console: Console, question: str) -> bool:
    """A yes/no question at a terminal; without one (CI, a pipe) the answer is no."""
    if not sys.stdin.isatty():
        return False
    try:
        return Confirm.ask(Text(question), console=console)
    except EOFError:
        return False


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
