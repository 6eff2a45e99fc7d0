"""One Lambda execution environment as a process of its own (awslambda_sandbox.py starts it).

Lambda runs each concurrent execution of a function in a sandbox of its own, initialises the
function's code there once (module globals, clients made at import) and reuses the sandbox for
later invocations; no two concurrent executions share globals
(https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html). This process is
such a sandbox: its environment is the function's (set when it started), it loads the code once,
then runs one invocation at a time on its main thread, sending each log line as it is written
and then the result; its AWS calls go to the emulator's endpoint like any SDK client's. It
imports nothing of moto or the emulator: only this module and the logging formats it shares.

The messages, one JSON document each over the pipes the emulator holds (`Connection`):
to the sandbox `{"init": {...}}` once, then `{"event": ..., "requestId": ..., "timeout": s}`;
from it `{"ready": true}` or `{"initError": {...}}`, then per invocation any number of
`{"log": text}` and one `{"result": payload, "errored": bool}`. What the function writes to
stdout or stderr is sent as log lines, as Lambda puts both in the log stream
(https://docs.aws.amazon.com/lambda/latest/dg/python-logging.html).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import threading
import time
import traceback
import types
import zipfile
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from loanstack.emulator.awslambda_logs import JsonFormatter, NotPlumbing

# A directory, set only by a benchmark (bench/emulated.py's LOANSTACK_BENCH_CPROFILE): the
# sandbox runs under cProfile and leaves its profile there when the emulator closes its pipe.
PROFILE = "LOANSTACK_BENCH_CPROFILE"


class Context:
    """The parts of Lambda's context object the project's handlers may use (no X-Ray)."""

    def __init__(self, name: str, memory: int, arn: str, request_id: str, timeout: float) -> None:
        self.function_name = name
        self.memory_limit_in_mb = memory
        self.invoked_function_arn = arn
        self.aws_request_id = request_id
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load(code: bytes, handler: str, function_name: str) -> types.ModuleType:
    """The handler's module from the function's deployment package (a zip), executed once."""
    module_name, _, function = handler.rpartition(".")
    with zipfile.ZipFile(io.BytesIO(code)) as archive:
        source = archive.read(f"{module_name}.py").decode()
    module = types.ModuleType(f"lambda_{function_name.replace('-', '_')}")
    exec(compile(source, f"{function_name}/{module_name}.py", "exec"), module.__dict__)  # noqa: S102 (the stack's own function code, run as Lambda runs it)
    module.__dict__["__handler__"] = module.__dict__[function]
    return module


def error_of(exc: BaseException, request_id: str, json_format: bool) -> tuple[dict[str, Any], str]:
    """The error answer and the log text of a handler's (or the init's) exception."""
    error: dict[str, Any] = {"errorMessage": str(exc), "errorType": type(exc).__name__}
    if json_format:
        full = error | {
            "requestId": request_id,
            "stackTrace": traceback.format_tb(exc.__traceback__),
        }
        return error, json.dumps(full) + "\n"
    return error, "".join(traceback.format_exception(exc))


class Streamed(logging.Handler):
    """Each record of an invocation to the emulator as it is written, so that the lines logged
    before a timeout reach the log group although the sandbox is then killed."""

    def __init__(self, channel: Connection) -> None:
        super().__init__()
        self.channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        try:
            send(self.channel, {"log": self.format(record) + "\n"})
        except Exception:  # a log line must never fail the handler
            self.handleError(record)


_send_lock = threading.Lock()  # a handler's own threads may log or print while it answers


def send(channel: Connection, message: dict[str, Any]) -> None:
    data = json.dumps(message).encode()
    with _send_lock:
        channel.send_bytes(data)


class LogStream(io.TextIOBase):
    """stdout or stderr of the function: each complete line sent as a log line; a partial
    line when flushed (the worker flushes before each answer)."""

    def __init__(self, channel: Connection) -> None:
        super().__init__()
        self.channel = channel
        self.pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        lines = (self.pending + text).split("\n")
        self.pending = lines.pop()
        for line in lines:
            self._out(line + "\n")
        return len(text)

    def flush(self) -> None:
        if self.pending:
            line, self.pending = self.pending, ""
            self._out(line + "\n")

    def _out(self, line: str) -> None:
        with contextlib.suppress(OSError):  # the emulator is gone: nowhere to write
            send(self.channel, {"log": line})


def flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        stream.flush()


def marshal(result: Any) -> dict[str, Any]:
    """The answer of a handler's result; one that is not JSON answers Runtime.MarshalError, as
    Lambda's Python runtime does (https://docs.aws.amazon.com/lambda/latest/dg/python-handler.html)."""
    try:
        return {"result": json.dumps(result), "errored": False}
    except (TypeError, ValueError) as exc:
        error = {
            "errorMessage": f"Unable to marshal response: {exc}",
            "errorType": "Runtime.MarshalError",
        }
        return {"result": json.dumps(error), "errored": True}


def serve(inbox: Connection, outbox: Connection, after: Callable[[], None] | None = None) -> None:
    """Init once, then invocations until the emulator closes the pipe; `after` each answer."""
    init = json.loads(inbox.recv_bytes())["init"]
    json_format = init["logFormat"] == "JSON"
    root = logging.getLogger()
    root.setLevel(init["logLevel"])
    streamed = Streamed(outbox)
    streamed.addFilter(NotPlumbing())
    root.addHandler(streamed)
    try:
        module = load(init["code"].encode("latin-1"), init["handler"], init["name"])
    except Exception as exc:
        error, text = error_of(exc, "", json_format)
        flush_output()
        send(outbox, {"initError": error, "log": text})
        return
    flush_output()
    send(outbox, {"ready": True})
    while True:
        try:
            request = json.loads(inbox.recv_bytes())
        except EOFError:
            return
        request_id = request["requestId"]
        if json_format:
            streamed.setFormatter(JsonFormatter(request_id))
        context = Context(
            init["name"], init["memory"], init["arn"], request_id, float(request["timeout"])
        )
        event = request["event"]
        try:
            result = module.__dict__["__handler__"](event if event is not None else {}, context)
            answer = marshal(result)
        except Exception as exc:
            error, text = error_of(exc, request_id, json_format)
            send(outbox, {"log": text})
            answer = {"result": json.dumps(error), "errored": True}
        finally:
            flush_output()  # also before a sys.exit leaves the loop: the lines printed so far
        send(outbox, answer)
        if after is not None:
            after()


def main() -> None:
    """The pipes' file descriptors are the arguments; stdout and stderr go to the log stream;
    the path to this module is not the function's."""
    inbox = Connection(int(sys.argv[1]), writable=False)
    outbox = Connection(int(sys.argv[2]), readable=False)
    sys.stdout = LogStream(outbox)
    sys.stderr = LogStream(outbox)
    own = os.environ.pop("PYTHONPATH", "")
    sys.path[:] = [p for p in sys.path if p != own]
    profiles = os.environ.pop(PROFILE, "")
    if not profiles:
        serve(inbox, outbox)
        return
    import cProfile  # a benchmark's profile of the function's own process (docs/benchmarks.md)

    profile = cProfile.Profile()
    path = os.path.join(profiles, f"sandbox-{os.getpid()}.prof")

    def dump() -> None:  # after each invocation: the emulator kills its sandboxes as it stops
        profile.disable()
        profile.dump_stats(path)
        profile.enable()

    profile.enable()
    serve(inbox, outbox, dump)


if __name__ == "__main__":
    main()
