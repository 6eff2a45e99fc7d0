"""How many examples a hypothesis test draws, by profile (docs/testing.md, "Keeping it fast").

`default` is what `make test` runs; `thorough` (LOANSTACK_HYPOTHESIS_PROFILE=thorough) the counts
the suite ran before the 5-minute budget, for a change to the validation rules or their fast
paths. Each test's default says in a comment why its examples still cover its space.
"""

from __future__ import annotations

import os

VARIABLE = "LOANSTACK_HYPOTHESIS_PROFILE"
PROFILES = ("default", "thorough")


def profile() -> str:
    name = os.environ.get(VARIABLE, "default").strip() or "default"
    if name not in PROFILES:
        raise ValueError(f"{VARIABLE}={name!r}: expected one of {', '.join(PROFILES)}")
    return name


def examples(default: int, thorough: int) -> int:
    """max_examples for this run: `default`, or `thorough` under the thorough profile."""
    return thorough if profile() == "thorough" else default
