"""The heavy half of the door: an emulator in this process, and what the demo reads of its
internals. Importing this module imports moto, pymysql and every service module (`server`); the
door (`door.py`) imports it only when a command must start an emulator here (`deploy` without a
running one, `emulator start`, the demo) or the demo looks inside the one it started.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.text import Text

from loanstack import functions
from loanstack.emulator import EmulatorError, control
from loanstack.emulator.rds import master_password
from loanstack.emulator.server import Emulator
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


def start() -> LocalEmulator:
    """A new emulator in this process, or one line saying what is missing (MariaDB, a port)."""
    try:
        return LocalEmulator(Emulator().start())
    except EmulatorError as exc:
        raise DeployError(str(exc)) from exc


def serve(console: Console, port: int) -> int:
    """`loanstack emulator start`: run an emulator in this process until Ctrl-C or SIGTERM;
    leave nothing behind."""
    control.refuse_if_running()
    emulator = Emulator(port=port, lambda_processes=True)  # awslambda_sandbox.py: why
    try:
        emulator.start()
        control.write_state(emulator.url, emulator.mariadb_pid, emulator.data_dir)
        console.print(Text(f"emulator listening on {emulator.url}; in another shell:"))
        console.print(Text(f"  export {control.URL_VARIABLE}={emulator.url}"), soft_wrap=True)
        console.print("Ctrl-C or `loanstack emulator stop` stops it (and forgets every stack).")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
        control.clear_state(os.getpid())
    console.print("emulator stopped")
    return 0


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
