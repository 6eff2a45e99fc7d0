"""Logging as Lambda does it, for the functions the emulator runs in process (awslambda.py).

The function's `LoggingConfig` (moto drops it; awslambda_config.py keeps it) sets the level and
the format (JSON records as Lambda's Python runtime writes them) and names the log group; each
invocation's records land in that group of the emulator's CloudWatch Logs, in a stream named as
Lambda names it, and come back base64-encoded with `--log-type Tail`
(https://docs.aws.amazon.com/lambda/latest/dg/python-logging.html). An invocation's capture takes
the records of its thread and of the threads it starts (as every line the runtime's process
writes reaches the stream), none of a concurrent invocation's, none of the emulator's plumbing.
A sandbox process (awslambda_worker.py) imports this module for the formats, so moto is
imported only where the records are stored.
"""

from __future__ import annotations

import datetime
import json
import logging
import threading
import time
import traceback
import uuid
from typing import Any


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
    from moto.logs.models import logs_backends  # here: a sandbox process imports this module

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


CREATOR = "_loanstack_creator"  # on a Thread: the Thread that started it (awslambda.py)


def own_lineage(thread: threading.Thread) -> threading.Thread:
    """Mark a thread the emulator starts (an invocation's, an event's) as descending from no
    one: a function whose AWS call runs in its own thread (an in-process moto) and so starts
    another invocation must not take that invocation's lines into its own log stream."""
    setattr(thread, CREATOR, None)
    return thread


class InvocationThreads(logging.Filter):
    """An invocation's log capture takes the records of its own thread and of every thread that
    descends from it (each records its creator: `awslambda.start_recording_creator`), never
    those of a concurrent invocation's, as Lambda's log stream has every line the runtime's
    process writes (https://docs.aws.amazon.com/lambda/latest/dg/python-logging.html)."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.current_thread()
        self.ident = self.thread.ident

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread == self.ident:
            return True
        if record.thread != threading.get_ident():  # handed on by another thread (a queue)
            return False
        # logging calls filters in the thread that logged, so that thread is current here
        creator = getattr(threading.current_thread(), CREATOR, None)
        while creator is not None:
            if creator is self.thread:
                return True
            creator = getattr(creator, CREATOR, None)
        return False


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
