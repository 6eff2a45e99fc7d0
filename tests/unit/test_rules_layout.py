"""The own checks' layout (src/loanstack/compliance/rules/): importing the package registers every
check once, the ids are the ones `loanstack check` has always reported, and each module holds the
checks of its concern only, small enough to read in one sitting."""

from __future__ import annotations

import inspect
from collections import Counter
from pathlib import Path

from loanstack.compliance import rules

# The ids as reported before the split (LS010, LS013 and LS014 were retired earlier).
IDS = {f"LS{n:03d}" for n in range(1, 33)} - {"LS010", "LS013", "LS014"}
# The requirements each concern judges (docs/requirements.md): a check filed in the wrong module,
# or a module that grows a second concern, fails here.
CONCERN_REQUIREMENTS = {
    "template_contract": {"R1", "R1b"},
    "names_and_tags": {"R4", "R5"},
    "survival": {"R6"},
    "network": {"R7"},
    "encryption_keys": {"R8"},
    "data_tier": {"R9"},
    "capacity": {"R11", "R14"},
    "logs_and_audit": {"R12", "R14"},
    "iam": {"R15"},
}
MAX_LINES = 400


def concern_of(check: rules.Check) -> str:
    return check.judge.__module__.rpartition(".")[2]


def test_importing_the_package_registers_each_check_once_under_its_id() -> None:
    counted = Counter(c.id for c in rules.CHECKS)
    assert set(counted) == IDS
    assert max(counted.values()) == 1
    assert [c.id for c in rules.CHECKS] == sorted(IDS)  # the table's order


def test_each_concern_module_holds_only_checks_of_its_requirements() -> None:
    assert {m.__name__.rpartition(".")[2] for m in rules.CONCERNS} == set(CONCERN_REQUIREMENTS)
    for check in rules.CHECKS:
        concern = concern_of(check)
        assert concern in CONCERN_REQUIREMENTS, f"{check.id} is defined outside a concern module"
        assert check.requirement in CONCERN_REQUIREMENTS[concern], (check.id, concern)
    assert {concern_of(c) for c in rules.CHECKS} == set(CONCERN_REQUIREMENTS)  # none empty


def test_each_rules_module_stays_readable() -> None:
    package = Path(inspect.getfile(rules)).parent
    for module in package.glob("*.py"):
        lines = len(module.read_text(encoding="utf-8").splitlines())
        assert lines < MAX_LINES, f"{module.name}: {lines} lines"
