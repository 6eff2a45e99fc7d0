"""What bench/migrate.py and bench/verify.py share: `loanstack` commands run as a user runs them
(a child process, the tool's sources first), in an environment of their own that points at a
detached emulator on a free port, never at AWS."""

from __future__ import annotations

import os
import subprocess
import sys
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


def start_emulator(env: dict[str, str]) -> None:
    """A detached emulator on a free port (`--port 0`: another run's may still hold the default
    while it stops), its URL put in `env`."""
    started = loanstack(env, "emulator", "start", "--detach", "--port", "0")
    if started.returncode != 0:
        raise SystemExit(f"emulator did not start: {started.stderr.strip()}")
    env["LOANSTACK_EMULATOR_URL"] = next(
        w.split("=", 1)[1] for w in started.stdout.split() if "=" in w
    )
