"""Fault injection: make the emulator fail the way AWS fails, on a test's request.

One small API, on the running emulator's `faults` (`Emulator.faults`, or `state.STATE.faults`
in process; on a detached emulator `inject(url, fault, ...)`, which posts to its control path
`/moto-api/loanstack/faults`):

- `unavailable(seconds)`: the Data API answers `DatabaseUnavailableException` ("The writer
  instance in the DB cluster isn't available"), as during a writer restart or a failover;
- `deny_access(seconds)`: the Data API answers MySQL's 1045 "Access denied" as
  `DatabaseErrorException`, as between a rotation's setSecret and finishSecret;
- `deadlock(count=1)`: the next `count` statements fail with MySQL's 1213 deadlock, their
  transaction rolled back, as InnoDB does to a deadlock's victim;
- `duplicate_notifications(count=1)`: the next `count` S3 event notifications are delivered
  twice (S3 delivers at least once:
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/EventNotifications.html);
- `kill_invocation(after_seconds, match=None, count=1)`: the next `count` Lambda invocations
  whose event names `match` (an S3 key, say, as it reads decoded; None: any) are ended `after_seconds` after their
  handler started, mid-way, as Lambda's runtime ends one at its Timeout ("Task timed out", the
  handler's work up to then kept): an asynchronous one is retried twice, then dead-lettered
  (https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html,
  https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html).

Each fault may name a cluster (its ARN or identifier); without one it hits every cluster.
Sources for the error shapes:
https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/CommonErrors.html,
https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/API_ExecuteStatement.html (Errors),
https://dev.mysql.com/doc/mysql-errors/8.0/en/server-error-reference.html (1045, 1213).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

UNAVAILABLE = "The writer instance in the DB cluster isn't available"
ACCESS_DENIED = 1045
DEADLOCK = 1213
DEADLOCK_MESSAGE = "Deadlock found when trying to get lock; try restarting transaction"


@dataclass(frozen=True)
class Injected:
    """What the Data API answers instead of running a statement: an AWS error code (the MySQL
    error number for `DatabaseErrorException`) and its message."""

    code: str
    message: str
    mysql_error: int | None = None


class Faults:
    """The faults a test has asked for; thread-safe (invocations run concurrently)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: list[tuple[str, float, str | None]] = []  # (kind, until, cluster)
        self._deadlocks: list[str | None] = []  # one entry per statement to fail
        self._duplicates = 0
        self._kills: list[tuple[float, str | None]] = []  # (after seconds, event must name)
        self.killed = 0  # invocations ended so far, for a test to see the fault was met

    def unavailable(self, seconds: float, cluster: str | None = None) -> None:
        self._open("unavailable", seconds, cluster)

    def deny_access(self, seconds: float, cluster: str | None = None) -> None:
        self._open("deny", seconds, cluster)

    def deadlock(self, count: int = 1, cluster: str | None = None) -> None:
        with self._lock:
            self._deadlocks.extend([cluster] * count)

    def duplicate_notifications(self, count: int = 1) -> None:
        with self._lock:
            self._duplicates += count

    def kill_invocation(
        self, after_seconds: float, match: str | None = None, count: int = 1
    ) -> None:
        if after_seconds < 0:
            raise ValueError(f"kill_invocation: seconds must not be negative ({after_seconds})")
        with self._lock:
            self._kills.extend([(after_seconds, match)] * count)

    def clear(self) -> None:
        with self._lock:
            self._windows.clear()
            self._deadlocks.clear()
            self._duplicates = 0
            self._kills.clear()
            self.killed = 0

    def _open(self, kind: str, seconds: float, cluster: str | None) -> None:
        if seconds < 0:
            raise ValueError(f"{kind}: seconds must not be negative ({seconds})")
        with self._lock:
            self._windows.append((kind, time.monotonic() + seconds, cluster))

    def before_call(self, cluster_arn: str, username: str) -> Injected | None:
        """The fault the Data API answers for a call on `cluster_arn` now, before any SQL runs."""
        now = time.monotonic()
        with self._lock:
            self._windows = [w for w in self._windows if w[1] > now]
            kinds = {kind for kind, _, on in self._windows if matches(on, cluster_arn)}
        if "unavailable" in kinds:
            return Injected("DatabaseUnavailableException", UNAVAILABLE)
        if "deny" in kinds:
            message = f"Access denied for user '{username}'@'%' (using password: YES)"
            return Injected("DatabaseErrorException", message, ACCESS_DENIED)
        return None

    def take_deadlock(self, cluster_arn: str) -> bool:
        """True (once per requested deadlock) when this statement is to be a deadlock's victim."""
        with self._lock:
            for i, on in enumerate(self._deadlocks):
                if matches(on, cluster_arn):
                    del self._deadlocks[i]
                    return True
        return False

    def take_duplicate(self) -> bool:
        """True (once per request) when this S3 notification is to be delivered twice."""
        with self._lock:
            if self._duplicates:
                self._duplicates -= 1
                return True
        return False

    def take_kill(self, event: Any) -> float | None:
        """Seconds after which this invocation is to be ended (once per request), else None."""
        if not self._kills:  # the common case: no fault asked for, no event serialised
            return None
        text = unquote_plus(json.dumps(event))  # S3 events carry keys URL-encoded ("/" as %2F)
        with self._lock:
            for i, (after, match) in enumerate(self._kills):
                if match is None or match in text:
                    del self._kills[i]
                    self.killed += 1
                    return after
        return None

    def apply(self, request: dict[str, Any]) -> None:
        """One control request (the detached emulator's HTTP path): {"fault": name, ...}."""
        fault = request.get("fault")
        cluster = request.get("cluster")
        if fault == "unavailable":
            self.unavailable(float(request["seconds"]), cluster)
        elif fault == "deny_access":
            self.deny_access(float(request["seconds"]), cluster)
        elif fault == "deadlock":
            self.deadlock(int(request.get("count", 1)), cluster)
        elif fault == "duplicate_notifications":
            self.duplicate_notifications(int(request.get("count", 1)))
        elif fault == "kill_invocation":
            self.kill_invocation(
                float(request["seconds"]), request.get("match"), int(request.get("count", 1))
            )
        elif fault == "clear":
            self.clear()
        else:
            raise ValueError(
                f"unknown fault {fault!r} (unavailable, deny_access, deadlock, "
                "duplicate_notifications, kill_invocation, clear)"
            )


def matches(on: str | None, cluster_arn: str) -> bool:
    return on is None or on == cluster_arn or cluster_arn.rsplit(":", 1)[-1] == on


CONTROL_PATH = "/moto-api/loanstack/faults"


def inject(emulator_url: str, fault: str, **arguments: Any) -> None:
    """Ask a running emulator (another process: `loanstack emulator start --detach`) for a
    fault, e.g. `inject(url, "unavailable", seconds=30)`; raises ValueError if it refuses."""
    body = json.dumps({"fault": fault, **arguments}).encode()
    request = urllib.request.Request(  # noqa: S310 (the emulator's own http:// URL)
        emulator_url.rstrip("/") + CONTROL_PATH, data=body, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 (the emulator's own http:// URL)
            return
    except urllib.error.HTTPError as err:
        raise ValueError(json.loads(err.read() or b"{}").get("message", str(err))) from err
