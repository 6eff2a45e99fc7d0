"""Helpers shared by tests: templates per environment and Lambda sources loaded as Lambda does."""

from __future__ import annotations

from typing import Any

from loanstack import functions, template


def build(doc: dict[str, Any], env_type: str = "dev", **params: str) -> template.Environment:
    """The environment `env_type` of a (possibly mutated) template, suffix dev42."""
    given = template.judged_parameters(env_type, "dev42", **params)
    if "AlarmEmail" not in doc.get("Parameters", {}):
        given.pop("AlarmEmail", None)  # a cut-down template of a test
    return template.instantiate(doc, given)


def ids(findings: list[Any]) -> set[tuple[str, str]]:
    return {(f.check_id, f.resource) for f in findings}


def load_function(name: str) -> Any:
    """lib/functions/<name>/index.py as a fresh module (the way Lambda loads `index`), through
    the tool's one loader."""
    return functions.fresh(name)
