"""Lambda functions run on this Python, against the emulator (SPEC D4).

moto would run them in Docker. The detached emulator runs each concurrent execution in a warm
sandbox process (`in_sandbox`, awslambda_sandbox.py: as Lambda keeps execution environments).
The embedded one runs them in this process, as threads: the function's deployed code (the zip
moto stored) is loaded as a fresh module and its handler called with the function's own environment, its AWS calls
sent back to the emulator. Invocations of one function run concurrently (issue 15): each gets its
own module and its own boto3 session, and the process environment is a lease that invocations
with the same environment share and one with another environment waits for (see `Lease`).

S3 notifications invoke asynchronously, as Lambda does (`awslambda_async.py`): the upload returns at
once, the function runs in the background up to its reserved concurrency, a failed event is
retried twice and then sent to the function's dead-letter queue.

Each invocation logs as Lambda does (`awslambda_logs.py`); the function's configuration that moto
drops or mistakes (LoggingConfig, DeadLetterConfig, account settings, updates from a template) is
`awslambda_config.py`'s.
"""

from __future__ import annotations

import ctypes
import datetime
import io
import json
import logging
import threading
import time
import traceback
import types
import uuid
import zipfile
from typing import Any

from loanstack.botocore_models import share_models
from loanstack.emulator import fence
from loanstack.emulator.awslambda_logs import (
    CREATOR,
    InvocationThreads,
    JsonFormatter,
    NotPlumbing,
    logging_config,
    own_lineage,
    to_cloudwatch,
)
from loanstack.emulator.awslambda_sandbox import (
    Sandboxes,
    init_message,
    key_of,
    process_environment,
)
from loanstack.emulator.lease import Lease
from loanstack.emulator.state import STATE

__all__ = ["Lease"]  # also here, where the invocations use it

_client_lock = threading.Lock()  # botocore's client creation is not thread-safe (boto3 #801)


def install(endpoint_url: str) -> None:
    """Where the functions' AWS calls go (the emulator's URL); moto itself is patched by
    `patches.install`."""
    STATE.route(endpoint_url)


class Context:
    """The parts of Lambda's context object the project's handlers may use."""

    def __init__(self, fn: Any) -> None:
        self.function_name = fn.function_name
        self.memory_limit_in_mb = fn.memory_size
        self.invoked_function_arn = fn.function_arn
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + int(fn.timeout)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load(fn: Any) -> types.ModuleType:
    module_name, _, function = fn.handler.rpartition(".")
    with zipfile.ZipFile(io.BytesIO(fn.code_bytes)) as archive:
        source = archive.read(f"{module_name}.py").decode()
    module = types.ModuleType(f"lambda_{fn.function_name.replace('-', '_')}")
    exec(compile(source, f"{fn.function_name}/{module_name}.py", "exec"), module.__dict__)  # noqa: S102 (the stack's own function code, run as Lambda runs it)
    module.__dict__["__handler__"] = module.__dict__[function]
    if isinstance(module.__dict__.get("boto3"), types.ModuleType):
        module.__dict__["boto3"] = OwnBoto3()
    return module


class OwnBoto3:
    """`boto3` as one invocation sees it: its own session, created when the invocation starts
    (so under its environment lease), clients created one at a time."""

    def __init__(self) -> None:
        import boto3

        self._boto3 = boto3
        with _client_lock:
            self._session = share_models(boto3.session.Session())

    def client(self, *args: Any, **kwargs: Any) -> Any:
        with _client_lock:
            return self._session.client(*args, **kwargs)

    def resource(self, *args: Any, **kwargs: Any) -> Any:
        with _client_lock:
            return self._session.resource(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._boto3, name)


def environment(fn: Any, log_level: str = "INFO") -> Any:
    """The function's environment as Lambda sets it, pointed at the emulator, held (`Lease`)."""
    return STATE.lease.holding(environment_values(fn), log_level)


def environment_values(fn: Any) -> dict[str, str]:
    """The function's variables and Lambda's own, pointed at the emulator."""
    return {
        **{k: str(v) for k, v in (fn.environment_vars or {}).items()},
        "AWS_ENDPOINT_URL": STATE.endpoint_url,
        "AWS_ACCESS_KEY_ID": "emulator",
        "AWS_SECRET_ACCESS_KEY": "emulator",
        "AWS_REGION": fn.region,
        "AWS_DEFAULT_REGION": fn.region,
        "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
        **database_ca(),
    }


def database_ca() -> dict[str, str]:
    """The CA of the emulator's MariaDB login endpoint, for the rotation function's TLS check
    (on AWS the function trusts the runtime's store, as AWS's own rotation functions do)."""
    server = STATE.mariadb
    return {"DB_CA_FILE": str(server.ca_file)} if server is not None and server.tls else {}


def start_recording_creator(self: threading.Thread) -> None:
    """`threading.Thread.start` while the emulator is installed (patches.py): the thread first
    records the thread that started it, so that the lines of the threads a handler starts reach
    its log stream (`InvocationThreads`). One attribute per thread start; nothing per record."""
    if not hasattr(self, CREATOR):  # `own_lineage` marked it: one of the emulator's own
        setattr(self, CREATOR, threading.current_thread())
    fence.original(threading.Thread, "start")(self)


class TimedOut(BaseException):
    """Raised inside a handler's thread when its function's Timeout has passed: Lambda stops the
    runtime there. A BaseException, so that a handler's `except Exception` cannot swallow it."""


STOP_GRACE_SECONDS = 2.0  # how long a timed-out handler may take to reach a point it can stop


def invoke_in_process(self: Any, event: Any = None) -> tuple[str, bool, str]:
    """moto's `_invoke_lambda` contract: (payload, errored, log text); the log text also goes
    to the function's log group.

    The handler runs in a thread of its own and is stopped when the function's Timeout passes
    (counted from the handler's start), answering as Lambda does: an error "Task timed out after
    N.00 seconds" for a synchronous call; an asynchronous one is retried, then dead-lettered
    (awslambda_async.py). https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html
    https://docs.aws.amazon.com/lambda/latest/dg/troubleshooting-invocation.html
    """
    if STATE.sandboxes is not None:
        return in_sandbox(STATE.sandboxes, self, event)
    invocation = Invocation(self, event)
    worker = own_lineage(
        threading.Thread(target=invocation.run, name=f"lambda-{self.function_name}")
    )
    worker.daemon = True
    worker.start()
    invocation.started.wait()
    killed = STATE.faults.take_kill(event)  # faults.py: ended mid-way, as at a timeout
    worker.join(invocation.timeout if killed is None else min(killed, invocation.timeout))
    if worker.is_alive():
        stop(worker)
        worker.join(STOP_GRACE_SECONDS)
    return invocation.outcome or invocation.timed_out()


def in_sandbox(sandboxes: Sandboxes, fn: Any, event: Any) -> tuple[str, bool, str]:
    """The process model (awslambda_sandbox.py): a warm sandbox of the function runs the
    invocation; one that times out or that a fault ends is killed, and its logs so far kept; one
    whose process ended first answers Runtime.ExitError (`exit_error`)."""
    config = logging_config(fn)
    init = init_message(fn, config["LogFormat"], config.get("ApplicationLogLevel", "INFO"))
    env = process_environment(environment_values(fn), fn)
    sandbox = sandboxes.acquire(key_of(fn.function_arn, init, env), init, env)
    request_id, timeout = str(uuid.uuid4()), float(fn.timeout or 3)
    logs: list[str] = []
    try:
        if not sandbox.ready and sandbox.init_error is None:  # a new sandbox: its init phase
            sandbox.ready = sandbox.wait_ready()
            logs += sandbox.init_logs
        if not sandbox.ready:
            sandboxes.release(sandbox, reusable=False)
            error = sandbox.init_error or {"errorType": "Runtime.Unknown", "errorMessage": ""}
            return json.dumps(error), True, finish(fn, logs)
        killed = STATE.faults.take_kill(event)  # faults.py: ended mid-way, as at a timeout
        wait = timeout if killed is None else min(killed, timeout)
        answer = sandbox.invoke(event, request_id, timeout, wait)
    except BaseException:
        sandboxes.release(sandbox, reusable=False)
        raise
    logs += answer.logs
    sandboxes.release(sandbox, reusable=answer.outcome is not None)
    if answer.outcome is not None:
        return answer.outcome[0], answer.outcome[1], finish(fn, logs)
    if answer.exited is not None:
        return exit_error(fn, request_id, answer.exited, logs)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    logs.append(f"{stamp} {request_id} Task timed out after {timeout:.2f} seconds\n")
    error = {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds",
    }
    return json.dumps(error), True, finish(fn, logs)


def exit_error(fn: Any, request_id: str, status: str, logs: list[str]) -> tuple[str, bool, str]:
    """Lambda's answer when the runtime's process ends mid-invocation: Runtime.ExitError with
    its exit status, at once (not a timeout), and the same line in the log stream
    (https://docs.aws.amazon.com/lambda/latest/dg/troubleshooting-invocation.html)."""
    message = f"RequestId: {request_id} Error: Runtime exited with error: {status}"
    logs.append(f"{message}\nRuntime.ExitError\n")
    error = {"errorType": "Runtime.ExitError", "errorMessage": message}
    return json.dumps(error), True, finish(fn, logs)


def finish(fn: Any, logs: list[str]) -> str:
    """The invocation's log text, also sent to the function's log group."""
    text = "".join(logs)
    to_cloudwatch(fn, text.splitlines())
    return text


def stop(worker: threading.Thread) -> None:
    """Raise TimedOut in `worker` at its next Python instruction (a blocking C call finishes
    first; then the handler stops, as Lambda's runtime would have been stopped)."""
    if worker.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(worker.ident), ctypes.py_object(TimedOut)
        )


class Invocation:
    """One invocation of a function's handler, run in its own thread."""

    def __init__(self, fn: Any, event: Any) -> None:
        self.fn, self.event = fn, event
        self.timeout = float(fn.timeout or 3)  # Lambda's default Timeout is 3 s
        self.started = threading.Event()
        self.outcome: tuple[str, bool, str] | None = None
        self.request_id = ""
        self.logs = io.StringIO()

    def timed_out(self) -> tuple[str, bool, str]:
        error = {
            "errorType": "Sandbox.Timedout",
            "errorMessage": f"RequestId: {self.request_id} Error: Task timed out after "
            f"{self.timeout:.2f} seconds",
        }
        return json.dumps(error), True, self.logs.getvalue()

    def run(self) -> None:
        try:
            self.outcome = self.handle()
        except TimedOut:
            self.outcome = self.timed_out()
        finally:
            self.started.set()  # also when the handler never started (load failed)

    def handle(self) -> tuple[str, bool, str]:
        fn, logs = self.fn, self.logs
        capture = logging.StreamHandler(logs)
        capture.addFilter(InvocationThreads())
        capture.addFilter(NotPlumbing())
        config = logging_config(fn)
        json_format = config["LogFormat"] == "JSON"
        root = logging.getLogger()
        with environment(fn, config.get("ApplicationLogLevel", "INFO")):
            context = Context(fn)  # the Timeout counts from here, as the handler starts
            self.request_id = context.aws_request_id
            if json_format:
                capture.setFormatter(JsonFormatter(context.aws_request_id))
            root.addHandler(capture)
            try:
                module = load(fn)
                self.started.set()
                result = module.__dict__["__handler__"](
                    self.event if self.event is not None else {}, context
                )
                return json.dumps(result), False, logs.getvalue()
            except TimedOut:
                stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                logs.write(
                    f"{stamp} {context.aws_request_id} Task timed out after "
                    f"{self.timeout:.2f} seconds\n"
                )
                raise
            except Exception as exc:
                error: dict[str, Any] = {"errorMessage": str(exc), "errorType": type(exc).__name__}
                if json_format:
                    error |= {
                        "requestId": context.aws_request_id,
                        "stackTrace": traceback.format_tb(exc.__traceback__),
                    }
                    logs.write(json.dumps(error) + "\n")
                else:
                    logs.write(traceback.format_exc())
                return (
                    json.dumps({k: error[k] for k in ("errorMessage", "errorType")}),
                    True,
                    logs.getvalue(),
                )
            finally:
                root.removeHandler(capture)
                to_cloudwatch(fn, logs.getvalue().splitlines())
