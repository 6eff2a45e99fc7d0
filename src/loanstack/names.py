"""Names the tool derives from the template's own conventions, in one place (not in each command)."""

from __future__ import annotations

STACK_PREFIX = "tapstack-"  # the stack of EnvironmentSuffix s is tapstack-<s>


def stack_name(suffix: str) -> str:
    return f"{STACK_PREFIX}{suffix}"
