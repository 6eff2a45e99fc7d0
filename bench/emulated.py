"""What bench/migrate.py and bench/verify.py share: `loanstack` commands run as a user runs them
(a child process, the tool's sources first), in an environment of their own that points at a
detached emulator on a free port, never at AWS."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from loanstack.template import ROOT

# A directory: the emulator's process (every thread of it) and the benchmark's tool processes
# run under cProfile and leave their profiles there (`python -m pstats FILE` reads them). A
# profiled run is slower; its figures say where the time goes, not how fast a run is.
PROFILE = "LOANSTACK_BENCH_PROFILE"


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
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "LOANSTACK_")) or k == PROFILE
    }
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
    if env.get(PROFILE):
        start_profiled(env)
        return
    started = loanstack(env, "emulator", "start", "--detach", "--port", "0")
    if started.returncode != 0:
        raise SystemExit(f"emulator did not start: {started.stderr.strip()}")
    env["LOANSTACK_EMULATOR_URL"] = next(
        w.split("=", 1)[1] for w in started.stdout.split() if "=" in w
    )


def start_profiled(env: dict[str, str]) -> None:
    """`start_emulator` with the server under `serve_profiled`, detached as `--detach` does
    (`loanstack emulator stop` ends it the same way, and it writes its profile as it stops)."""
    out = Path(env[PROFILE])
    out.mkdir(parents=True, exist_ok=True)
    with (out / "emulator.log").open("ab") as log:
        subprocess.Popen(
            [sys.executable, "-c", "from bench.emulated import serve_profiled; serve_profiled()"],
            env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = loanstack(env, "emulator", "status")
        if status.returncode == 0:
            words = status.stdout.split()
            env["LOANSTACK_EMULATOR_URL"] = words[words.index("at") + 1]
            return
        time.sleep(0.5)
    raise SystemExit(f"the profiled emulator did not start (log: {out / 'emulator.log'})")


def serve_profiled() -> None:
    """`loanstack emulator start --port 0` in this process, each thread under its own cProfile
    profiler (cProfile sees only the thread that enables it); on exit, all merged into
    $LOANSTACK_BENCH_PROFILE/emulator-<pid>.prof."""
    import cProfile
    import threading

    from loanstack import cli

    profiles: list[cProfile.Profile] = []
    run = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        profile = cProfile.Profile()
        profiles.append(profile)  # list.append is atomic under the GIL
        profile.enable()
        try:
            run(self)
        finally:
            profile.disable()

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    main = cProfile.Profile()
    profiles.append(main)
    main.enable()
    try:
        cli.main(["emulator", "start", "--port", "0"])
    finally:
        main.disable()
        dump(profiles, Path(os.environ[PROFILE]) / f"emulator-{os.getpid()}.prof")


def dump(profiles: list[Any], path: Path) -> None:
    """Profiles merged into one pstats file (those that saw nothing are left out)."""
    import pstats

    merged: pstats.Stats | None = None
    for profile in list(profiles):
        profile.disable()
        try:
            merged = pstats.Stats(profile) if merged is None else merged.add(profile)
        except TypeError:  # a profiler that recorded nothing
            continue
    if merged is not None:
        merged.dump_stats(path)
