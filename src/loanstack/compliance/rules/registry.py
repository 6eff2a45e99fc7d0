"""The `@check` machinery: a rule is a generator of `Flag`s registered under an id, the
requirement it enforces (docs/requirements.md), a one-line description and a source link; `run`
stamps each flag with the id and a JSON pointer. Kept apart from the rules so that a module of
rules reads as rules only (cfn-lint's layout: the base class in one place, one rule per unit)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from loanstack.template import Environment

SPEC = "docs/requirements.md"  # the requirements, in this repository


@dataclass(frozen=True)
class Finding:
    """One rule broken by one part of the template; `path` is a JSON pointer (RFC 6901) to that
    part, as cfn-lint's matches carry one ("" is the whole template)."""

    check_id: str
    resource: str
    message: str
    path: str = ""

    def __str__(self) -> str:
        return f"{self.check_id} {self.resource}: {self.message}"


class Flag(NamedTuple):
    """What a rule yields: the part (a logical id, an output, or "template") and what is wrong;
    `Check.run` stamps it with the check's id and a path."""

    resource: str
    message: str


@dataclass(frozen=True)
class Check:
    id: str
    requirement: str
    description: str
    source: str
    judge: Callable[[Environment], Iterator[Flag]]

    def run(self, env: Environment) -> Iterator[Finding]:
        for flag in self.judge(env):
            yield Finding(self.id, flag.resource, flag.message, pointer(env, flag.resource))


def pointer(env: Environment, part: str) -> str:
    """The JSON pointer of a resource or output in the template ("" for anything else)."""
    escaped = part.replace("~", "~0").replace("/", "~1")
    for section in ("Resources", "Outputs", "Parameters", "Conditions"):
        if part in (env.template.get(section) or {}):
            return f"/{section}/{escaped}"
    return ""


CHECKS: list[Check] = []


def check(id: str, requirement: str, description: str, source: str) -> Callable[..., Any]:
    """Register a rule under its id; the id is written here once, not in each finding."""

    def register(fn: Callable[[Environment], Iterator[Flag]]) -> Callable[..., Any]:
        CHECKS.append(Check(id, requirement, description, source, fn))
        return fn

    return register


def run_checks(env: Environment, only: str | None = None) -> list[Finding]:
    """All findings for one environment; `only` restricts to one requirement (e.g. "R12")."""
    return [
        finding for c in CHECKS if only is None or c.requirement == only for finding in c.run(env)
    ]
