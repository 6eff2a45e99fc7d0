"""Lambda functions run in this process, on this Python, against the emulator (SPEC D4).

moto would run them in Docker; here the function's deployed code (the zip moto stored) is loaded
as a fresh module and its handler called with the function's own environment, its AWS calls
sent back to the emulator. Invocations are serialised: they share the process environment.
"""

from __future__ import annotations

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
from contextlib import contextmanager
from typing import Any

from moto.awslambda import models as lambda_models

ENDPOINT: dict[str, str] = {}
_lock = threading.Lock()
_original: dict[str, Any] = {}


def install(endpoint_url: str) -> None:
    ENDPOINT["url"] = endpoint_url
    if not _original:
        _original["invoke"] = lambda_models.LambdaFunction._invoke_lambda
        lambda_models.LambdaFunction._invoke_lambda = invoke_in_process  # type: ignore[method-assign]


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
    exec(compile(source, f"{fn.function_name}/{module_name}.py", "exec"), module.__dict__)
    module.__dict__["__handler__"] = module.__dict__[function]
    return module


@contextmanager
def environment(fn: Any) -> Any:
    import boto3

    values = {
        **{k: str(v) for k, v in (fn.environment_vars or {}).items()},
        "AWS_ENDPOINT_URL": ENDPOINT["url"],
        "AWS_ACCESS_KEY_ID": "emulator",
        "AWS_SECRET_ACCESS_KEY": "emulator",
        "AWS_REGION": fn.region,
        "AWS_DEFAULT_REGION": fn.region,
        "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
        **database_ca(),
    }
    saved = {k: os.environ.get(k) for k in [*values, "AWS_SESSION_TOKEN", "AWS_PROFILE"]}
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(values)
    boto3.DEFAULT_SESSION = None  # the handler's clients must see this environment
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        boto3.DEFAULT_SESSION = None


def database_ca() -> dict[str, str]:
    """The CA of the emulator's MariaDB login endpoint, for the rotation function's TLS check
    (on AWS the function trusts the runtime's store, as AWS's own rotation functions do)."""
    from loanstack.emulator.dataapi import SERVED

    server = SERVED.get("server")
    return {"DB_CA_FILE": str(server.ca_file)} if server is not None and server.tls else {}


def invoke_in_process(self: Any, event: Any = None) -> tuple[str, bool, str]:
    """moto's `_invoke_lambda` contract: (payload, errored, log text)."""
    logs = io.StringIO()
    capture = logging.StreamHandler(logs)
    root = logging.getLogger()
    with _lock, environment(self):
        root.addHandler(capture)
        try:
            module = load(self)
            result = module.__dict__["__handler__"](
                event if event is not None else {}, Context(self)
            )
            return json.dumps(result), False, logs.getvalue()
        except Exception as exc:
            logs.write(traceback.format_exc())
            error = {"errorMessage": str(exc), "errorType": type(exc).__name__}
            return json.dumps(error), True, logs.getvalue()
        finally:
            root.removeHandler(capture)
