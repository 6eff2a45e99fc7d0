"""A JSON Lines migration batch through the validation handler: where the time goes, and memory.

S3 is a moto server in its own process on loopback (so the object really streams over HTTP),
and the Data API goes to a private MariaDB through the test bridge (one reused connection).
For each size, one fresh child process prints, side by side:

- the rules alone: schema check + decision per application (`evaluate`), µs per row;
- the function's own cost: handler time minus the time spent inside the Data API stand-in
  (MariaDB executing the statements), µs per row: reading, parsing, deciding, encoding chunks,
  botocore, the report;
- end to end: rows per second of the whole handler;
- peak Python heap (tracemalloc), measured in a second child so that tracing does not slow
  the timed run; RSS is shown for reference.

Run: .venv/bin/python -m bench.batch_file [rows ...]   (default: 20000 200000)
Targets (SPEC D6, the batch path): own cost <= 3x the rules alone; >= 5,000 rows/s end to end on 2 cores;
peak heap flat from 20,000 to 200,000 rows.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import boto3

from loanstack.emulator.mariadb import MariaDB
from loanstack.emulator.rdsdata import DataApiBridge
from loanstack.functions import fresh as load_function

BUCKET = "s3-loandocuments-bench-123456789012"
ENV = {
    "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
    "DB_CLUSTER_ARN": "arn:aws:rds:us-east-1:123456789012:cluster:bench",
    "DB_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:bench",
}  # fmt: skip


def batch(rows: int) -> bytes:
    base = {"applicantId": "A-1", "loanType": "mortgage", "loanAmount": 300000, "termMonths": 360,
            "annualInterestRate": 6.5, "annualIncome": 150000, "monthlyDebtPayments": 800,
            "collateralValue": 400000}  # fmt: skip
    lines = [
        json.dumps({**base, "loanId": f"M-{i}", "creditScore": 560 + i % 290})
        if i % 1000
        else "{broken"
        for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


def child(endpoint: str, key: str, socket_dir: str, mode: str) -> None:
    """Runs in a fresh process: the handler on one file, then a JSON line of measurements."""
    loans = load_function("loan_validation")
    bridge = DataApiBridge(MariaDB(Path(socket_dir)), measure=False)
    s3, rds_data = (
        boto3.client("s3", endpoint_url=endpoint),
        bridge.install(boto3.client("rds-data")),
    )
    loans.s3_client, loans.rds_data_client = (
        (lambda: s3),
        (lambda: rds_data),
    )  # one client each, as deployed
    s3_wait = timed_reads(s3)
    if mode == "heap":
        tracemalloc.start()
    event = {"Records": [{"s3": {"bucket": {"name": BUCKET}, "object": {"key": key}}}]}
    start, cpu = time.perf_counter(), time.process_time()
    out = loans.handler(event, None)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    heap_peak = tracemalloc.get_traced_memory()[1] if mode == "heap" else 0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"wall": wall, "data_api": bridge.seconds, "calls": sum(bridge.calls.values()),
                      "own_cpu": cpu - bridge.cpu_seconds, "s3_wait": s3_wait[0],
                      "rules_us": rules_alone(loans) if mode == "time" else 0,
                      "summary": out["reports"][0]["summary"], "peak_mib": peak_kib / 1024,
                      "heap_mib": heap_peak / 2**20}))  # fmt: skip


def timed_reads(s3: Any) -> list[float]:
    """Seconds spent waiting in the object's reads (S3 here is a moto server in another process)."""
    spent = [0.0]
    get_object = s3.get_object

    def timed_get_object(**kwargs: Any) -> Any:
        response = get_object(**kwargs)
        body = response["Body"]
        read = body.read

        def timed_read(*args: Any) -> bytes:
            start = time.perf_counter()
            try:
                return bytes(read(*args))
            finally:
                spent[0] += time.perf_counter() - start

        body.read = timed_read
        return response

    s3.get_object = timed_get_object
    return spent


def rules_alone(loans: Any, rows: int = 20_000) -> float:
    """µs per row of `evaluate` on the bench's own applications, best of 3."""
    apps = [json.loads(line) for line in batch(rows).splitlines() if line != b"{broken"]
    limits = loans.thresholds()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for app in apps:
            loans.evaluate(app, limits)
        best = min(best, time.perf_counter() - start)
    return best / len(apps) * 1e6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:6])
        return
    sizes = [int(a) for a in sys.argv[1:]] or [20_000, 200_000]
    os.environ.update(ENV)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    results: list[dict[str, Any]] = []
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint)
        for _ in range(50):
            try:
                s3.create_bucket(Bucket=BUCKET)
                break
            except Exception:
                time.sleep(0.2)
        with tempfile.TemporaryDirectory(prefix="mdb", dir="/tmp") as tmp:
            server = MariaDB(Path(tmp))
            server.start()
            try:
                for rows in sizes:
                    server.reset()
                    key = f"incoming/bench-{rows}.jsonl"
                    s3.put_object(Bucket=BUCKET, Key=key, Body=batch(rows))
                    measured: dict[str, Any] = {"rows": rows}
                    for mode in ("time", "heap"):
                        server.reset()
                        run = subprocess.run([sys.executable, __file__, "--child", endpoint, key, tmp, mode],
                                             capture_output=True, text=True, check=True)  # fmt: skip
                        result = json.loads(run.stdout.strip().splitlines()[-1])
                        if mode == "time":
                            measured.update(result)
                        else:
                            measured["heap_mib"] = result["heap_mib"]
                    results.append(measured)
            finally:
                server.stop()
    finally:
        moto.terminate()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    for r in results:
        own = (r["wall"] - r["data_api"]) / r["rows"] * 1e6
        own_cpu = r["own_cpu"] / r["rows"] * 1e6
        s3_wait = r["s3_wait"] / r["rows"] * 1e6
        print(f"{r['rows']:>8} rows: rules alone {r['rules_us']:5.1f} µs/row | function's own cost {own:5.1f} µs/row "
              f"({own / r['rules_us']:.1f}x the rules; target <= 3x; CPU only: {own_cpu:.1f} µs/row, {own_cpu / r['rules_us']:.1f}x; reading S3: {s3_wait:.1f} µs/row) | end to end {r['rows'] / r['wall']:7,.0f} rows/s "
              f"in {r['wall']:.1f} s (target >= 5,000), {r['data_api']:.1f} s inside the Data API, {r['calls']} calls | "
              f"peak Python heap {r['heap_mib']:.1f} MiB, peak RSS {r['peak_mib']:.0f} MiB | {r['summary']}")  # fmt: skip
    if len(results) > 1:
        first, last = results[0], results[-1]
        print(f"{last['rows'] / first['rows']:.0f}x the rows -> {last['heap_mib'] / first['heap_mib']:.2f}x the peak heap, "
              f"{last['peak_mib'] / first['peak_mib']:.2f}x the peak RSS")  # fmt: skip


if __name__ == "__main__":
    main()
