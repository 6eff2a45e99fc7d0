"""The emulator's state (MariaDB, endpoint, lease, asynchronous invocations, faults, pause
states) is owned by one object, `state.STATE`, not scattered over module globals."""

from __future__ import annotations

import ast
from pathlib import Path

from loanstack.emulator import Emulator
from loanstack.emulator.state import STATE, EmulatorState

EMULATOR = Path(__file__).resolve().parents[2] / "src" / "loanstack" / "emulator"
# registries that are no emulator's state (moto's patches, the extension classes, bookkeeping
# that lives and dies with moto's own ResourceMap objects) and constants never changed
ALLOWED = {("base.py", "EXTENSIONS"), ("fence.py", "_applied"), ("patches.py", "PATCHES"),
           ("cloudformation.py", "_creation_orders"), ("state.py", "STATE"),
           ("__init__.py", "CREDENTIALS"), ("__init__.py", "__all__"), ("awslambda.py", "__all__"),
           ("deletion.py", "DELETERS"), ("rdsdata_errors.py", "STATUS"), ("s3.py", "REQUEST_CONTEXT"),
           ("s3.py", "OPERATORS"), ("audit.py", "SOURCE_KINDS"),
           ("private_reads.py", "PRIVATE_READS")}  # fmt: skip
MUTABLE_CALLS = {"dict", "list", "set", "Lease", "Condition", "defaultdict", "EmulatorState"}


def mutable(value: ast.expr | None) -> bool:
    if isinstance(value, ast.Dict | ast.List | ast.Set):
        return True
    if isinstance(value, ast.Call):
        func = value.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        return name in MUTABLE_CALLS
    return False


def test_no_emulator_module_keeps_state_in_a_global() -> None:
    found = []
    for path in sorted(EMULATOR.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, ast.AnnAssign):
                targets, value = [node.target], node.value
            else:
                continue
            for target in targets:
                named = isinstance(target, ast.Name) and mutable(value)
                if named and (path.name, getattr(target, "id", "")) not in ALLOWED:
                    found.append(f"{path.name}: {getattr(target, 'id', '')}")
    assert not found, found


def test_the_emulator_exposes_its_one_state_object() -> None:
    emulator = Emulator()
    assert isinstance(STATE, EmulatorState)
    assert emulator.faults is STATE.faults
    fields = vars(STATE)
    assert {"mariadb", "endpoint_url", "lease", "invocations", "faults", "capacity"} <= set(fields)
