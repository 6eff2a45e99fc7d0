"""Where a detached emulator's time goes, for bench/migrate.py and bench/verify.py: run with
`LOANSTACK_BENCH_PROFILE=<file>` and `bench/emulated.py` starts the emulator through this module
instead of `loanstack emulator start --detach` (`python -m bench.emulator_profile <file>`).

cProfile sees one thread and doubles the cost of what it sees; the emulator's work is all in
threads (werkzeug's request threads, the asynchronous invocations, the handlers). So this samples
every thread's stack (`sys._current_frames`) every few milliseconds and sorts each sample into a
category (the function's own code, its boto3 client side, S3 serving, the Data API bridge, HTTP
serving, waiting), and measures each invocation's CPU with `time.thread_time()` (the handler's
thread: the function's own work and its client side, not the requests it makes). A sample only
says where a thread is, not whether it holds the GIL: a thread runnable but waiting for the GIL
counts where it waits. The report is written when the emulator stops (SIGTERM).
"""

from __future__ import annotations

import collections
import json
import signal
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

INTERVAL_SECONDS = 0.002
BLOCKING = {
    "recv", "recv_into", "readinto", "read", "readline", "accept", "select", "poll", "wait",
    "sleep", "acquire", "_wait_for_tstate_lock", "join", "sendall", "send", "connect",
}  # fmt: skip


def category(frames: list[types.FrameType]) -> str:
    """The sample's category from its stack (root first)."""
    files = [f.f_code.co_filename for f in frames]
    leaf = frames[-1].f_code.co_name if frames else ""
    blocked = leaf in BLOCKING
    if any("awslambda.py" in f for f in files) and any("index.py" in f for f in files):
        if blocked:
            return "invocation: waiting (its AWS calls, the GIL)"
        if any("/botocore/" in f or "/boto3/" in f or "/urllib3/" in f for f in files):
            return "invocation: boto3/botocore client side"
        return "invocation: function's own code"
    if any("awslambda" in f for f in files):
        return "invocation: emulator's Lambda plumbing" + (" (waiting)" if blocked else "")
    if any("rdsdata" in f for f in files) or any("/pymysql/" in f for f in files):
        return "Data API bridge" + (" (waiting on MariaDB)" if blocked else "")
    if any("/moto/s3/" in f for f in files):
        return "S3 serving (moto)"
    if any("/moto/logs/" in f for f in files):
        return "CloudWatch Logs (moto)"
    if any("/werkzeug/" in f or "socketserver" in f for f in files):
        return "HTTP serving: idle" if blocked else "HTTP serving and moto dispatch"
    return "other: idle" if blocked else "other"


class Sampler:
    def __init__(self) -> None:
        self.categories: collections.Counter[str] = collections.Counter()
        self.inclusive: collections.Counter[str] = collections.Counter()
        self.leaf: collections.Counter[str] = collections.Counter()
        self.samples = 0
        self.invocations: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        me = threading.get_ident()
        while not self.stop.wait(INTERVAL_SECONDS):
            self.samples += 1
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                frames: list[types.FrameType] = []
                f: types.FrameType | None = frame
                while f is not None:
                    frames.append(f)
                    f = f.f_back
                frames.reverse()
                cat = category(frames)
                self.categories[cat] += 1
                if "idle" in cat:
                    continue
                names = {f"{where(f)}" for f in frames}
                self.inclusive.update(names)
                self.leaf[f"{cat} | {where(frames[-1])}"] += 1

    def report(self, path: Path, wall: float) -> None:
        seconds = {k: round(v * INTERVAL_SECONDS, 2) for k, v in self.categories.most_common()}
        doc: dict[str, Any] = {
            "wall_s": round(wall, 1),
            "samples": self.samples,
            "thread_seconds_by_category": seconds,
            "invocations": len(self.invocations),
            "invocation_cpu_s": round(sum(self.invocations), 2),
            "top_inclusive": self.inclusive.most_common(60),
            "top_leaf": self.leaf.most_common(60),
        }
        path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def where(frame: types.FrameType) -> str:
    code = frame.f_code
    return f"{'/'.join(code.co_filename.split('/')[-2:])}:{code.co_name}"


def time_invocations(sampler: Sampler) -> None:
    """Each invocation's CPU on its own thread (`time.thread_time`)."""
    from loanstack.emulator import awslambda

    handle = awslambda.Invocation.handle

    def timed(self: Any) -> tuple[str, bool, str]:
        begin = time.thread_time()
        try:
            return handle(self)
        finally:
            sampler.invocations.append(time.thread_time() - begin)

    awslambda.Invocation.handle = timed  # type: ignore[method-assign]


def serve(out: Path) -> None:
    """`loanstack emulator start --port 0` in this process, sampled; the report on SIGTERM."""
    from rich.console import Console

    from loanstack.emulator import inprocess

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    sampler = Sampler()
    time_invocations(sampler)
    thread = threading.Thread(target=sampler.run, name="bench-sampler", daemon=True)
    begin = time.monotonic()
    thread.start()
    try:
        inprocess.serve(Console(), 0)
    finally:
        sampler.stop.set()
        thread.join()
        sampler.report(out, time.monotonic() - begin)


def main() -> None:
    serve(Path(sys.argv[1]))


if __name__ == "__main__":
    main()
