"""The emulator's light door (SPEC D4; docs/architecture.md), as a user meets it: a command that
reaches an emulator already running (`loanstack emulator start --detach`) imports neither moto
nor the emulator's service modules, and `loanstack emulator stop` leaves its port ready for the
next `emulator start` on it at once."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loanstack.template import ROOT
from tests.integration.test_cli_walkthrough import require_emulator
from tests.support.cli import ci_env, loanstack

URL_VARIABLE = "LOANSTACK_EMULATOR_URL"
# what reaching a running emulator may import of it: the package's light names and the door
LIGHT = ["loanstack.emulator", "loanstack.emulator.control", "loanstack.emulator.door"]
PROBE = """
import json, sys
from loanstack.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("moto", "pymysql", "werkzeug"))
emulator = sorted(m for m in sys.modules if m.startswith("loanstack.emulator"))
print("probe:", json.dumps({"exit": code, "heavy": heavy, "emulator": emulator}))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], int]]:
    """A detached emulator on a fixed port (the tests may stop and start it there again)."""
    env = ci_env(Path(tmp_path_factory.mktemp("door")))
    port = free_port()
    started = loanstack(env, "emulator", "start", "--detach", "--port", str(port))
    require_emulator(started.code, started.text)
    assert started.code == 0, started.text
    yield env, port
    loanstack(env, "emulator", "stop")


def probe(env: dict[str, str], *argv: str) -> dict[str, object]:
    """Run the `loanstack` command line in a fresh interpreter; what it loaded, and its exit."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("probe: ")), None)
    assert line is not None, done.stdout + done.stderr
    found: dict[str, object] = json.loads(line.removeprefix("probe: "))
    return found


def test_commands_against_a_running_emulator_import_no_moto(
    running: tuple[dict[str, str], int],
) -> None:
    """Found through `emulator start`'s state file, or named by LOANSTACK_EMULATOR_URL: the
    command connects (STS on the emulator), acts, and loaded only the door."""
    env, port = running
    by_url = env | {URL_VARIABLE: f"http://127.0.0.1:{port}"}
    for environment, argv in [
        (env, ("destroy", "--suffix", "door1", "--target", "local", "--yes")),
        (by_url, ("destroy", "--suffix", "door1", "--target", "local", "--yes")),
        (env, ("emulator", "status")),
    ]:
        found = probe(environment, *argv)
        assert found == {"exit": 0, "heavy": [], "emulator": LIGHT}, (argv, found)


def test_stop_frees_the_port_for_a_start_at_once(running: tuple[dict[str, str], int]) -> None:
    """A client still holding a keep-alive connection when the emulator stops (the tool's and
    the functions' pooled connections do) leaves the port's closed connection behind, which a
    listener may reuse: the next `emulator start` on that port must not call it taken."""
    env, port = running
    with socket.create_connection(("127.0.0.1", port)) as held:
        held.sendall(b"GET /moto-api/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
        stopped = loanstack(env, "emulator", "stop")
        assert stopped.code == 0, stopped.text
        again = loanstack(env, "emulator", "start", "--detach", "--port", str(port))
    assert again.code == 0, again.text
    assert f"{URL_VARIABLE}=http://127.0.0.1:{port}" in again.out
