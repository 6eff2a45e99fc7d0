"""Lambda functions run in this process, on this Python, against the emulator (SPEC D4).

moto would run them in Docker; here the function's deployed code (the zip moto stored) is loaded
as a fresh module and its handler called with the function's own environment, its AWS calls
sent back to the emulator. Invocations of one function run concurrently (issue 15): each gets its
own module and its own boto3 session, and the process environment is a lease that invocations
with the same environment share and one with another environment waits for (see `Lease`).

S3 notifications invoke asynchronously, as Lambda does (`awslambda_async.py`): the upload returns at
once, the function runs in the background up to its reserved concurrency, a failed event is
retried twice and then sent to the function's dead-letter queue.

Logging as Lambda does it: the function's `LoggingConfig` (moto drops it) sets the level and the
format (JSON records as Lambda's Python runtime writes them) and names the log group; each
invocation's records land in that group of the emulator's CloudWatch Logs, in a stream named as
Lambda names it, and come back base64-encoded with `--log-type Tail`
(https://docs.aws.amazon.com/lambda/latest/dg/python-logging.html).
"""

from __future__ import annotations

import base64
import ctypes
import datetime
import io
import json
import logging
import os
import threading
import time
import traceback
import types
import uuid
import zipfile
from typing import Any

from moto.awslambda import models as lambda_models
from moto.logs.models import logs_backends

from loanstack.emulator import fence
from loanstack.emulator.lease import Lease
from loanstack.emulator.state import STATE

__all__ = ["Lease"]  # also here, where the invocations use it

_client_lock = threading.Lock()  # botocore's client creation is not thread-safe (boto3 #801)


def install(endpoint_url: str) -> None:
    """Where the functions' AWS calls go (the emulator's URL); moto itself is patched by
    `patches.install`."""
    STATE.route(endpoint_url)


def create_keeping_logging_config(
    cls: Any, name: str, cfn: dict[str, Any], *args: Any, **kwargs: Any
) -> Any:
    fn = fence.original(lambda_models.LambdaFunction, "create_from_cloudformation_json").__func__(
        cls, name, cfn, *args, **kwargs
    )
    fn.logging_config = dict(cfn.get("Properties", {}).get("LoggingConfig") or {})
    # moto drops DeadLetterConfig; asynchronous invocations need it
    fn.dead_letter_arn = (cfn.get("Properties", {}).get("DeadLetterConfig") or {}).get("TargetArn")
    return fn


def configuration_with_logging(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """GetFunctionConfiguration as AWS answers it: with the function's LoggingConfig."""
    config = dict(
        fence.original(lambda_models.LambdaFunction, "get_configuration")(self, *args, **kwargs)
    )
    config["LoggingConfig"] = logging_config(self)
    return config


def logging_config(fn: Any) -> dict[str, str]:
    """The function's LoggingConfig with Lambda's defaults filled in."""
    given = getattr(fn, "logging_config", None) or {}
    found = {
        "LogFormat": given.get("LogFormat", "Text"),
        "LogGroup": given.get("LogGroup") or f"/aws/lambda/{fn.function_name}",
    }
    if found["LogFormat"] == "JSON":
        found["ApplicationLogLevel"] = given.get("ApplicationLogLevel", "INFO")
        found["SystemLogLevel"] = given.get("SystemLogLevel", "INFO")
    return found


class JsonFormatter(logging.Formatter):
    """Lambda's JSON log format for Python: timestamp, level, message, logger, requestId, the
    record's `extra` fields, and errorType/errorMessage/stackTrace for an exception."""

    STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def __init__(self, request_id: str) -> None:
        super().__init__()
        self.request_id = request_id

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        doc: dict[str, Any] = {
            "timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "requestId": self.request_id,
        }
        doc |= {k: v for k, v in vars(record).items() if k not in self.STANDARD}
        if record.exc_info and record.exc_info[0] is not None:
            doc["errorType"] = record.exc_info[0].__name__
            doc["errorMessage"] = str(record.exc_info[1])
            doc["stackTrace"] = traceback.format_tb(record.exc_info[2])
        return json.dumps(doc, default=str)


def to_cloudwatch(fn: Any, lines: list[str]) -> None:
    """One invocation's records into the function's log group (created, as Lambda would, when
    the template did not declare it), in a stream named `YYYY/MM/DD/[$LATEST]<id>`."""
    backend: Any = logs_backends[fn.account_id][fn.region]
    group = logging_config(fn)["LogGroup"]
    if group not in backend.groups:
        backend.create_log_group(group, tags={})
    stream = f"{datetime.datetime.now(datetime.UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
    backend.create_log_stream(group, stream)
    now = int(time.time() * 1000)
    events = [{"timestamp": now, "message": line} for line in lines if line.strip()]
    if events:
        backend.put_log_events(group, stream, events)


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
            self._session = boto3.session.Session()

    def client(self, *args: Any, **kwargs: Any) -> Any:
        with _client_lock:
            return self._session.client(*args, **kwargs)

    def resource(self, *args: Any, **kwargs: Any) -> Any:
        with _client_lock:
            return self._session.resource(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._boto3, name)


class ThisThread(logging.Filter):
    """An invocation's log capture takes only its own thread's records (others run alongside)."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread == self.thread


class NotPlumbing(logging.Filter):
    """The emulator's own workings stay out of a function's log group: botocore's endpoint
    discovery ("Found endpoint for rds-data via: environment_global.", logged only because the
    emulator sets AWS_ENDPOINT_URL, which Lambda never does:
    https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime)
    and moto's, werkzeug's and the emulator's loggers. What Lambda itself would log for the
    function (its own records, botocore's "Found credentials in environment variables.") stays."""

    PLUMBING = ("botocore.configprovider", "moto", "werkzeug", "loanstack.emulator")

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(
            record.name == name or record.name.startswith(name + ".") for name in self.PLUMBING
        )


def environment(fn: Any, log_level: str = "INFO") -> Any:
    """The function's environment as Lambda sets it, pointed at the emulator."""
    values = {
        **{k: str(v) for k, v in (fn.environment_vars or {}).items()},
        "AWS_ENDPOINT_URL": STATE.endpoint_url,
        "AWS_ACCESS_KEY_ID": "emulator",
        "AWS_SECRET_ACCESS_KEY": "emulator",
        "AWS_REGION": fn.region,
        "AWS_DEFAULT_REGION": fn.region,
        "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
        **database_ca(),
    }
    return STATE.lease.holding(values, log_level)


def database_ca() -> dict[str, str]:
    """The CA of the emulator's MariaDB login endpoint, for the rotation function's TLS check
    (on AWS the function trusts the runtime's store, as AWS's own rotation functions do)."""
    server = STATE.mariadb
    return {"DB_CA_FILE": str(server.ca_file)} if server is not None and server.tls else {}


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
    invocation = Invocation(self, event)
    worker = threading.Thread(target=invocation.run, name=f"lambda-{self.function_name}")
    worker.daemon = True
    worker.start()
    invocation.started.wait()
    killed = STATE.faults.take_kill(event)  # faults.py: ended mid-way, as at a timeout
    worker.join(invocation.timeout if killed is None else min(killed, invocation.timeout))
    if worker.is_alive():
        stop(worker)
        worker.join(STOP_GRACE_SECONDS)
    return invocation.outcome or invocation.timed_out()


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
        capture.addFilter(ThisThread())
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


# --- GetAccountSettings (moto has none): what `loanstack deploy` checks before reserving --------

DEFAULT_CONCURRENCY_LIMIT = (
    1000  # AWS's default Lambda quota; MOTO_LAMBDA_CONCURRENCY_QUOTA sets it
)


def get_account_settings(self: Any) -> tuple[int, dict[str, str], str]:
    """Lambda's GetAccountSettings from the functions the emulator holds."""
    return 200, {}, json.dumps(account_settings(self.backend.list_functions()))


def account_settings(functions: list[Any]) -> dict[str, Any]:
    limit = int(os.environ.get("MOTO_LAMBDA_CONCURRENCY_QUOTA", DEFAULT_CONCURRENCY_LIMIT))
    reserved = sum(int(fn.reserved_concurrency or 0) for fn in functions)
    return {
        "AccountLimit": {
            "ConcurrentExecutions": limit,
            "UnreservedConcurrentExecutions": limit - reserved,
            "CodeSizeUnzipped": 262144000,
            "CodeSizeZipped": 52428800,
            "TotalCodeSize": 80530636800,
        },
        "AccountUsage": {"FunctionCount": len(functions), "TotalCodeSize": 0},
    }


# --- UpdateFunctionConfiguration and UpdateFunctionCode, as a stack update calls them ----------


def update_from_template(
    cls: Any,
    original_resource: Any,
    new_resource_name: str,
    cloudformation_json: dict[str, Any],
    account_id: str,
    region_name: str,
) -> Any:
    """A stack update of the function, as CloudFormation carries it out: the new configuration,
    then the new code. moto's create zips the template's inline `Code.ZipFile` source, its update
    takes that source for a base64 zip, so every update (even of MemorySize alone) left the
    function answering "File is not a zip file". A property the new template leaves out goes
    back to Lambda's default, as in CloudFormation (Environment, VpcConfig, reserved concurrency,
    LoggingConfig, DeadLetterConfig); moto would keep the old values.
    https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-lambda-function.html
    """
    fn = original_resource
    props = dict(cloudformation_json.get("Properties") or {})
    fn.update_configuration({k: v for k, v in props.items() if k != "Environment"})
    fn.environment_vars = dict((props.get("Environment") or {}).get("Variables") or {})
    if "VpcConfig" not in props:
        fn._vpc_config = None
    fn.reserved_concurrency = props.get("ReservedConcurrentExecutions")
    fn.logging_config = dict(props.get("LoggingConfig") or {})
    fn.dead_letter_arn = (props.get("DeadLetterConfig") or {}).get("TargetArn")
    code = dict(props["Code"])
    if "ZipFile" in code:  # inline source, as the template holds it (and moto's create zips it)
        code["ZipFile"] = base64.b64encode(cls._create_zipfile_from_plaintext_code(code["ZipFile"]))
    fn.update_function_code(code)
    return fn
