"""What Aurora's capacity means for a Data API call: the instance class and auto-pause.

Two things real AWS does that moto does not, both of which broke or would break the stack:
- the Data API refuses a cluster whose writer is a T instance class ("Data API isn't
  supported on T DB instance classes", Limitations for the Amazon RDS Data API);
- an Aurora Serverless v2 cluster at 0 ACU pauses after SecondsUntilAutoPause idle seconds,
  and the first call then fails with DatabaseResumingException while it resumes (about 15 s
  on AWS; `RESUME_SECONDS` here), which callers must retry.
https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.html#data-api.limitations
https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-serverless-v2-auto-pause.html
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from loanstack.emulator.state import STATE

RESUME_SECONDS = 0.5  # how long a paused emulated cluster takes to resume


class CapacityError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class State:
    last_call: float
    resume_at: float | None = None  # set while resuming from a pause


_lock = threading.Lock()  # the states live in state.STATE.capacity


def admit(rds_backend: Any, cluster: Any) -> None:
    """Raise what Aurora's Data API answers when it cannot run a statement now."""
    writer = writer_of(rds_backend, cluster.db_cluster_identifier)
    if writer is not None and str(writer.db_instance_class).startswith("db.t"):
        raise CapacityError(
            "BadRequestException",
            f"Data API isn't supported on T DB instance classes ({writer.db_instance_class} "
            f"is the writer of {cluster.db_cluster_identifier})",
        )
    scaling = cluster.serverless_v2_scaling_configuration or {}
    if float(scaling.get("MinCapacity", 0.5)) > 0:
        return
    idle_limit = float(scaling.get("SecondsUntilAutoPause", 300))
    with _lock:
        now = time.monotonic()
        state = STATE.capacity.setdefault(cluster.db_cluster_arn, State(last_call=now))
        if state.resume_at is None and now - state.last_call >= idle_limit:
            state.resume_at = now + RESUME_SECONDS
        if state.resume_at is not None and now < state.resume_at:
            raise CapacityError(
                "DatabaseResumingException",
                f"The Aurora DB instance {writer.db_instance_identifier if writer else ''} is "
                "resuming after being auto-paused. Please wait a few seconds and try again.",
            )
        state.resume_at = None
        state.last_call = now


def pause(cluster_arn: str) -> None:
    """Put an emulated Serverless v2 cluster into the paused state (as after idle time)."""
    with _lock:
        STATE.capacity[cluster_arn] = State(last_call=float("-inf"))


def writer_of(rds_backend: Any, cluster_id: str) -> Any:
    members = [
        db
        for db in rds_backend.databases.values()
        if getattr(db, "db_cluster_identifier", None) == cluster_id
    ]
    return min(members, key=lambda db: int(getattr(db, "promotion_tier", 1)), default=None)
