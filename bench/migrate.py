"""`loanstack migrate` end to end on the emulator, then `loanstack verify` of the same export:
rows per second and the tool's peak RSS, for an export of mostly good rows or of bad rows only.

For each concurrency: a fresh detached emulator (`loanstack emulator start --detach`: its own
process, so the function, the Data API and MariaDB are not in the tool's memory), the dev stack
deployed with `ValidationReservedConcurrency=<n>`, then `loanstack migrate --no-verify` in a
process of its own, timed from outside, which reports its own peak RSS (getrusage ru_maxrss of
the tool's process alone); then `loanstack verify` of the same export the same way. Issue 20's
targets: >= 10,000 rows/s end to end at concurrency 1 and 4, peak RSS <= 300 MiB for the all-good
and the all-bad export alike, verify >= 50,000 rows/s.

Run (docs/benchmarks.md quotes its output; 1,000,000 rows take minutes per concurrency on 2
cores, so run it when the machine is otherwise quiet):
  .venv/bin/python -m bench.migrate --rows 1000000 --concurrency 1,4
  .venv/bin/python -m bench.migrate --rows 1000000 --concurrency 1,4 --bad
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.emulated import PROFILE, environment, loanstack, start_emulator
from loanstack.testing import loanbook


def child(argv: list[str]) -> None:
    """A loanstack command in this process; then its peak RSS as the last line of stderr."""
    from loanstack import cli

    if os.environ.get(PROFILE):  # the tool's own profile next to the emulator's
        import cProfile

        profile = cProfile.Profile()
        code = profile.runcall(cli.main, argv)
        profile.dump_stats(Path(os.environ[PROFILE]) / f"tool-{argv[0]}-{os.getpid()}.prof")
    else:
        code = cli.main(argv)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    line = {
        "code": code,
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # KiB on Linux
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
    }
    print(json.dumps(line), file=sys.stderr)
    raise SystemExit(code)


def timed(env: dict[str, str], cwd: Path, *argv: str) -> tuple[dict[str, Any], str, float]:
    """One command in a child process: (its peak RSS line, its stdout, wall seconds)."""
    begin = time.perf_counter()
    run = subprocess.run(
        [sys.executable, __file__, "--child", *argv],
        env=env, cwd=cwd, capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - begin
    if run.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({run.returncode}): {run.stderr.strip()[-800:]}")
    return json.loads(run.stderr.strip().splitlines()[-1]), run.stdout, wall


def cpu_seconds(pid: int | None) -> float:
    """A process's CPU time so far (every thread's, user + system), from /proc; 0 without it.
    The emulator's is its own process's: an invocation run in a process of its own is not in it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sandbox_cpu(pid: int | None, others: set[int]) -> dict[int, float]:
    """CPU so far of each Lambda sandbox: the emulator's child processes (awslambda_sandbox.py),
    but for `others` (mariadbd), whose CPU is counted apart."""
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children.update(int(c) for c in task.read_text().split())
        except OSError:  # the thread ended meanwhile
            continue
    return {c: cpu_seconds(c) for c in children - others}


def measure(
    export: Path, rows: int, concurrency: int, chunk_rows: int, tmp: Path, verify: bool = True
) -> dict[str, Any]:
    env = environment(tmp, f"-{concurrency}")
    start_emulator(env)
    try:
        suffix = f"bench{concurrency}"
        deployed = loanstack(
            env, "deploy", "--env", "dev", "--suffix", suffix, "--yes",
            "--param", f"ValidationReservedConcurrency={concurrency}",
        )  # fmt: skip
        if deployed.returncode != 0:
            raise SystemExit(f"deploy failed: {deployed.stderr.strip()[-500:]}")
        state = json.loads(Path(env["LOANSTACK_EMULATOR_STATE"]).read_text(encoding="utf-8"))
        before = {k: cpu_seconds(state[k]) for k in ("pid", "mariadb_pid")}
        sandboxes = sandbox_cpu(state["pid"], {state["mariadb_pid"]})
        tool, out, wall = timed(
            env, tmp, "migrate", str(export), "--chunk-rows", str(chunk_rows),
            "--output", "json", "--no-verify", "--problems", str(tmp / "problems.jsonl"),
        )  # fmt: skip
        spent = {k: cpu_seconds(state[k]) - v for k, v in before.items()}
        after = sandbox_cpu(state["pid"], {state["mariadb_pid"]})
        spent["sandboxes"] = sum(v - sandboxes.get(c, 0.0) for c, v in after.items())
        report = json.loads(out)
        checker: dict[str, Any] = {"peak_rss_mib": 0.0}
        proof: dict[str, Any] = {"reconciled": True, "lines": rows}
        verify_wall = float("nan")
        if verify:
            checker, out, verify_wall = timed(env, tmp, "verify", str(export), "--output", "json")
            proof = json.loads(out)
    finally:
        loanstack(env, "emulator", "stop")
    assert report["rows"] == rows, report["rows"]
    assert proof["reconciled"] and proof["lines"] == rows, proof
    return {
        "concurrency": concurrency,
        "chunks": report["chunks"],
        "wall_s": round(wall, 1),
        "rows_per_s": round(rows / wall),
        "tool_peak_rss_mib": tool["peak_rss_mib"],
        # CPU per row (user + system), which the machine's load inflates far less than wall time
        "tool_cpu_us_per_row": round(tool["cpu_s"] / rows * 1e6, 1),
        "emulator_cpu_us_per_row": round(spent["pid"] / rows * 1e6, 1),
        "mariadbd_cpu_us_per_row": round(spent["mariadb_pid"] / rows * 1e6, 1),
        # the function's own process(es): its parsing, rules and SDK calls (and their waits' CPU)
        "lambda_cpu_us_per_row": round(spent["sandboxes"] / rows * 1e6, 1),
        "problem_rows": report["problemsFile"]["rows"],
        "verify_s": round(verify_wall, 1),
        "verify_rows_per_s": round(rows / verify_wall) if verify else 0,
        "verify_peak_rss_mib": checker["peak_rss_mib"],
        "summary": report["summary"],
    }


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--bad", action="store_true", help="every row INVALID (the all-bad export)")
    parser.add_argument("--concurrency", default="1,4", help="reserved concurrencies, e.g. 1,4")
    parser.add_argument("--chunk-rows", type=int, default=10_000)
    parser.add_argument("--no-verify", action="store_true", help="time migrate only")
    args = parser.parse_args()
    kind = "all bad" if args.bad else "one bad row in 1,000"
    print(
        f"python {platform.python_version()}, {os.cpu_count()} cores, {args.rows:,} rows ({kind})"
    )
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "loanbook.csv"
        begin = time.perf_counter()
        if args.bad:
            loanbook.write_bad_export(export, args.rows)
        else:
            loanbook.write_export(export, args.rows)
        size = export.stat().st_size
        print(f"export: {size / 2**20:,.1f} MiB, written in {time.perf_counter() - begin:.1f} s")
        results = [
            measure(export, args.rows, int(c), args.chunk_rows, Path(tmp), not args.no_verify)
            for c in args.concurrency.split(",")
        ]
    print(json.dumps(results))  # every figure, before the table
    print(
        f"{'concurrency':>11} {'chunks':>6} {'wall s':>8} {'rows/s':>8} {'tool RSS MiB':>12} "
        f"{'problems':>9} {'verify s':>8} {'verify rows/s':>13} {'verify RSS MiB':>14} "
        f"{'CPU us/row: tool':>16} {'emulator':>8} {'mariadbd':>8} {'lambda':>8}"
    )
    for r in results:
        print(
            f"{r['concurrency']:>11} {r['chunks']:>6} {r['wall_s']:>8} {r['rows_per_s']:>8,} "
            f"{r['tool_peak_rss_mib']:>12} {r['problem_rows']:>9,} {r['verify_s']:>8} "
            f"{r['verify_rows_per_s']:>13,} {r['verify_peak_rss_mib']:>14} "
            f"{r['tool_cpu_us_per_row']:>16} {r['emulator_cpu_us_per_row']:>8} "
            f"{r['mariadbd_cpu_us_per_row']:>8} {r['lambda_cpu_us_per_row']:>8}"
        )
    print(json.dumps(results[-1]["summary"]))


if __name__ == "__main__":
    main()
