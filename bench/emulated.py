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
from typing import Any

from loanstack.template import ROOT

# A directory: the emulator's process (every thread of it) and the benchmark's tool processes
# run under cProfile and leave their profiles there (`python -m pstats FILE` reads them). A
# profiled run is slower; its figures say where the time goes, not how fast a run is.
PROFILE = "LOANSTACK_BENCH_CPROFILE"  # a directory: cProfile of the emulator's threads and the tool


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


PROFILE_VARIABLE = "LOANSTACK_BENCH_PROFILE"  # a file: the emulator's profile goes there


def start_emulator(env: dict[str, str]) -> None:
    """A detached emulator on a free port (`--port 0`: another run's may still hold the default
    while it stops), its URL put in `env`. With `LOANSTACK_BENCH_PROFILE=<file>` it runs sampled
    (bench/emulator_profile.py) and writes where its time went to <file>.<n> when it stops; with
    `LOANSTACK_BENCH_CPROFILE=<dir>` every thread runs under cProfile (`serve_profiled`)."""
    if os.environ.get(PROFILE_VARIABLE):
        start_profiled(env, Path(os.environ[PROFILE_VARIABLE]))
        return
    if env.get(PROFILE):
        start_cprofiled(env)
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


def start_cprofiled(env: dict[str, str]) -> None:
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
    $LOANSTACK_BENCH_CPROFILE/emulator-<pid>.prof."""
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
