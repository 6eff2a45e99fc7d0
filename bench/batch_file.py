"""A JSON Lines migration batch through the validation handler: time, Data API calls, memory.

S3 is a moto server in its own process on loopback (so the object really streams over HTTP),
and the Data API goes to a private MariaDB through the test bridge. Each size runs in a fresh
child process whose peak resident memory (ru_maxrss) is reported: the handler, boto3 and the
bridge, without the emulator's copy of the file.

Peak Python heap (tracemalloc) is the figure that must stay flat; RSS is shown for reference.

Run: .venv/bin/python bench/batch_file.py [rows ...]   (default: 20000 200000)
Memory must not grow with the row count beyond noise (issue 4).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.helpers import load_function  # noqa: E402

from loanstack.emulator.dataapi import DataApiBridge, MariaDB  # noqa: E402

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


def child(endpoint: str, key: str, socket_dir: str) -> None:
    """Runs in a fresh process: the handler on one file, then a JSON line of measurements."""
    loans = load_function("loan_validation")
    bridge = DataApiBridge(MariaDB(Path(socket_dir)))
    s3, rds_data = (
        boto3.client("s3", endpoint_url=endpoint),
        bridge.install(boto3.client("rds-data")),
    )
    loans.s3_client, loans.rds_data_client = (
        (lambda: s3),
        (lambda: rds_data),
    )  # one client each, as deployed
    tracemalloc.start()
    event = {"Records": [{"s3": {"bucket": {"name": BUCKET}, "object": {"key": key}}}]}
    start = time.perf_counter()
    out = loans.handler(event, None)
    wall = time.perf_counter() - start
    heap_peak = tracemalloc.get_traced_memory()[1]
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"wall": wall, "calls": bridge.calls, "summary": out["reports"][0]["summary"],
                      "peak_mib": peak_kib / 1024, "heap_mib": heap_peak / 2**20}))  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:5])
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
                    run = subprocess.run([sys.executable, __file__, "--child", endpoint, key, tmp],
                                         capture_output=True, text=True, check=True)  # fmt: skip
                    results.append(
                        {"rows": rows, **json.loads(run.stdout.strip().splitlines()[-1])}
                    )
            finally:
                server.stop()
    finally:
        moto.terminate()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    for r in results:
        print(f"{r['rows']:>8} rows: {r['wall']:7.1f} s, {r['rows'] / r['wall']:7,.0f} rows/s, "
              f"Data API calls {r['calls']}, peak Python heap {r['heap_mib']:.1f} MiB, peak RSS {r['peak_mib']:.0f} MiB, "
              f"decisions {r['summary']}")  # fmt: skip
    if len(results) > 1:
        first, last = results[0], results[-1]
        print(f"{last['rows'] / first['rows']:.0f}x the rows -> {last['heap_mib'] / first['heap_mib']:.2f}x the peak heap, "
              f"{last['peak_mib'] / first['peak_mib']:.2f}x the peak RSS")  # fmt: skip


if __name__ == "__main__":
    main()
