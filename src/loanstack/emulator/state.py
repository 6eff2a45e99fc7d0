"""The running emulator's state, owned by one object (`STATE`), not by module globals.

moto's backends are process-wide, and so are the patches that reach this state from inside
moto's handlers: one emulator runs per process, and `Emulator.start` resets what it owns.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from loanstack.emulator.awslambda_sandbox import Sandboxes
from loanstack.emulator.faults import Faults
from loanstack.emulator.lease import Lease
from loanstack.emulator.mariadb import MariaDB


class Invocations:
    """Asynchronous invocations in flight (awslambda_async.py): per function ARN how many run
    now and the most seen at once, and how many events are accepted and not yet finished."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.running: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.pending = 0


class EmulatorState:
    """What the emulator's extensions share while it runs: its MariaDB (the Data API and the
    clusters' login endpoint), the URL its functions call, the process environment's lease, the
    asynchronous invocations, the injected faults and the clusters' pause states."""

    def __init__(self) -> None:
        self.mariadb: MariaDB | None = None
        self.endpoint_url = ""
        self.lease = Lease()
        self.invocations = Invocations()
        self.faults = Faults()
        self.capacity: dict[str, Any] = {}  # cluster ARN -> its capacity.State
        # AWS Backup selection id -> its plan id and selection (moto models no selections)
        self.backup_selections: dict[str, dict[str, Any]] = {}
        # custom resource request id -> the function's answer, PUT to its ResponseURL
        self.custom_resource_answers: dict[str, dict[str, Any]] = {}
        self.custom_resources: set[str] = set()  # physical ids of the live custom resources
        # DetectStackDrift id -> its status and resource drifts (moto has no drift detection)
        self.drift_detections: dict[str, dict[str, Any]] = {}
        # the warm Lambda sandboxes (awslambda_sandbox.py); None: invocations run as threads
        self.sandboxes: Sandboxes | None = None

    def serve(self, mariadb: MariaDB | None) -> None:
        """The MariaDB server the Data API and the clusters' endpoint use (None: stopped)."""
        self.mariadb = mariadb

    def route(self, endpoint_url: str) -> None:
        """Where the functions' AWS calls go: the emulator's URL."""
        self.endpoint_url = endpoint_url

    def run_functions_in_processes(self, on: bool) -> None:
        """Each concurrent execution in a warm process of its own (on) or as a thread here."""
        if self.sandboxes is not None:
            self.sandboxes.close()
        self.sandboxes = Sandboxes() if on else None

    def reset(self) -> None:
        """A fresh emulator's state (the lease and in-flight invocations end by themselves)."""
        self.faults.clear()
        self.capacity.clear()
        self.backup_selections.clear()
        self.custom_resource_answers.clear()
        self.custom_resources.clear()
        self.drift_detections.clear()


STATE = EmulatorState()


def control_request(request: Any, full_url: str, headers: Any) -> tuple[int, dict[str, str], str]:
    """`POST /moto-api/loanstack/faults` on a running (detached) emulator: one fault request,
    as `faults.Faults.apply` reads it; answers 400 with one line for a bad request."""
    try:
        body = json.loads(request.get_data() or b"{}")
        if not isinstance(body, dict):
            raise ValueError("the request body must be a JSON object")
        STATE.faults.apply(body)
    except (KeyError, TypeError, ValueError) as exc:
        return 400, {"Content-Type": "application/json"}, json.dumps({"message": str(exc)})
    return 200, {"Content-Type": "application/json"}, json.dumps({"applied": body})
