"""The benchmarks run as modules of the `bench` package (`python -m bench.<name>`), importing the
tool and the test support as installed or from the repository root, never by editing sys.path."""

from __future__ import annotations

import importlib
import tomllib

import pytest

from loanstack import template

BENCH = template.ROOT / "bench"
MODULES = sorted(p.stem for p in BENCH.glob("*.py") if p.stem != "__init__")
# a benchmark is a module that runs (`__main__`); the others are what benchmarks share
SCRIPTS = [m for m in MODULES if "__main__" in (BENCH / f"{m}.py").read_text(encoding="utf-8")]


def test_there_are_benchmarks() -> None:
    assert {"batch_file", "emulator_deploy", "migrate", "rules_throughput"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", MODULES)
def test_no_bench_module_edits_the_import_path(name: str) -> None:
    assert "sys.path" not in (BENCH / f"{name}.py").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_benchmark_edits_no_import_path_and_imports_as_a_module(name: str) -> None:
    source = (BENCH / f"{name}.py").read_text(encoding="utf-8")
    assert "sys.path" not in source
    assert f"python -m bench.{name}" in source  # its docstring says how to run it
    module = importlib.import_module(f"bench.{name}")
    assert callable(module.main)


def test_the_benchmarks_are_type_checked_with_the_tool() -> None:
    """`make typecheck` runs mypy on pyproject's `files`: bench/ calls the tool's functions, so a
    renamed or retyped one fails CI there rather than at the next rerun of a benchmark."""
    config = tomllib.loads((template.ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert {"src/loanstack", "bench"} <= set(config["tool"]["mypy"]["files"])
