"""`loanstack verify` on the emulator: rows per second of the reconciliation, after a migration.

A fresh detached emulator (`loanstack emulator start --detach`), the dev stack deployed, a
generated export migrated (`loanstack migrate --no-verify`), then `loanstack verify` of the same
export in its own process, timed from outside, `--runs` times (min/median/max). The emulator (its
Data API on MariaDB) is another process, so the verify process's CPU (its workers' included) is
shown next to the wall time: what the tool spends per line (reading and judging the export, SQLite, parsing the
Data API's pages) against what it waits for (the database's pages).

Run: .venv/bin/python -m bench.verify [rows] [--runs 3] [--profile FILE]
(default 100,000 rows; `--profile` writes a cProfile of the last run's verify process.)
Target (issue 20): verify >= 50,000 rows/s.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.emulated import environment, loanstack, start_emulator
from loanstack.template import ROOT
from loanstack.testing import loanbook


def child(argv: list[str]) -> None:
    """`loanstack verify` in this process (profiled when asked), then the reconciliation's own
    wall time (without the process's start and imports), the CPU time of the process and its
    workers, and the peak RSS as the last line of stderr."""
    from loanstack import cli
    from loanstack.ops import verify

    spent: dict[str, float] = {}
    reconcile = verify.reconcile

    def timed(*args: Any, **kwargs: Any) -> Any:
        begin = time.perf_counter()
        try:
            return reconcile(*args, **kwargs)
        finally:
            spent["reconcile_s"] = time.perf_counter() - begin

    verify.reconcile = timed
    profile = os.environ.get("BENCH_VERIFY_PROFILE")
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    code = cli.main(argv)
    if profiler is not None and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    stop_forkserver()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the forkserver and its workers
    main_s = usage.ru_utime + usage.ru_stime
    workers_s = children.ru_utime + children.ru_stime
    print(json.dumps({"code": code, **spent, "cpu_s": main_s + workers_s, "main_s": main_s,
                      "workers_s": workers_s, "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}),
          file=sys.stderr)  # fmt: skip
    raise SystemExit(code)


def stop_forkserver() -> None:
    """Ends the forkserver verify's workers were forked from and waits for it. RUSAGE_CHILDREN
    counts only children this process waited for: the workers are the forkserver's children
    (it reaps them), so their CPU reaches this process only once the forkserver itself is
    waited for. Before round 7 the bench read RUSAGE_CHILDREN with the forkserver still
    running: "the tool's CPU" was the main process's alone, the workers' judging not in it.
    (`_stop` is the module's own way to end it; there is no public one.)
    https://man7.org/linux/man-pages/man2/getrusage.2.html"""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    stop = getattr(server, "_stop", None)
    if callable(stop):
        stop()


def cpu_seconds(pid: int | None) -> float:
    """A process's user + system CPU time from /proc (0 when it is gone or not known)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu(env: dict[str, str]) -> tuple[float, float]:
    """CPU seconds so far of the detached emulator (its Data API: HTTP, PyMySQL, the JSON
    pages) and of its mariadbd, from the pids its state file records."""
    state = json.loads(Path(env["LOANSTACK_EMULATOR_STATE"]).read_text())
    return cpu_seconds(state.get("pid")), cpu_seconds(state.get("mariadb_pid"))


def verify_once(env: dict[str, str], export: Path, profile: str | None) -> dict[str, Any]:
    run_env = env | ({"BENCH_VERIFY_PROFILE": profile} if profile else {})
    emulator, mariadbd = server_cpu(env)
    begin = time.perf_counter()
    run = subprocess.run(
        [sys.executable, __file__, "--child", "verify", str(export), "--output", "json"],
        env=run_env, cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - begin
    emulator_after, mariadbd_after = server_cpu(env)
    try:
        tool = json.loads(run.stderr.strip().splitlines()[-1])
        summary = json.loads(run.stdout)
    except (ValueError, IndexError):  # the child failed before its summary: say how
        raise SystemExit(f"verify failed: {run.stdout[-800:]} {run.stderr[-2000:]}") from None
    if tool["code"] != 0 or not summary["reconciled"]:
        raise SystemExit(f"verify did not reconcile: {run.stdout[-800:]} {run.stderr[-800:]}")
    servers = {"emulator_s": emulator_after - emulator, "mariadbd_s": mariadbd_after - mariadbd}
    return {"wall": wall, **tool, **servers, "lines": summary["lines"]}


def measure(rows: int, runs: int, profile: str | None, tmp: Path) -> list[dict[str, Any]]:
    env = environment(tmp)
    export = tmp / "loanbook.csv"
    loanbook.write_export(export, rows)
    start_emulator(env)
    try:
        deployed = loanstack(env, "deploy", "--env", "dev", "--suffix", "benchv", "--yes")
        if deployed.returncode != 0:
            raise SystemExit(f"deploy failed: {deployed.stderr.strip()[-500:]}")
        migrated = loanstack(env, "migrate", str(export), "--no-verify", "--output", "json")
        if migrated.returncode != 0:
            raise SystemExit(f"migrate failed: {migrated.stderr.strip()[-800:]}")
        return [verify_once(env, export, profile if i == runs - 1 else None) for i in range(runs)]
    finally:
        loanstack(env, "emulator", "stop")


def spread(values: list[float], fmt: str) -> str:
    """min/median/max, as `fmt` formats each."""
    return "/".join(format(v, fmt) for v in (min(values), statistics.median(values), max(values)))


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="?", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", metavar="FILE", help="cProfile of the last verify run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = measure(args.rows, args.runs, args.profile, Path(tmp))
    load = os.getloadavg()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load average {load[0]:.2f} at the end; "
        f"{args.runs} runs, min/median/max"
    )
    lines = runs[0]["lines"]
    print(
        f"verify of {args.rows:,} rows ({lines:,} lines): "
        f"{spread([lines / r['wall'] for r in runs], ',.0f')} rows/s end to end (target >= 50,000), "
        f"wall {spread([r['wall'] for r in runs], '.2f')} s; the reconciliation alone "
        f"{spread([lines / r['reconcile_s'] for r in runs], ',.0f')} rows/s; the tool's CPU "
        f"{spread([r['cpu_s'] / lines * 1e6 for r in runs], '.1f')} µs/line (its main process "
        f"{spread([r['main_s'] / lines * 1e6 for r in runs], '.1f')}, the workers "
        f"{spread([r['workers_s'] / lines * 1e6 for r in runs], '.1f')}), peak RSS "
        f"{max(r['peak_rss_mib'] for r in runs):.0f} MiB"
    )
    every = [(r["cpu_s"] + r["emulator_s"] + r["mariadbd_s"]) / lines * 1e6 for r in runs]
    print(
        f"CPU per line, not inflated by the machine's load as wall time is: the emulator "
        f"{spread([r['emulator_s'] / lines * 1e6 for r in runs], '.1f')} µs, mariadbd "
        f"{spread([r['mariadbd_s'] / lines * 1e6 for r in runs], '.1f')} µs; all processes "
        f"{spread(every, '.1f')} µs/line, so at most "
        f"{spread([2e6 / e for e in every], ',.0f')} rows/s on two cores"
    )


if __name__ == "__main__":
    main()
