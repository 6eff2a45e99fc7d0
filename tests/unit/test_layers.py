"""The layers of docs/architecture.md, enforced: each module of src/loanstack imports only from
its own layer and the layers its row allows, and the emulator is reached only through its door.
Imports are read from the source (ast), those inside functions and TYPE_CHECKING blocks too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from loanstack.aws import target
from loanstack.template import ROOT

SRC = ROOT / "src"
# The layer of each module: the longest prefix wins. A new module needs a row here (and a line
# in docs/architecture.md) before it may import anything.
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
    "loanstack.emulator": "emulator",
}
MAY_IMPORT = {
    "base": {"base"},
    "judges": {"base", "judges"},
    "aws": {"base", "aws"},
    "stack": {"base", "aws", "stack"},
    "ops": {"base", "aws", "ops"},
    "commands": {"base", "judges", "aws", "stack", "ops", "commands"},
    "emulator": {"base", "emulator"},
}
DOOR_OWNER = "loanstack.aws.target"  # the one module that names the door (imported lazily)


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / "loanstack").rglob("*.py"))}


def layer_of(name: str) -> str | None:
    prefixes = [p for p in LAYERS if name == p or name.startswith(p + ".")]
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


def violations(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for importer, imported in sorted(graph.items()):
        mine = layer_of(importer)
        if mine is None:
            wrong.append(f"{importer} has no layer: add it to LAYERS and docs/architecture.md")
            continue
        for name in sorted(imported):
            theirs = layer_of(name)
            if theirs == "emulator" and mine != "emulator":
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


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("loanstack.aws.target", "loanstack.stack.deploy"),  # AWS-facing code above its users
        ("loanstack.template", "loanstack.cli.main"),  # the model above the commands
        ("loanstack.stack.deploy", "loanstack.emulator"),  # the emulator past its door
        ("loanstack.cli.local", "loanstack.emulator.door"),  # the door, but not lazily
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
