"""`loanstack logs`: a deployed function's log records, as `aws logs tail` reads them."""

from __future__ import annotations

import time
from collections.abc import Iterator

from loanstack.aws.outputs import output
from loanstack.aws.target import Target
from loanstack.errors import UsageError

LOGGED = {"validate": "LoanValidationFunctionName", "rotation": "SecretRotationLambdaArn"}


SINCE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str) -> int:
    """`--since 10m` as FilterLogEvents' `startTime` (milliseconds since the epoch)."""
    number, unit = text[:-1], text[-1:]
    if not number.isdigit() or unit not in SINCE_UNITS:
        raise UsageError(f"--since takes a number and a unit (30s, 10m, 2h, 1d, 1w), got {text!r}")
    return int((time.time() - int(number) * SINCE_UNITS[unit]) * 1000)


def log_group(target: Target, outputs: dict[str, str], function: str) -> str:
    """The function's log group: its `LoggingConfig.LogGroup`, else Lambda's default name."""
    value = output(outputs, LOGGED[function])
    name = value.rpartition(":function:")[2] or value
    config = target.client("lambda").get_function_configuration(FunctionName=name)
    return str(config.get("LoggingConfig", {}).get("LogGroup") or f"/aws/lambda/{name}")


def log_records(target: Target, group: str, since: int, follow: bool) -> Iterator[str]:
    """Records of every stream of `group` from `since` on, oldest first; with `follow`, keep
    polling for new ones (FilterLogEvents, as `aws logs tail` reads them:
    https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_FilterLogEvents.html)."""
    paginator = target.client("logs").get_paginator("filter_log_events")
    seen: set[str] = set()
    start = since
    while True:
        fresh = []
        for page in paginator.paginate(logGroupName=group, startTime=start):
            fresh += [e for e in page.get("events", []) if e["eventId"] not in seen]
        for event in sorted(fresh, key=lambda e: (e["timestamp"], e["eventId"])):
            seen.add(event["eventId"])
            start = max(start, event["timestamp"])
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(event["timestamp"] / 1000))
            yield f"{stamp} {event['logStreamName']} {event['message'].rstrip()}"
        if not follow:
            return
        time.sleep(max(target.poll_seconds * 5, 1.0))
