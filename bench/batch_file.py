"""JSON Lines migration batches through the validation handler: where the time goes, and memory.

S3 is a moto server in its own process on loopback (so each object really streams over HTTP),
and the Data API goes to a private MariaDB through the emulator's Data API bridge, whose pool
gives each concurrent caller a MariaDB connection of its own. For each size and each
concurrency N, a fresh child process runs N batch files at once: N threads, each the handler of
its own copy of the function (its own globals and clients, as N Lambda execution environments
would have) on its own S3 object with its own loan ids. It prints, side by side:

- the rules alone: schema check + decision per application (`evaluate`), µs per row, one thread;
- end to end: rows per second of all N files (all rows / wall time from start to the last file);
- the database's share, three ways, µs per row (each summed over the callers / rows):
  the Data API round trip (time inside the Data API calls: the emulator's bridge, its checks,
  pool and binding, PyMySQL, and MariaDB); of it, the database's time (the bridge's MariaDB
  round trips: from sending each statement to reading its result's last packet,
  `RoundTrips`); and mariadbd's CPU time (from /proc): the server's own work. The first minus
  the second is what the emulator adds that AWS does not; the second minus the third is time
  the statement waited (the wire, scheduling: large when the machine is loaded);
- the function's own cost: with N = 1, handler time minus Data API time, µs per row (reading,
  parsing, deciding, encoding chunks, botocore, the report); for any N, its CPU time;
- peak Python heap (tracemalloc), measured in one more child so that tracing does not slow
  the timed runs; RSS is shown for reference.

Each timed figure is given as min/median/max over --runs runs (default 3), each on an empty
table. The threads share one interpreter (the GIL): at N > 1 the Python work of the callers is
serialised, as it is not across Lambda environments, so rows/s at N > 1 here is a lower bound.

Run: .venv/bin/python -m bench.batch_file [rows ...] [--concurrency N ...] [--runs R]
     (default: 20000 200000, concurrency 1; e.g. `... 20000 --concurrency 1 4`: each file has
     `rows` rows, so N files are N x rows)
Targets (SPEC D6, the batch path): own cost <= 3x the rules alone; >= 5,000 rows/s end to end on
2 cores; peak heap flat from 20,000 to 200,000 rows. Issue 23: the database's share <= 27 µs/row.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import boto3

from loanstack.emulator.mariadb import MariaDB
from loanstack.emulator.rdsdata_bridge import DataApiBridge
from loanstack.functions import fresh as load_function

BUCKET = "s3-loandocuments-bench-123456789012"
ENV = {
    "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
    "DB_CLUSTER_ARN": "arn:aws:rds:us-east-1:123456789012:cluster:bench",
    "DB_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:bench",
}  # fmt: skip


def batch(rows: int, prefix: str = "M") -> bytes:
    """A JSON Lines file of `rows` lines (one in 1,000 broken), loan ids `<prefix>-<i>`."""
    base = {"applicantId": "A-1", "loanType": "mortgage", "loanAmount": 300000, "termMonths": 360,
            "annualInterestRate": 6.5, "annualIncome": 150000, "monthlyDebtPayments": 800,
            "collateralValue": 400000}  # fmt: skip
    lines = [
        json.dumps({**base, "loanId": f"{prefix}-{i}", "creditScore": 560 + i % 290})
        if i % 1000
        else "{broken"
        for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


def file_key(rows: int, index: int) -> str:
    return f"incoming/bench-{rows}-{index}.jsonl"


class Caller:
    """One execution environment: its own copy of the function, S3 and rds-data clients, and
    Data API bridge (its own counters), on the shared MariaDB pool."""

    def __init__(self, endpoint: str, server: MariaDB) -> None:
        loans: Any = load_function("loan_validation")
        self.bridge = DataApiBridge(server, measure=False)
        s3 = boto3.client("s3", endpoint_url=endpoint)
        rds_data = self.bridge.install(boto3.client("rds-data"))
        loans.s3_client, loans.rds_data_client = (lambda: s3), (lambda: rds_data)  # one client each
        self.loans = loans
        self.s3_wait = timed_reads(s3)
        self.out: dict[str, Any] = {}
        self.error: BaseException | None = None

    def run(self, key: str, start: threading.Barrier) -> None:
        event = {"Records": [{"s3": {"bucket": {"name": BUCKET}, "object": {"key": key}}}]}
        start.wait()
        try:
            self.out = self.loans.handler(event, None)
        except BaseException as exc:  # re-raised by the child's main thread
            self.error = exc


def child(endpoint: str, socket_dir: str, mode: str, keys_json: str) -> None:
    """Runs in a fresh process: the handler on N files at once, then a JSON line of measurements."""
    keys: list[str] = json.loads(keys_json)
    server = MariaDB(Path(socket_dir))  # its pool: one connection per concurrent caller
    callers = [Caller(endpoint, server) for _ in keys]  # clients made before any thread starts
    start = threading.Barrier(len(keys) + 1)
    threads = [
        threading.Thread(target=c.run, args=(key, start))
        for c, key in zip(callers, keys, strict=True)
    ]
    if mode == "heap":
        tracemalloc.start()
    for thread in threads:
        thread.start()
    start.wait()
    began, cpu = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.join()
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    heap_peak = tracemalloc.get_traced_memory()[1] if mode == "heap" else 0
    for c in callers:
        if c.error is not None:
            raise c.error
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    bridges = [c.bridge for c in callers]
    print(json.dumps({"wall": wall, "data_api": sum(b.seconds for b in bridges),
                      "round_trips": sum(b.round_trips.seconds for b in bridges),
                      "calls": sum(sum(b.calls.values()) for b in bridges),
                      "own_cpu": cpu - sum(b.cpu_seconds for b in bridges),
                      "s3_wait": sum(c.s3_wait[0] for c in callers),
                      "rules_us": rules_alone(callers[0].loans) if mode == "time" else 0,
                      "summaries": [c.out["reports"][0]["summary"] for c in callers],
                      "connections": server.pool.peak, "peak_mib": peak_kib / 1024,
                      "heap_mib": heap_peak / 2**20}))  # fmt: skip
    server.pool.close()


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


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.batch_file", description=__doc__)
    parser.add_argument("rows", type=int, nargs="*", default=[20_000, 200_000],
                        help="rows per file (default: 20000 200000)")  # fmt: skip
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1], metavar="N",
                        help="batch files processed at once, by N threads (default: 1)")  # fmt: skip
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each (default: 3)")
    args = parser.parse_args(argv)
    if min(args.concurrency) < 1 or args.runs < 1 or min(args.rows, default=1) < 1:
        parser.error("rows, --concurrency and --runs must be at least 1")
    return args


def spread(values: list[float], fmt: str) -> str:
    """min/median/max, as `fmt` formats each."""
    return "/".join(format(v, fmt) for v in (min(values), statistics.median(values), max(values)))


def measure(
    endpoint: str, tmp: str, server: MariaDB, rows: int, n: int, runs: int
) -> dict[str, Any]:
    """`runs` timed children and one heap child, each on an empty database."""
    keys = json.dumps([file_key(rows, i) for i in range(n)])
    timed: list[dict[str, Any]] = []
    for mode in ["time"] * runs + ["heap"]:
        server.reset()
        db_cpu = server_cpu(server)
        run = subprocess.run([sys.executable, __file__, "--child", endpoint, tmp, mode, keys],
                             capture_output=True, text=True, check=True)  # fmt: skip
        result = json.loads(run.stdout.strip().splitlines()[-1])
        result["server_cpu"] = server_cpu(server) - db_cpu
        with server.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM loan_decisions")
            result["stored"] = cur.fetchone()[0]
        if result["stored"] != n * (rows - len(range(0, rows, 1000))):  # one line in 1,000 broken
            raise RuntimeError(f"{result['stored']} rows stored for {n} files of {rows} rows")
        if mode == "time":
            timed.append(result)
        else:
            heap = result["heap_mib"]
    return {"rows": rows, "files": n, "runs": timed, "heap_mib": heap}


def server_cpu(server: MariaDB) -> float:
    """CPU seconds mariadbd has used (user + system, from /proc): the server's own work,
    whatever the callers' threads were waiting for."""
    if server.process is None:
        return 0.0
    fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(m: dict[str, Any]) -> str:
    total, runs = m["rows"] * m["files"], m["runs"]
    rules = statistics.median(r["rules_us"] for r in runs)
    rate = [total / r["wall"] for r in runs]
    db = [r["data_api"] / total * 1e6 for r in runs]
    round_trips = [r["round_trips"] / total * 1e6 for r in runs]
    own_cpu = [r["own_cpu"] / total * 1e6 for r in runs]
    server = [r["server_cpu"] / total * 1e6 for r in runs]
    s3_wait = statistics.median(r["s3_wait"] / total * 1e6 for r in runs)
    own = ""
    if m["files"] == 1:  # wall time minus Data API time means something with one caller only
        own_wall = [(r["wall"] - r["data_api"]) / total * 1e6 for r in runs]
        own = f"function's own cost {spread(own_wall, '.1f')} µs/row ({statistics.median(own_wall) / rules:.1f}x the rules; target <= 3x), "
    last = runs[-1]
    return (f"{m['rows']:>7} rows x {m['files']} files at once: end to end {spread(rate, ',.0f')} rows/s "
            f"(wall {spread([r['wall'] for r in runs], '.2f')} s; target >= 5,000) | database share: "
            f"Data API round trip {spread(db, '.1f')} µs/row, of it the database's time (MariaDB round trips) {spread(round_trips, '.1f')} µs/row "
            f"(target <= 27), mariadbd's CPU {spread(server, '.1f')} µs/row | {own}own CPU {spread(own_cpu, '.1f')} µs/row, "
            f"rules alone {rules:.1f} µs/row, reading S3 {s3_wait:.1f} µs/row | {last['calls']} Data API calls, "
            f"{last['connections']} MariaDB connections at once, {last['stored']:,} rows stored | peak Python heap {m['heap_mib']:.1f} MiB, "
            f"peak RSS {last['peak_mib']:.0f} MiB | {last['summaries'][0]}")  # fmt: skip


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:6])
        return
    args = arguments(sys.argv[1:])
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
                for rows in args.rows:
                    for i in range(max(args.concurrency)):  # each file its own loan ids
                        s3.put_object(
                            Bucket=BUCKET, Key=file_key(rows, i), Body=batch(rows, f"F{i}")
                        )
                    for n in args.concurrency:
                        results.append(measure(endpoint, tmp, server, rows, n, args.runs))
            finally:
                server.stop()
    finally:
        moto.terminate()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.platform()}; {args.runs} timed runs each, min/median/max"
    )
    for m in results:
        print(report(m))
    single = [m for m in results if m["files"] == 1]
    if len(single) > 1:
        first, last = single[0], single[-1]
        print(f"{last['rows'] / first['rows']:.0f}x the rows -> {last['heap_mib'] / first['heap_mib']:.2f}x the peak heap, "
              f"{last['runs'][-1]['peak_mib'] / first['runs'][-1]['peak_mib']:.2f}x the peak RSS")  # fmt: skip


if __name__ == "__main__":
    main()
