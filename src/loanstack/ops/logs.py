"""`loanstack logs`: a deployed function's log records, as `aws logs tail` reads them."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from loanstack.errors import UsageError
from loanstack.names import ROTATION_FUNCTION_ARN, VALIDATION_FUNCTION_NAME

if TYPE_CHECKING:  # annotations only: the parser imports LOGGED and FORMATS, boto3 stays out
    from loanstack.aws.outputs import StackRecord
    from loanstack.aws.target import Target

LOGGED = {"validate": VALIDATION_FUNCTION_NAME, "rotation": ROTATION_FUNCTION_ARN}
FORMATS = ("short", "json")

SINCE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
RELATIVE = re.compile(r"^(\d+)([smhdw])$")


def parse_since(text: str, now: float | None = None) -> int:
    """`--since` as FilterLogEvents' `startTime` (milliseconds since the epoch): relative
    (30s, 10m, 2h, 1d, 1w, as `aws logs tail --since`) or an ISO 8601 time with its zone
    (2026-11-30T09:00Z, 2026-11-30T10:00:00+01:00); a time without a zone is refused, as it
    would mean the machine's zone silently."""
    relative = RELATIVE.match(text)
    if relative:
        start = (now if now is not None else time.time()) - int(relative[1]) * SINCE_UNITS[
            relative[2]
        ]
        return int(start * 1000)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--since takes a duration (30s, 10m, 2h, 1d, 1w) or an ISO 8601 time with its zone "
            f"(2026-11-30T09:00Z), got {text!r}"
        ) from None
    if when.tzinfo is None:
        raise UsageError(
            f"--since {text} has no zone: add Z for UTC or an offset (e.g. {text}Z, {text}+01:00)"
        )
    return int(when.timestamp() * 1000)


def log_group(target: Target, stack: StackRecord, function: str) -> str:
    """The function's log group: its `LoggingConfig.LogGroup`, else Lambda's default name."""
    value = stack.output(LOGGED[function])
    name = value.rpartition(":function:")[2] or value
    config = target.client("lambda").get_function_configuration(FunctionName=name)
    return str(config.get("LoggingConfig", {}).get("LogGroup") or f"/aws/lambda/{name}")


def log_events(
    target: Target, group: str, since: int, follow: bool, pattern: str | None = None
) -> Iterator[dict[str, Any]]:
    """Events of every stream of `group` from `since` on, oldest first, those matching the
    CloudWatch filter `pattern` when given; with `follow`, keep polling for new ones
    (FilterLogEvents, as `aws logs tail` reads them:
    https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_FilterLogEvents.html,
    pattern syntax:
    https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html)."""
    paginator = target.client("logs").get_paginator("filter_log_events")
    query: dict[str, Any] = {"logGroupName": group}
    if pattern:
        query["filterPattern"] = pattern
    seen: set[str] = set()
    start = since
    while True:
        fresh = []
        for page in paginator.paginate(**query, startTime=start):
            fresh += [e for e in page.get("events", []) if e["eventId"] not in seen]
        for event in sorted(fresh, key=lambda e: (e["timestamp"], e["eventId"])):
            seen.add(event["eventId"])
            start = max(start, event["timestamp"])
            yield event
        if not follow:
            return
        time.sleep(max(target.poll_seconds * 5, 1.0))


def stamp(event: dict[str, Any]) -> str:
    """The event's time in UTC, to the millisecond, ISO 8601 with its zone."""
    seconds, millis = divmod(int(event["timestamp"]), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def formatted(event: dict[str, Any], form: str) -> str:
    """short: time and message; json: one object per line (camelCase keys)."""
    message = str(event["message"]).rstrip()
    if form == "json":
        return json.dumps(
            {
                "timestamp": stamp(event),
                "logStreamName": event["logStreamName"],
                "eventId": event["eventId"],
                "message": message,
            },
            sort_keys=True,
        )
    return f"{stamp(event)} {message}"
