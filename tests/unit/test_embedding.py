"""D3: Lambda code is real Python under lib/functions, embedded into the template by one command."""

from __future__ import annotations

import ast
import sys
from typing import Any

from loanstack import cli, embed, template

ALLOWED_THIRD_PARTY = {"boto3", "botocore"}


def test_d3_every_function_names_its_source_and_every_source_is_embedded(
    pristine: dict[str, Any],
) -> None:
    functions = {
        k for k, r in pristine["Resources"].items() if r["Type"] == "AWS::Lambda::Function"
    }
    sources = embed.sources(pristine)
    assert set(sources) == functions
    on_disk = set((template.ROOT / "lib" / "functions").glob("*/index.py"))
    assert set(sources.values()) == on_disk


def test_d3_embedded_code_matches_its_source(pristine: dict[str, Any]) -> None:
    assert embed.stale(pristine) == [], "run: loanstack sync"
    assert cli.main(["sync", "--check"]) == 0


def test_d3_drift_is_detected(doc: dict[str, Any]) -> None:
    doc["Resources"]["SecretRotationLambda"]["Properties"]["Code"]["ZipFile"] += "\n# hand edit\n"
    assert embed.stale(doc) == ["SecretRotationLambda"]
    assert embed.sync(doc) == ["SecretRotationLambda"]
    assert embed.stale(doc) == []


def test_d3_embedded_code_is_the_same_program_without_docstrings(pristine: dict[str, Any]) -> None:
    for logical_id, path in embed.sources(pristine).items():
        code = pristine["Resources"][logical_id]["Properties"]["Code"]["ZipFile"]
        compile(code, logical_id, "exec")
        embedded = {n.name for n in ast.walk(ast.parse(code)) if isinstance(n, ast.FunctionDef)}
        original = {
            n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)
        }
        assert embedded == original and "handler" in embedded


def test_d3_lambda_sources_import_only_the_standard_library_and_boto3(
    pristine: dict[str, Any],
) -> None:
    for path in embed.sources(pristine).values():
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY, (
                    f"{path}: {name}"
                )


def test_d3_functions_run_on_the_python313_runtime_with_index_handler(
    env: template.Environment,
) -> None:
    for fn in env.of_type("AWS::Lambda::Function"):
        assert fn.properties["Runtime"] == "python3.13", fn.logical_id
        assert fn.properties["Handler"] == "index.handler", fn.logical_id


def test_d3_compact_form_drops_only_what_never_runs() -> None:
    source = '''"""Module doc."""
from __future__ import annotations
import os

LIMIT: int = 3
pending: list[str]


def f(a: int, *rest: str, flag: bool = False, **kw: object) -> int:
    """Doc."""
    # a comment
    if a:
        for x in rest:
            if x:
                return a + len(x)
    return LIMIT


class C:
    """Only a docstring."""
'''
    compact = embed.compact(source)
    for gone in (
        "Module doc",
        "__future__",
        "comment",
        "Doc.",
        ": int",
        "-> int",
        ": str",
        "pending",
    ):
        assert gone not in compact
    assert "\n    return a + len(x)" in compact  # four levels, one space each
    namespace: dict[str, object] = {}
    exec(compile(compact, "compact", "exec"), namespace)
    assert namespace["f"](2, "abc") == 5 and namespace["f"](0) == 3  # type: ignore[operator]
