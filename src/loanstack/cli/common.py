"""What the command groups share: parameter overrides, the connected target, yes/no questions."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.prompt import Confirm, Prompt
from rich.text import Text

from loanstack import render as layout
from loanstack.aws.errors import aws_errors
from loanstack.aws.outputs import (
    StackRecord,
    default_outputs_file,
    last_record,
    read_record,
    record_file,
    shown,
)
from loanstack.aws.target import EMULATOR_URL_VARIABLE, Target, connect
from loanstack.errors import Declined, DeployError, UsageError
from loanstack.names import stack_name
from loanstack.stack.deploy import parameters_for


def overrides(pairs: list[str], option: str = "--param") -> dict[str, str]:
    """KEY=VALUE pairs; a key given twice is refused (which one would win is a guess)."""
    found: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} takes KEY=VALUE, got {pair!r}")
        if key in found:
            raise UsageError(
                f"{option} {key} given twice ({found[key]!r}, {value!r}): give it once"
            )
        found[key] = value
    return found


@contextmanager
def connected(args: argparse.Namespace, console: Console) -> Iterator[Target]:
    """The target chosen by the rule in `choose_target`, its errors as one line, and
    its emulator (when this command started one) stopped on the way out."""
    target = connect(
        args.target,
        args.region,
        lambda question: ask_or_decline(console, question),
        getattr(args, "profile", None),
    )
    try:
        with aws_errors(target):
            yield target
    finally:
        target.close()


@contextmanager
def ctrl_c_ends_it() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt inside, also in a process that inherited SIGINT ignored:
    a command whose only end is Ctrl-C (`logs --follow`) must not run forever. A shell runs a
    script's background job (`loanstack logs --follow &`) with SIGINT ignored (POSIX, "Signals
    and Error Handling":
    https://pubs.opengroup.org/onlinepubs/9699919799/utilities/V3_chap02.html#tag_18_11), and
    Python then installs no handler of its own
    (https://docs.python.org/3/library/signal.html#general-rules); so Ctrl-C, or `kill -INT`,
    did nothing. The disposition of before is put back on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; in-process callers on others keep theirs
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous is not None:  # None: a handler set outside Python, which cannot be put back
            signal.signal(signal.SIGINT, previous)


def warn_if_ephemeral(target: Target, console: Console) -> None:
    if target.ephemeral:
        console.print(
            "[yellow]note:[/] this emulator lives as long as this command; to keep the stack for "
            "`invoke`, `rotate` or `destroy`, run `loanstack emulator start --detach` first "
            f"(later commands find it; {EMULATOR_URL_VARIABLE} picks another)"
        )


def ask(console: Console, question: str) -> bool:
    """A yes/no question at a terminal; without one (CI, a pipe) the answer is no."""
    if not sys.stdin.isatty():
        return False
    try:
        return Confirm.ask(Text(question), console=console)
    except EOFError:
        return False


def ask_or_decline(console: Console, question: str) -> bool:
    """`ask`, where a "no" typed at a terminal is the user's choice, not an error: `Declined`
    (exit 0, nothing changed). Without a terminal the answer is False, for the caller to refuse
    with what to pass instead (exit 2)."""
    if ask(console, question):
        return True
    if sys.stdin.isatty():
        raise Declined("nothing changed (answered no)")
    return False


def type_name(console: Console, question: str) -> str:
    """A typed answer at a terminal; without one (CI, a pipe) the empty string."""
    if not sys.stdin.isatty():
        return ""
    try:
        return str(Prompt.ask(Text(question), console=console)).strip()
    except EOFError:
        return ""


def follow_up(args: argparse.Namespace) -> Path:
    """The deployed stack a follow-up command acts on (D9): the one `--suffix` names, else the
    last deployed; its record's region, target and profile fill in what the flags leave out.
    Returns the outputs file to read (the stack's own, or the flat one a record predates)."""
    flat = default_outputs_file()
    if args.suffix:
        parameters_for("dev", args.suffix, {})  # a bad suffix is refused before any path
        name = stack_name(args.suffix)
        record = read_record(name, flat)
        if record is None:
            raise DeployError(
                f"no outputs recorded for stack {name} in {shown(flat.parent)}: deploy it with "
                f"`loanstack deploy --suffix {args.suffix}` from here first"
            )
    else:
        record = last_record(flat)
        if record is None:
            return flat
    take_record(args, record)
    return record_file(record.stack, flat)


def take_record(args: argparse.Namespace, record: StackRecord) -> None:
    """Region, target and profile from the record unless given; a different region or target
    is refused: the recorded outputs are not that stack's."""
    for option, recorded in (("region", record.region), ("target", record.target)):
        given = getattr(args, option, None)
        if given and given != recorded:
            raise UsageError(
                f"stack {record.stack} is recorded in {record.target} region {record.region}, "
                f"not --{option} {given}: deploy it there first, or drop --{option}"
            )
        setattr(args, option, recorded)
    if not getattr(args, "profile", None):
        args.profile = record.profile


def announce(target: Target, path: Path) -> None:
    """Where a follow-up command acts, on stderr (stdout stays the command's data)."""
    stack = path.stem if path != default_outputs_file() else "from the outputs file"
    layout.console(stderr=True).print(
        Text(f"target: {target.where()}, stack {stack}"), soft_wrap=True
    )
