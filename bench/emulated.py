"""What bench/migrate.py and bench/verify.py share: `loanstack` commands run as a user runs them
(a child process, the tool's sources first), in an environment of their own that points at a
detached emulator on a free port, never at AWS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from loanstack.template import ROOT


def loanstack(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loanstack", *argv],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def environment(tmp: Path, name: str = "") -> dict[str, str]:
    """This process's environment without AWS or loanstack settings, the run's files in `tmp`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOANSTACK_"))}
    return env | {
        "LOANSTACK_OUTPUTS_FILE": str(tmp / f"outputs{name}.json"),
        "LOANSTACK_EMULATOR_STATE": str(tmp / f"emulator{name}.json"),
        "AWS_CONFIG_FILE": str(tmp / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none"),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),  # a bench's --child too
    }


PROFILE_VARIABLE = "LOANSTACK_BENCH_PROFILE"  # a file: the emulator's profile goes there


def start_emulator(env: dict[str, str]) -> None:
    """A detached emulator on a free port (`--port 0`: another run's may still hold the default
    while it stops), its URL put in `env`. With `LOANSTACK_BENCH_PROFILE=<file>` it runs sampled
    (bench/emulator_profile.py) and writes where its time went to <file>.<n> when it stops."""
    if os.environ.get(PROFILE_VARIABLE):
        start_profiled(env, Path(os.environ[PROFILE_VARIABLE]))
        return
    started = loanstack(env, "emulator", "start", "--detach", "--port", "0")
    if started.returncode != 0:
        raise SystemExit(f"emulator did not start: {started.stderr.strip()}")
    env["LOANSTACK_EMULATOR_URL"] = next(
        w.split("=", 1)[1] for w in started.stdout.split() if "=" in w
    )


def start_profiled(env: dict[str, str], out: Path) -> None:
    """The emulator in the foreground of a background process, under the sampler; `loanstack
    emulator stop` (SIGTERM) ends it and the report is written."""
    n = 0
    while out.with_name(f"{out.name}.{n}").exists():
        n += 1
    state = Path(env["LOANSTACK_EMULATOR_STATE"])
    state.unlink(missing_ok=True)
    child = subprocess.Popen(  # this interpreter, no shell
        [sys.executable, "-m", "bench.emulator_profile", str(out.with_name(f"{out.name}.{n}"))],
        env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.poll() is None:
        if state.exists():
            env["LOANSTACK_EMULATOR_URL"] = json.loads(state.read_text())["url"]
            time.sleep(0.5)
            return
        time.sleep(0.2)
    raise SystemExit("profiled emulator did not start")
