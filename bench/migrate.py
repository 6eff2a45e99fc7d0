"""`loanstack migrate` end to end on the emulator: a generated export, at reserved concurrency 1
and at the template's default (10), side by side.

For each concurrency: a fresh detached emulator (`loanstack emulator start --detach`), the dev
stack deployed with `ValidationReservedConcurrency=<n>`, then `loanstack migrate` in its own
process, timed from outside; that process reports its own peak RSS (the tool only: the emulator
and the function run in the emulator's process). Also printed: the most invocations the
emulator saw at once is not visible from outside, so the chunk count and wall time are the
evidence of the fan-out here; tests/unit/test_emulator_async_lambda.py proves the overlap.

Run: .venv/bin/python -m bench.migrate [rows] [--concurrency 1,10] [--chunk-rows 10000]
(default 1,000,000 rows; about 2 x 3 minutes on 2 cores). docs/benchmarks.md's "How a migration
scales" quotes its output.
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

from loanstack.template import ROOT
from loanstack.testing import loanbook


def loanstack(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loanstack", *argv],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def child(argv: list[str]) -> None:
    """The migrate command in this process; then its peak RSS as the last line of stderr."""
    from loanstack import cli

    code = cli.main(argv)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"code": code, "peak_rss_mib": round(peak_kib / 1024, 1)}), file=sys.stderr)
    raise SystemExit(code)


def measure(export: Path, rows: int, concurrency: int, chunk_rows: int, tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOANSTACK_"))}
    env |= {
        "LOANSTACK_OUTPUTS_FILE": str(tmp / f"outputs-{concurrency}.json"),
        "LOANSTACK_EMULATOR_STATE": str(tmp / f"emulator-{concurrency}.json"),
        "AWS_CONFIG_FILE": str(tmp / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none"),
        "PYTHONPATH": str(ROOT / "src"),
    }
    started = loanstack(env, "emulator", "start", "--detach")
    if started.returncode != 0:
        raise SystemExit(f"emulator did not start: {started.stderr.strip()}")
    url = next(w.split("=", 1)[1] for w in started.stdout.split() if "=" in w)
    env["LOANSTACK_EMULATOR_URL"] = url
    try:
        suffix = f"bench{concurrency}"
        deployed = loanstack(
            env, "deploy", "--env", "dev", "--suffix", suffix, "--yes",
            "--param", f"ValidationReservedConcurrency={concurrency}",
        )  # fmt: skip
        if deployed.returncode != 0:
            raise SystemExit(f"deploy failed: {deployed.stderr.strip()[-500:]}")
        begin = time.perf_counter()
        run = subprocess.run(
            [sys.executable, __file__, "--child", "migrate", str(export),
             "--chunk-rows", str(chunk_rows), "--output", "json"],
            env=env, cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        wall = time.perf_counter() - begin
        if run.returncode != 0:
            raise SystemExit(f"migrate failed: {run.stderr.strip()[-800:]}")
        report = json.loads(run.stdout)
        tool = json.loads(run.stderr.strip().splitlines()[-1])
    finally:
        loanstack(env, "emulator", "stop")
    assert report["rows"] == rows, report["rows"]
    return {
        "concurrency": concurrency,
        "chunks": report["chunks"],
        "wall_s": round(wall, 1),
        "rows_per_s": round(rows / wall),
        "tool_peak_rss_mib": tool["peak_rss_mib"],
        "summary": report["summary"],
    }


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--concurrency", default="1,10")
    parser.add_argument("--chunk-rows", type=int, default=10_000)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, {args.rows:,} rows")
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "loanbook.csv"
        begin = time.perf_counter()
        loanbook.write_export(export, args.rows)
        size = export.stat().st_size
        print(f"export: {size / 2**20:,.1f} MiB, written in {time.perf_counter() - begin:.1f} s")
        results = [
            measure(export, args.rows, int(c), args.chunk_rows, Path(tmp))
            for c in args.concurrency.split(",")
        ]
    print(
        f"{'concurrency':>11} {'chunks':>6} {'wall s':>8} {'rows/s':>8} {'tool peak RSS MiB':>18}"
    )
    for r in results:
        print(
            f"{r['concurrency']:>11} {r['chunks']:>6} {r['wall_s']:>8} {r['rows_per_s']:>8,} "
            f"{r['tool_peak_rss_mib']:>18}"
        )
    print(json.dumps(results[-1]["summary"]))


if __name__ == "__main__":
    main()
