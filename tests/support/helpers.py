"""Helpers shared by tests: templates per environment and Lambda sources loaded as Lambda does."""

from __future__ import annotations

from typing import Any

from loanstack import template


def build(doc: dict[str, Any], env: str = "dev", **params: str) -> template.Environment:
    """The environment `env` of a (possibly mutated) template, suffix dev42."""
    return template.instantiate(
        doc, {"EnvironmentType": env, "EnvironmentSuffix": "dev42", **params}
    )


def ids(findings: list[Any]) -> set[tuple[str, str]]:
    return {(f.check_id, f.resource) for f in findings}


def load_function(name: str) -> Any:
    """Import lib/functions/<name>/index.py as a fresh module (the way Lambda loads `index`)."""
    import importlib.util

    path = template.ROOT / "lib" / "functions" / name / "index.py"
    spec = importlib.util.spec_from_file_location(f"lambda_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
