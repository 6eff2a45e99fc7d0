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
starts a new one. The sandbox itself is awslambda_worker.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

INIT_SECONDS = 10.0  # Lambda's init phase limit for on-demand functions
SRC = str(Path(__file__).resolve().parents[2])


@dataclass
class Answer:
    """What the sandbox answered: (payload, errored) or nothing (timed out, killed); its logs."""

    outcome: tuple[str, bool] | None
    logs: list[str] = field(default_factory=list)


class Sandbox:
    """One worker process and its two pipes."""

    def __init__(self, key: str, init: dict[str, Any], env: dict[str, str]) -> None:
        self.key = key
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
            env=env,
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
        """Run one invocation; None as the outcome when it has not answered within `wait`."""
        answer = Answer(None)
        try:
            self._send({"event": event, "requestId": request_id, "timeout": timeout})
        except OSError:
            return answer
        deadline = time.monotonic() + wait
        try:
            while self.inbox.poll(max(0.0, deadline - time.monotonic())):
                message = json.loads(self.inbox.recv_bytes())
                if "log" in message:
                    answer.logs.append(message["log"])
                if "result" in message:
                    answer.outcome = (message["result"], bool(message["errored"]))
                    return answer
        except (EOFError, OSError):  # the sandbox died: answered as a timeout
            pass
        return answer

    def kill(self) -> None:
        """The process and its pipes, gone; waited for, so no zombie is left."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for channel in (self.inbox, self.outbox):
            channel.close()


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
            if reusable:
                self.idle.setdefault(sandbox.key, []).append(sandbox)
                return
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


def process_environment(values: dict[str, str]) -> dict[str, str]:
    """The sandbox's environment: the function's variables over a base without the emulator's
    own AWS or loanstack settings (Lambda's sandbox has only the function's), and the path to
    the worker module (removed by the worker before the function's code loads)."""
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOANSTACK_", "MOTO_"))
    }
    return base | values | {"PYTHONPATH": SRC}
