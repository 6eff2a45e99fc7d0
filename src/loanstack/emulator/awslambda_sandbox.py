"""Lambda execution environments as warm worker processes (SPEC D4, D7), one per concurrent
execution of a function, as Lambda keeps them: a sandbox is made on the first invocation that
finds none free, reused by later invocations of the same function version and configuration,
and never shared by two invocations at once, so module globals are never shared across
concurrent executions (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html,
https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html).

The process model is the detached emulator's (`loanstack emulator start`): the function's CPU
runs beside the emulator instead of under its GIL. A timed-out invocation, or one a fault ends
mid-way (faults.py), is killed with its sandbox, as Lambda stops a runtime at its Timeout
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html); the next invocation
starts a new one. A sandbox whose process ends before the deadline (the handler called
`sys.exit`, the process was killed) answers Runtime.ExitError, as Lambda does; an idle one that
died is dropped, never handed out. The sandbox itself is awslambda_worker.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from loanstack.emulator.awslambda_worker import PROFILE

INIT_SECONDS = 10.0  # Lambda's init phase limit for on-demand functions
SRC = str(Path(__file__).resolve().parents[2])


@dataclass
class Answer:
    """What the sandbox answered: (payload, errored) or nothing (timed out, killed); its logs;
    the runtime's exit status ("exit status 1") when its process ended before the deadline."""

    outcome: tuple[str, bool] | None
    logs: list[str] = field(default_factory=list)
    exited: str | None = None


class Sandbox:
    """One worker process and its two pipes."""

    def __init__(self, key: str, init: dict[str, Any], env: dict[str, str]) -> None:
        self.key = key
        self.home = tempfile.mkdtemp(prefix="loanstack-sandbox-")
        to_child_r, self.to_child_w = os.pipe()
        self.from_child_r, from_child_w = os.pipe()
        self.process = subprocess.Popen(  # noqa: S603 (this interpreter running the worker, no shell)
            [
                sys.executable,
                "-m",
                "loanstack.emulator.awslambda_worker",
                str(to_child_r),
                str(from_child_w),
            ],
            env=env | isolated(self.home),
            stdin=subprocess.DEVNULL,
            pass_fds=(to_child_r, from_child_w),
            start_new_session=True,  # a Ctrl-C meant for the emulator's shell is the emulator's
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self.inbox = Connection(self.from_child_r, writable=False)
        self.outbox = Connection(self.to_child_w, readable=False)
        self.init_logs: list[str] = []
        self.init_error: dict[str, Any] | None = None
        self.ready = False  # the init phase has finished well (`wait_ready`)
        self.retired = False  # its function was deleted mid-invocation: killed once released
        self._send({"init": init})

    def _send(self, message: dict[str, Any]) -> None:
        self.outbox.send_bytes(json.dumps(message).encode())

    def wait_ready(self) -> bool:
        """Wait for the init phase: True when the code loaded, False when it failed (the error
        in `init_error`) or did not finish within INIT_SECONDS."""
        deadline = time.monotonic() + INIT_SECONDS
        while self.inbox.poll(max(0.0, deadline - time.monotonic())):
            message = json.loads(self.inbox.recv_bytes())
            if "log" in message:
                self.init_logs.append(message["log"])
            if "initError" in message:
                self.init_error = message["initError"]
                return False
            if message.get("ready"):
                return True
        self.init_error = {"errorType": "Runtime.InitTimeout", "errorMessage": "init timed out"}
        return False

    def invoke(self, event: Any, request_id: str, timeout: float, wait: float) -> Answer:
        """Run one invocation; None as the outcome when it has not answered within `wait`, an
        exit status when its process ended (or answered nonsense) before then."""
        answer = Answer(None)
        deadline = time.monotonic() + wait
        try:
            self._send({"event": event, "requestId": request_id, "timeout": timeout})
            while self.inbox.poll(max(0.0, deadline - time.monotonic())):
                message = json.loads(self.inbox.recv_bytes())
                if "log" in message:
                    answer.logs.append(message["log"])
                if "result" in message:
                    answer.outcome = (message["result"], bool(message["errored"]))
                    return answer
        except (EOFError, OSError, ValueError):  # it ended, or its reply is not ours: killed
            answer.exited = self.exit_status(deadline)
        return answer

    def exit_status(self, deadline: float) -> str:
        """How the process ended, worded as Lambda's Runtime.ExitError words it; a process that
        closed its pipe or answered nonsense but is still running is killed first."""
        try:
            code = self.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        if code < 0 and -code in signal.valid_signals():
            return f"signal: {signal.Signals(-code).name.removeprefix('SIG').lower()}"
        return f"exit status {code}"

    def kill(self) -> None:
        """The process and its pipes, gone; waited for, so no zombie is left."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for channel in (self.inbox, self.outbox):
            channel.close()
        shutil.rmtree(self.home, ignore_errors=True)


class Sandboxes:
    """The emulator's warm sandboxes, idle ones by function key; busy ones are held by their
    invocation. Emptied (every process killed) when the emulator stops."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle: dict[str, list[Sandbox]] = {}
        self.busy: set[Sandbox] = set()
        self.started = 0  # sandboxes started (cold starts), for tests and benchmarks

    def acquire(self, key: str, init: dict[str, Any], env: dict[str, str]) -> Sandbox:
        with self.lock:
            stale = [
                s for k, free in self.idle.items() if k != key and same_fn(k, key) for s in free
            ]
            for k in [k for k in self.idle if k != key and same_fn(k, key)]:
                del self.idle[k]
            free = self.idle.get(key) or []
            stale += [s for s in free if s.process.poll() is not None]  # died idle (killed, OOM)
            free[:] = [s for s in free if s.process.poll() is None]
            sandbox = free.pop() if free else None
            if sandbox is None:
                self.started += 1
        for old in stale:  # an earlier version or configuration of the function: never reused
            old.kill()
        if sandbox is None:
            sandbox = Sandbox(key, init, env)
        with self.lock:
            self.busy.add(sandbox)
        return sandbox

    def release(self, sandbox: Sandbox, reusable: bool) -> None:
        with self.lock:
            self.busy.discard(sandbox)
            if reusable and not sandbox.retired:
                self.idle.setdefault(sandbox.key, []).append(sandbox)
                return
        sandbox.kill()

    def forget(self, function_name: str) -> None:
        """Kill the idle sandboxes of a deleted function: nothing can invoke them again, and
        each held ~44 MB until the emulator stopped (one per deploy and destroy of the dev
        stack on the detached emulator, which lives for a whole session of tests). A busy one
        finishes its invocation, then is killed (`release`): Lambda documents no cut-short
        invocation on DeleteFunction, and shuts an execution environment down only between
        invocations (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html#runtimes-lifecycle-shutdown);
        the function's Timeout still bounds it."""
        with self.lock:
            keys = [k for k in self.idle if function_of(k) == function_name]
            gone = [s for k in keys for s in self.idle.pop(k)]
            for sandbox in self.busy:
                if function_of(sandbox.key) == function_name:
                    sandbox.retired = True
        for sandbox in gone:
            sandbox.kill()

    def close(self) -> None:
        with self.lock:
            every = [s for free in self.idle.values() for s in free] + list(self.busy)
            self.idle, self.busy = {}, set()
        for sandbox in every:
            sandbox.kill()

    def processes(self) -> list[int]:
        """The pids of every live sandbox (tests look at them)."""
        with self.lock:
            every = [s for free in self.idle.values() for s in free] + list(self.busy)
        return [s.process.pid for s in every if s.process.poll() is None]


def function_of(key_or_arn: str) -> str:
    """The function's name in a sandbox key, an ARN (qualified or not, partial or full) or a
    name with a qualifier (`name:version`), as DeleteFunction accepts them."""
    arn = key_or_arn.split("|", 1)[0]
    return arn.split(":function:")[-1].split(":", 1)[0]


def same_fn(a: str, b: str) -> bool:
    return a.split("|", 1)[0] == b.split("|", 1)[0]


def key_of(arn: str, init: dict[str, Any], env: dict[str, str]) -> str:
    """The function's ARN and a digest of what a sandbox was made with (code, configuration,
    environment): another version or configuration needs a new sandbox."""
    digest = hashlib.sha256(json.dumps([init, env], sort_keys=True).encode()).hexdigest()
    return f"{arn}|{digest}"


def init_message(fn: Any, log_format: str, log_level: str) -> dict[str, Any]:
    return {
        "code": fn.code_bytes.decode("latin-1"),
        "handler": fn.handler,
        "name": fn.function_name,
        "arn": fn.function_arn,
        "memory": int(fn.memory_size or 128),
        "logFormat": log_format,
        "logLevel": log_level,
    }


HOST_VARIABLES = ("PATH", "LANG", "LD_LIBRARY_PATH")  # the interpreter's own, as Lambda has them


def process_environment(values: dict[str, str], fn: Any) -> dict[str, str]:
    """The sandbox's environment: only what Lambda's runtime has
    (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime):
    PATH, LANG, LD_LIBRARY_PATH, TZ, Lambda's reserved variables and the function's own
    (`values`, pointed at the emulator), never the developer's; plus what the worker itself
    needs, PYTHONPATH (this package's path, to import the worker; removed by the worker before
    the function's code loads). HOME and the AWS config files are each sandbox's (`isolated`)."""
    base = {k: os.environ[k] for k in HOST_VARIABLES if k in os.environ}
    reserved = {
        "TZ": ":UTC",
        "_HANDLER": str(fn.handler),
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.run_time}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size or 128),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.function_name}",
    }
    bench = {k: os.environ[k] for k in (PROFILE,) if os.environ.get(k)}  # popped by the worker
    return base | reserved | values | bench | {"PYTHONPATH": SRC}


def isolated(home: str) -> dict[str, str]:
    """A HOME of the sandbox's own, and AWS config and credentials files that do not exist, so
    boto3 in the function never reads the developer's ~/.aws (Lambda's runtime has none)."""
    nothing = os.path.join(home, "no-such-file")
    return {"HOME": home, "AWS_CONFIG_FILE": nothing, "AWS_SHARED_CREDENTIALS_FILE": nothing}
