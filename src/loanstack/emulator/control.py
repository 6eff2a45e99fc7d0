"""`loanstack emulator start|status|stop`: one emulator kept running for other commands.

`start` serves in the foreground until Ctrl-C or SIGTERM (what CI, `timeout` and `docker stop`
send), then stops moto and MariaDB and removes MariaDB's data directory (`inprocess.serve`);
`--detach` runs that same foreground server as a background process and returns once it
answers. A state file (`.cache/emulator.json`, or `$LOANSTACK_EMULATOR_STATE`) records its pid,
URL and data directory, so `status` and `stop` find it from any shell.

This module is the light half of the door: it imports no moto, pymysql or service module, so
every command that only reaches a running emulator (and `status`, `stop`, `start --detach`)
starts in a fraction of a second.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from loanstack.emulator import EmulatorError
from loanstack.template import ROOT

URL_VARIABLE = "LOANSTACK_EMULATOR_URL"
STATE_VARIABLE = "LOANSTACK_EMULATOR_STATE"
START_TIMEOUT = 120.0  # MariaDB's first start (install-db) takes most of it
STOP_TIMEOUT = 60.0  # MariaDB's shutdown and the data directory's removal
PORT_TIMEOUT = 10.0  # after the process has gone, until its port takes a new listener


def state_file() -> Path:
    return Path(os.environ.get(STATE_VARIABLE) or ROOT / ".cache" / "emulator.json")


def read_state() -> dict[str, Any] | None:
    try:
        found = json.loads(state_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and isinstance(found.get("pid"), int) else None


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (an exited child nobody has reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    return stat.rpartition(")")[2].split()[0] != "Z"


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=3):  # noqa: S310 (our emulator's loopback http URL)
            return True
    except urllib.error.HTTPError:
        return True  # an HTTP answer of any kind: something serves there
    except OSError:
        return False


def running() -> dict[str, Any] | None:
    """The recorded emulator, if its process is still there."""
    state = read_state()
    return state if state is not None and alive(state["pid"]) else None


def check_port(port: int) -> None:
    """moto's threaded server waits forever when its port is taken: refuse first, in one line,
    before anything heavy loads (`door.command`: moto costs seconds of CPU to import)."""
    if not 0 <= port <= 65535:
        raise EmulatorError(f"--port {port} is not a TCP port (0-65535; 0 picks a free one)")
    if port == 0:
        return
    if (refused := bind_refused(port)) is not None:
        raise EmulatorError(
            f"port {port} is taken ({refused.strerror}): pick another with --port, or see "
            "`loanstack emulator status`"
        )


def refuse_if_running() -> None:
    """One emulator per state file: a second start is refused with the URL to use instead."""
    if (state := running()) is not None:
        raise EmulatorError(
            f"an emulator already runs at {state['url']} (pid {state['pid']}): use it, or "
            "`loanstack emulator stop` first"
        )


def write_state(url: str, mariadb_pid: int | None, data_dir: Path | None) -> None:
    """Record the emulator this process serves, for `status`, `stop` and other shells."""
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "pid": os.getpid(),
        "url": url,
        "mariadb_pid": mariadb_pid,
        "data_dir": str(data_dir),
    }
    path.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")


def bind_refused(port: int) -> OSError | None:
    """Why a new emulator could not listen on `port` now, or None when it could.

    The probe binds as the emulator's server does: werkzeug's server sets SO_REUSEADDR
    (socketserver's `allow_reuse_address`), so connections a stopped emulator closed
    (TIME_WAIT, FIN_WAIT2: the tool's and the functions' pooled keep-alive connections) do not
    hold the port, while a listener does. A plain bind refuses in both cases, and made
    `emulator start` call a port taken right after `stop` freed it.
    https://man7.org/linux/man-pages/man7/socket.7.html (SO_REUSEADDR),
    https://docs.python.org/3/library/socketserver.html#socketserver.BaseServer.allow_reuse_address
    """
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc
    return None


def clear_state(pid: int) -> None:
    state = read_state()
    if state is not None and state["pid"] == pid:
        state_file().unlink(missing_ok=True)


def start_detached(console: Console, port: int) -> int:
    """`start --detach`: the foreground server in a background process, its output in a log."""
    refuse_if_running()
    log = state_file().with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        child = subprocess.Popen(  # noqa: S603 (this interpreter running loanstack, no shell)
            [sys.executable, "-m", "loanstack", "emulator", "start", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in this shell must not reach it
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        state = read_state()
        if state is not None and state["pid"] == child.pid and answers(state["url"]):
            console.print(Text(f"emulator running at {state['url']} (pid {child.pid}); now:"))
            console.print(Text(f"export {URL_VARIABLE}={state['url']}"), soft_wrap=True)
            return 0
        if child.poll() is not None:
            last = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise EmulatorError(f"the emulator did not start: {last[0]} (log: {log})")
        time.sleep(0.2)
    child.terminate()
    raise EmulatorError(f"the emulator did not answer within {START_TIMEOUT:.0f} s (log: {log})")


def status(console: Console) -> int:
    """0 when the recorded emulator runs and answers; 1 (with what to do) otherwise."""
    state = running()
    if state is None:
        console.print("no emulator running: `loanstack emulator start [--detach]` starts one")
        return 1
    if not answers(state["url"]):
        console.print(
            Text(f"emulator pid {state['pid']} runs but does not answer at {state['url']}")
        )
        return 1
    console.print(Text(f"emulator running at {state['url']} (pid {state['pid']})"))
    if os.environ.get(URL_VARIABLE) != state["url"]:
        console.print(Text(f"export {URL_VARIABLE}={state['url']}"), soft_wrap=True)
    return 0


def stop(console: Console) -> int:
    """SIGTERM to the recorded emulator, then wait until it has cleaned up and gone and its port
    takes a new listener: `emulator start` on the same port may follow at once."""
    state = running()
    if state is None:
        state_file().unlink(missing_ok=True)
        console.print("no emulator running")
        return 0
    os.kill(state["pid"], signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while alive(state["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(state["pid"]):
        raise EmulatorError(f"emulator pid {state['pid']} did not stop within {STOP_TIMEOUT:.0f} s")
    port = urllib.parse.urlsplit(state["url"]).port
    refused = port_stays_taken(port) if port is not None else None
    if refused is not None:
        raise EmulatorError(
            f"emulator at {state['url']} stopped, but port {port} still refuses a listener after "
            f"{PORT_TIMEOUT:.0f} s ({refused.strerror}): start the next one with another --port"
        )
    console.print(Text(f"emulator at {state['url']} stopped"))
    return 0


def port_stays_taken(port: int) -> OSError | None:
    """Wait (at most PORT_TIMEOUT) until `port` takes a listener; why not, if it never did."""
    deadline = time.monotonic() + PORT_TIMEOUT
    while (refused := bind_refused(port)) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    return refused
