"""The layers of docs/architecture.md, enforced: each module of src/loanstack imports only from
its own layer and the layers its row allows, and the emulator is reached only through its door.
Imports are read from the source (ast), those inside functions and TYPE_CHECKING blocks too.
The door is light: what its modules run at import time (module-level imports, TYPE_CHECKING
blocks aside) reaches no emulator module behind it, nor moto or pymysql."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from loanstack.aws import target
from loanstack.template import ROOT

SRC = ROOT / "src"
# The layer of each module: the longest prefix wins ("p.*": the modules under package p, not p
# itself). A new module needs a row here (and a line in docs/architecture.md) before it may
# import anything.
LAYERS = {
    "loanstack": "base",
    "loanstack.errors": "base",
    "loanstack.names": "base",
    "loanstack.render": "base",
    "loanstack.template": "base",
    "loanstack.intrinsics": "base",
    "loanstack.cfnlint_data": "base",
    "loanstack.functions": "base",
    "loanstack.policy": "base",
    "loanstack.contract": "base",
    "loanstack.botocore_models": "base",
    "loanstack.compliance": "judges",
    "loanstack.cost": "judges",
    "loanstack.diagram": "judges",
    "loanstack.embed": "judges",
    "loanstack.aws": "aws",
    "loanstack.stack": "stack",
    "loanstack.ops": "ops",
    "loanstack.ops.batchpath": "ops",
    "loanstack.ops.firstlines": "ops",
    "loanstack.ops.manifest_check": "ops",
    "loanstack.ops.migrate_report": "ops",
    "loanstack.testing": "ops",
    "loanstack.cli": "commands",
    "loanstack.demo": "commands",
    "loanstack.__main__": "commands",
    "loanstack.emulator": "door",  # the package's light names (credentials, EmulatorError)
    "loanstack.emulator.door": "door",
    "loanstack.emulator.control": "door",
    "loanstack.emulator.*": "emulator",
}
MAY_IMPORT = {
    "base": {"base"},
    "judges": {"base", "judges"},
    "aws": {"base", "aws"},
    "stack": {"base", "aws", "stack"},
    "ops": {"base", "aws", "ops"},
    "commands": {"base", "judges", "aws", "stack", "ops", "commands"},
    "door": {"base", "door", "emulator"},  # the emulator only lazily: EAGER below
    "emulator": {"base", "door", "emulator"},
}
# What a layer's modules may import when they are imported (module level), when less than all.
EAGER = {"door": {"base", "door"}}
HEAVY = ("moto", "pymysql", "werkzeug")  # the emulator extra: never imported by the door eagerly
DOOR_OWNER = "loanstack.aws.target"  # the one module that names the door (imported lazily)


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / "loanstack").rglob("*.py"))}


def covers(row: str, name: str) -> bool:
    if row.endswith(".*"):
        return name.startswith(row.removesuffix("*"))
    return name == row or name.startswith(row + ".")


def layer_of(name: str) -> str | None:
    prefixes = [p for p in LAYERS if covers(p, name)]
    return LAYERS[max(prefixes, key=len)] if prefixes else None


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The loanstack modules `path` imports (`from loanstack import x` counts as loanstack.x
    when that is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {n for n in found if n in known}


def eager_imports_of(path: Path, known: set[str]) -> set[str]:
    """The loanstack modules and HEAVY packages `path` imports when it is imported:
    module-level statements, outside functions and `if TYPE_CHECKING:` blocks."""
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
                visit(node.body + node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body + node.orelse + node.finalbody)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return {n for n in found if n in known or n.split(".")[0] in HEAVY}


def eager_violations(eager: dict[str, set[str]]) -> list[str]:
    wrong = []
    for importer, imported in sorted(eager.items()):
        allowed = EAGER.get(layer_of(importer) or "")
        if allowed is None:
            continue
        for name in sorted(imported):
            theirs = layer_of(name)
            if name.split(".")[0] in HEAVY or (theirs is not None and theirs not in allowed):
                wrong.append(
                    f"{importer} imports {name} when it is imported: import it inside the "
                    "function that needs it (the door stays light)"
                )
    return wrong


def violations(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for importer, imported in sorted(graph.items()):
        mine = layer_of(importer)
        if mine is None:
            wrong.append(f"{importer} has no layer: add it to LAYERS and docs/architecture.md")
            continue
        for name in sorted(imported):
            theirs = layer_of(name)
            if theirs in ("door", "emulator") and mine not in ("door", "emulator"):
                wrong.append(
                    f"{importer} imports {name}: the emulator is reached only through "
                    f"its door, lazily, in {DOOR_OWNER}"
                )
            elif theirs not in MAY_IMPORT[mine]:
                wrong.append(f"{importer} ({mine}) imports {name} ({theirs})")
    return wrong


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(path, known) - {name} for name, path in found.items()}


def test_each_module_imports_only_what_its_layer_may() -> None:
    assert violations(graph()) == []


def test_the_door_imports_nothing_heavy_when_imported() -> None:
    found = modules()
    eager = {name: eager_imports_of(path, set(found)) for name, path in found.items()}
    assert {n for n in eager if layer_of(n) == "door"} == {
        "loanstack.emulator",
        "loanstack.emulator.door",
        "loanstack.emulator.control",
    }
    assert eager_violations(eager) == []


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("loanstack.emulator.door", "loanstack.emulator.inprocess"),  # the heavy half, eagerly
        ("loanstack.emulator.control", "loanstack.emulator.server"),  # Emulator, eagerly
        ("loanstack.emulator", "loanstack.emulator.patches"),  # the package's light names
        ("loanstack.emulator.door", "moto"),  # the extra itself
    ],
)
def test_the_rules_refuse_a_heavy_import_in_the_door(importer: str, imported: str) -> None:
    assert eager_violations({importer: {imported}})


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("loanstack.aws.target", "loanstack.stack.deploy"),  # AWS-facing code above its users
        ("loanstack.template", "loanstack.cli.main"),  # the model above the commands
        ("loanstack.stack.deploy", "loanstack.emulator"),  # the emulator past its door
        ("loanstack.cli.local", "loanstack.emulator.door"),  # the door, but not lazily
        ("loanstack.cli.local", "loanstack.emulator.control"),  # the door's light half, directly
        ("loanstack.emulator.door", "loanstack.aws.target"),  # the emulator using the tool
        ("loanstack.ops.migrate", "loanstack.stack.destroy"),  # one operation on another layer
    ],
)
def test_the_rules_refuse_an_import_against_the_layers(importer: str, imported: str) -> None:
    assert violations({importer: {imported}})


def test_the_door_is_named_in_one_module_only() -> None:
    """`local_door` imports the door by name (importlib); no other tool module names it."""
    assert target.DOOR == "loanstack.emulator.door"
    assert (SRC / "loanstack" / "emulator" / "door.py").exists()
    naming = set()
    for name, path in modules().items():
        if layer_of(name) == "emulator":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value == target.DOOR:
                naming.add(name)
    assert naming == {DOOR_OWNER}
