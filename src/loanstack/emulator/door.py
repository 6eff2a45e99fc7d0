"""The emulator's door: the only module of `loanstack.emulator` the tool imports.

The tool depends on a small local-target interface (`loanstack.aws.target.LocalTarget`); this
module implements it with the embedded emulator (SPEC D4), offers what the demo reads from the
emulator and runs the `loanstack emulator` command. The tool imports it lazily, in
`loanstack.aws.target.local_door` only, and the demo and the `emulator` command through that
function.

The door is light: reaching an emulator that already runs (its URL, from the environment or
`emulator start`'s state file), the dummy credentials, `emulator status`/`stop`/`start --detach`
need no moto, pymysql or service module, and importing them cost every such command seconds of
CPU. The heavy half (`inprocess.py`: an emulator started in this process, the demo's look
inside it) is imported by the functions below that need it, when they are called.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from rich.console import Console

from loanstack.emulator import CREDENTIALS, EmulatorError, control
from loanstack.errors import DeployError

if TYPE_CHECKING:
    from loanstack.emulator.inprocess import LocalEmulator

EXTRA = ("moto", "pymysql")  # the `loanstack[emulator]` extra (pyproject.toml)


def require_extra() -> None:
    """Raise ModuleNotFoundError (with its name) when the emulator extra is not installed. The
    packages are found, not imported: importing moto costs seconds a running emulator's
    clients do not need."""
    for name in EXTRA:
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def credentials() -> dict[str, str]:
    """The dummy credentials moto takes (any would do; these say where they point)."""
    return dict(CREDENTIALS)


def start() -> LocalEmulator:
    """A new emulator in this process, or one line saying what is missing (MariaDB, a port)."""
    from loanstack.emulator import inprocess

    return inprocess.start()


def running_url() -> str | None:
    """The URL of the emulator `loanstack emulator start` keeps running (its state file), when
    its process is there and it answers: found from any shell without exporting its URL."""
    state = control.running()
    if state is None or not isinstance(state.get("url"), str):
        return None
    return str(state["url"]) if control.answers(state["url"]) else None


def cluster_password(cluster_arn: str, region: str) -> str:
    """The emulated cluster's master password, read from the emulator in this process."""
    from loanstack.emulator import inprocess

    return inprocess.cluster_password(cluster_arn, region)


def logs_in(secret: dict[str, Any]) -> bool:
    """testSecret's TLS login to the emulator's MariaDB in this process with `secret`."""
    from loanstack.emulator import inprocess

    return inprocess.logs_in(secret)


def command(action: str, console: Console, port: int, detach: bool) -> int:
    """`loanstack emulator start|status|stop`; its refusals as one line. Only a foreground
    `start` runs the emulator in this process."""
    try:
        if action == "status":
            return control.status(console)
        if action == "stop":
            return control.stop(console)
        control.refuse_if_running()
        control.check_port(port)  # before moto loads (seconds of CPU) or a child starts
        if detach:
            return control.start_detached(console, port)
        from loanstack.emulator import inprocess

        return inprocess.serve(console, port)
    except EmulatorError as exc:
        raise DeployError(str(exc)) from exc
