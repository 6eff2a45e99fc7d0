"""The running emulator's state, owned by one object (`STATE`), not by module globals.

moto's backends are process-wide, and so are the patches that reach this state from inside
moto's handlers: one emulator runs per process, and `Emulator.start` resets what it owns.
"""

from __future__ import annotations

import json
from typing import Any

from loanstack.emulator.faults import Faults


class EmulatorState:
    """What the emulator's extensions share while it runs."""

    def __init__(self) -> None:
        self.faults = Faults()

    def reset(self) -> None:
        self.faults.clear()


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
