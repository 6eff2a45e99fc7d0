"""How long the embedded emulator takes to deploy and destroy the dev stack, and `make demo`
end to end (environment already installed).

Run: .venv/bin/python -m bench.emulator_deploy [runs]
Targets (SPEC D4, the demo): dev deploy under 15 s on a 2-core machine; the demo under 60 s.
"""

from __future__ import annotations

import io
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from loanstack.aws.target import connect
from loanstack.stack import deploy
from loanstack.stack.destroy import destroy

ROOT = Path(__file__).resolve().parents[1]


def timed_deploy(runs: int) -> tuple[list[float], list[float]]:
    quiet = Console(file=io.StringIO(), width=200)
    target = connect("local", "us-east-1")
    target.outputs_file = Path("/tmp/loanstack-bench-outputs.json")
    ups, downs = [], []
    try:
        for i in range(runs):
            suffix = f"bench{i}"
            d = deploy.Deployment(
                target, "dev", suffix, deploy.parameters_for("dev", suffix, {}), quiet
            )
            started = time.perf_counter()
            deploy.deploy(d, confirm=lambda: True)
            ups.append(time.perf_counter() - started)
            started = time.perf_counter()
            destroy(target, suffix, quiet)
            downs.append(time.perf_counter() - started)
    finally:
        target.close()
    return ups, downs


def timed_demo() -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "loanstack", "demo"], cwd=ROOT, check=True, capture_output=True
    )
    return time.perf_counter() - started


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    ups, downs = timed_deploy(runs)
    print(
        f"dev deploy on the emulator: median {statistics.median(ups):.2f} s over {runs} runs (max {max(ups):.2f} s); target 15 s"
    )
    print(f"dev destroy on the emulator: median {statistics.median(downs):.2f} s")
    demo = timed_demo()
    print(f"make demo end to end (python -m loanstack demo): {demo:.1f} s; target 60 s")


if __name__ == "__main__":
    main()
