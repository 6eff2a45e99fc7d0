"""`loanstack emulator start|status|stop`: one emulator kept running for other commands.

`start` serves in the foreground until Ctrl-C or SIGTERM (what CI, `timeout` and `docker stop`
send), then stops moto and MariaDB and removes MariaDB's data directory; `--detach` runs that
same foreground server as a background process and returns once it answers. A state file
(`.cache/emulator.json`, or `$LOANSTACK_EMULATOR_STATE`) records its pid, URL and data
directory, so `status` and `stop` find it from any shell.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from loanstack.emulator import Emulator, EmulatorError
from loanstack.template import ROOT

URL_VARIABLE = "LOANSTACK_EMULATOR_URL"
STATE_VARIABLE = "LOANSTACK_EMULATOR_STATE"
START_TIMEOUT = 120.0  # MariaDB's first start (install-db) takes most of it
STOP_TIMEOUT = 60.0


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


def serve(console: Console, port: int) -> int:
    """Run an emulator in this process until Ctrl-C or SIGTERM; leave nothing behind."""
    if (state := running()) is not None:
        raise EmulatorError(
            f"an emulator already runs at {state['url']} (pid {state['pid']}): use it, or "
            "`loanstack emulator stop` first"
        )
    emulator = Emulator(port=port)
    try:
        emulator.start()
        write_state(emulator)
        console.print(Text(f"emulator listening on {emulator.url}; in another shell:"))
        console.print(Text(f"  export {URL_VARIABLE}={emulator.url}"), soft_wrap=True)
        console.print("Ctrl-C or `loanstack emulator stop` stops it (and forgets every stack).")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
        clear_state(os.getpid())
    console.print("emulator stopped")
    return 0


def write_state(emulator: Emulator) -> None:
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "pid": os.getpid(),
        "url": emulator.url,
        "mariadb_pid": emulator.mariadb_pid,
        "data_dir": str(emulator.data_dir),
    }
    path.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")


def clear_state(pid: int) -> None:
    state = read_state()
    if state is not None and state["pid"] == pid:
        state_file().unlink(missing_ok=True)


def start_detached(console: Console, port: int) -> int:
    """`start --detach`: the foreground server in a background process, its output in a log."""
    if (state := running()) is not None:
        raise EmulatorError(
            f"an emulator already runs at {state['url']} (pid {state['pid']}): use it, or "
            "`loanstack emulator stop` first"
        )
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
    """SIGTERM to the recorded emulator, then wait until it has cleaned up and gone."""
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
    console.print(Text(f"emulator at {state['url']} stopped"))
    return 0
