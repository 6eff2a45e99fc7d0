"""Asynchronous invocation as Lambda does it for S3 notifications (issue 15, SPEC D6).

moto calls the function inside the PutObject request, one at a time, and swallows its errors.
Lambda instead queues the event and returns; the function runs up to its reserved concurrency
(events beyond it wait: throttled events are retried, not lost); an event whose invocation
returned an error is retried twice and then sent to the function's dead-letter queue with the
attributes RequestID, ErrorCode and ErrorMessage
(https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html,
https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html,
https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html).
Lambda waits about one and then two minutes between attempts; the emulator waits
`MOTO_LAMBDA_ASYNC_RETRY_SECONDS` (default 0.5 s) so a test sees the whole path.

A function whose reserved concurrency is 0 is throttled: none of its events runs. Lambda returns
a throttled event to the queue and tries it again until the event's maximum age (six hours by
default; `MOTO_LAMBDA_ASYNC_MAX_EVENT_AGE_SECONDS` here), then sends it to the dead-letter queue;
an event whose function is deleted meanwhile is never run
(https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html,
https://docs.aws.amazon.com/lambda/latest/dg/API_PutFunctionConcurrency.html).
`loanstack destroy` throttles the stack's functions this way before it empties the buckets.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from typing import Any

from loanstack.emulator.awslambda_logs import own_lineage
from loanstack.emulator.state import STATE

DEFAULT_CONCURRENCY = 10  # a function without a reservation; the emulator runs on a few cores
RETRIES = 2
MAX_EVENT_AGE_SECONDS = 21600.0  # Lambda's default MaximumEventAgeInSeconds (six hours)
THROTTLE_POLL_SECONDS = 0.2  # how often a throttled event looks whether its function is gone


def invoke_async(account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
    """Accept the event and return at once (S3 does not wait for the function)."""
    from moto.awslambda.utils import get_backend

    try:
        fn = get_backend(account_id, region_name).get_function(fn_arn)
    except Exception:
        return
    # S3 delivers at least once; a test can make it deliver this event twice (faults.py)
    deliveries = 2 if STATE.faults.take_duplicate() else 1
    for _ in range(deliveries):
        with STATE.invocations.changed:
            STATE.invocations.pending += 1
        thread = own_lineage(
            threading.Thread(
                target=run_event,
                args=(fn, json.dumps(event_body)),
                name=f"async-{fn.function_name}",
            )
        )
        thread.daemon = True
        thread.start()


def limit(fn: Any) -> int:
    """How many of the function's invocations may run at once: its reservation (0: throttled,
    none), or the emulator's share of the unreserved pool when it has none."""
    reserved = fn.reserved_concurrency
    return DEFAULT_CONCURRENCY if reserved is None else int(reserved)


def max_event_age() -> float:
    return float(os.environ.get("MOTO_LAMBDA_ASYNC_MAX_EVENT_AGE_SECONDS", MAX_EVENT_AGE_SECONDS))


class Throttled(Exception):
    """The event waited out its maximum age for a concurrency slot."""


class Gone(Exception):
    """The event's function was deleted while the event waited: Lambda never runs it."""


def run_event(fn: Any, body: str) -> None:
    """Up to three attempts, each in a concurrency slot; then the dead-letter queue. An event
    that finds no slot until its maximum age goes to the dead-letter queue unrun."""
    expires = time.monotonic() + max_event_age()
    try:
        error: dict[str, Any] = {}
        for attempt in range(RETRIES + 1):
            if attempt:
                time.sleep(float(os.environ.get("MOTO_LAMBDA_ASYNC_RETRY_SECONDS", "0.5")))
            try:
                payload, errored = attempt_once(fn, body, expires)
            except Throttled:
                throttled = {"errorType": "TooManyRequestsException"}
                send_to_dead_letter_queue(
                    fn, body, throttled | {"errorMessage": "Rate Exceeded."}, 429
                )
                return
            if not errored:
                return
            error = parse_error(payload)
        send_to_dead_letter_queue(fn, body, error)
    except Gone:
        return
    finally:
        queue = STATE.invocations
        with queue.changed:
            queue.pending -= 1
            queue.changed.notify_all()


def attempt_once(fn: Any, body: str, expires: float) -> tuple[str, bool]:
    """One invocation, once a concurrency slot is free; raises Throttled when none frees up
    before `expires`, Gone when the function is deleted meanwhile."""
    arn, queue = fn.function_arn, STATE.invocations
    with queue.changed:
        while queue.running.get(arn, 0) >= limit(fn):
            if deleted(fn):
                raise Gone(arn)
            left = expires - time.monotonic()
            if left <= 0:
                raise Throttled(arn)
            queue.changed.wait(min(left, THROTTLE_POLL_SECONDS))
        queue.running[arn] = queue.running.get(arn, 0) + 1
        queue.peak[arn] = max(queue.peak.get(arn, 0), queue.running[arn])
    try:
        payload, errored, _ = fn._invoke_lambda(event=json.loads(body))
        return payload, errored
    except Exception as exc:
        return json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__}), True
    finally:
        with queue.changed:
            queue.running[arn] -= 1
            queue.changed.notify_all()


def deleted(fn: Any) -> bool:
    """The function is no longer in its backend (deleted with its stack, say)."""
    from moto.awslambda.exceptions import UnknownFunctionException
    from moto.awslambda.utils import get_backend

    try:
        get_backend(fn.account_id, fn.region).get_function(fn.function_arn)
    except UnknownFunctionException:
        return True
    return False


def parse_error(payload: str) -> dict[str, Any]:
    try:
        found = json.loads(payload)
    except ValueError:
        return {"errorMessage": payload}
    return found if isinstance(found, dict) else {"errorMessage": payload}


def send_to_dead_letter_queue(fn: Any, body: str, error: dict[str, Any], code: int = 200) -> None:
    """ErrorCode is the HTTP status of the last attempt: 200 for a function error, 429 for an
    event throttled until its maximum age."""
    arn = getattr(fn, "dead_letter_arn", None)
    if not arn:
        return
    from moto.sqs.exceptions import QueueDoesNotExist
    from moto.sqs.models import sqs_backends

    _, _, _, region, account, name = arn.split(":", 5)
    attributes = {
        "RequestID": {"DataType": "String", "StringValue": str(uuid.uuid4())},
        "ErrorCode": {"DataType": "Number", "StringValue": str(code)},
        "ErrorMessage": {
            "DataType": "String",
            "StringValue": str(error.get("errorMessage", ""))[:1024],
        },
    }
    try:
        sqs_backends[account][region].send_message(name, body, message_attributes=attributes)
    except QueueDoesNotExist:  # deleted with its stack meanwhile: nowhere to send it
        return


def wait_idle(timeout: float) -> bool:
    """True once every accepted event has finished (tests and benchmarks wait on this)."""
    deadline, queue = time.monotonic() + timeout, STATE.invocations
    with queue.changed:
        while queue.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            queue.changed.wait(left)
    return True
