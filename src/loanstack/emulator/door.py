"""The emulator's door: the only module of `loanstack.emulator` the tool imports.

The tool depends on a small local-target interface (`loanstack.aws.target.LocalTarget`); this
module implements it with the embedded emulator (SPEC D4), and offers what the demo reads from
the emulator (the cluster's master password, a login to the cluster's endpoint) and the
`loanstack emulator` command. Importing it imports moto and pymysql (the `loanstack[emulator]`
extra); the tool imports it lazily, in `loanstack.aws.target.local_door` only, and the demo and
the `emulator` command through that function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Console

from loanstack import functions
from loanstack.emulator import CREDENTIALS, Emulator, EmulatorError, control
from loanstack.emulator.rds import master_password
from loanstack.emulator.state import STATE
from loanstack.errors import DeployError


@dataclass
class LocalEmulator:
    """An emulator this command started: it lives as long as the command (`stop`)."""

    emulator: Emulator

    @property
    def url(self) -> str:
        return self.emulator.url

    def stop(self) -> None:
        self.emulator.stop()


def credentials() -> dict[str, str]:
    """The dummy credentials moto takes (any would do; these say where they point)."""
    return dict(CREDENTIALS)


def start() -> LocalEmulator:
    """A new emulator in this process, or one line saying what is missing (MariaDB, a port)."""
    try:
        return LocalEmulator(Emulator().start())
    except EmulatorError as exc:
        raise DeployError(str(exc)) from exc


def running_url() -> str | None:
    """The URL of the emulator `loanstack emulator start` keeps running (its state file), when
    its process is there and it answers: found from any shell without exporting its URL."""
    state = control.running()
    if state is None or not isinstance(state.get("url"), str):
        return None
    return str(state["url"]) if control.answers(state["url"]) else None


def cluster_password(cluster_arn: str, region: str) -> str:
    """The emulated cluster's master password (AWS never shows one; the emulator can)."""
    parts = cluster_arn.split(":")
    return master_password(parts[4], region, parts[-1])


def logs_in(secret: dict[str, Any]) -> bool:
    """The rotation function's own TLS login (testSecret's test) against the emulator's MariaDB,
    the cluster's endpoint here, trusting the CA the emulator generated for it."""
    rotation = functions.fresh(functions.ROTATION)
    server = STATE.mariadb
    cafile = str(server.ca_file) if server is not None else None
    try:
        rotation.login(secret, cafile=cafile)
    except (rotation.LoginRefused, OSError):
        return False
    return True


def command(action: str, console: Console, port: int, detach: bool) -> int:
    """`loanstack emulator start|status|stop`; its refusals as one line."""
    try:
        if action == "status":
            return control.status(console)
        if action == "stop":
            return control.stop(console)
        if detach:
            return control.start_detached(console, port)
        return control.serve(console, port)
    except EmulatorError as exc:
        raise DeployError(str(exc)) from exc
