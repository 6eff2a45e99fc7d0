"""The order xdist hands out work: the longest work units first, so no long one ends the run alone.

Under `--dist loadgroup --no-loadscope-reorder` (pyproject's `addopts`) the scheduler queues work
units in collection order, one group (a module whose tests share a module fixture, see tiers.py)
or one test each, and gives a worker the next unit when it has two tests or fewer left. A long
group collected last (the 100,000-row migrations, the 30-second writer outage) then runs on one
worker while the others have nothing left: the idle tail. Without `--no-loadscope-reorder`
xdist sorts the units by their number of tests instead, which says nothing of their length
(the one-test 100,000-row fault migration is the longest unit of the suite).

`order` sorts the collection by the seconds each unit took (COSTS), longest first (the classic
longest-processing-time rule), keeping the tests of a unit together and in their order; the
units not listed (shorter than COSTS_FLOOR) follow in collection order and fill the gaps.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from collections.abc import Iterable

import pytest

# Seconds per work unit of one whole run (pytest --durations=0, setup + call + teardown): the
# whole group for a module whose tests share a module fixture (key: the module), one test
# otherwise (key: module::name, parameters dropped). Only the order matters, so a run on a
# loaded machine serves (this one: 2026-11-30 19:25-19:32, -n 4 with another job running, about
# 1.5 times a quiet machine's seconds). Regenerate when a unit moves by much (a new 100,000-row test, a cut that halves one):
#   pytest --durations=0 -q > durations.log; python -m tests.support.schedule < durations.log
COSTS_FLOOR = 10.0
COSTS: dict[str, float] = {
    "integration/test_data_tier_faults.py": 159.6,
    "integration/test_target_cli.py": 71.9,
    "integration/test_cli_walkthrough.py": 71.6,
    "integration/test_stack_options.py": 67.2,
    "integration/test_migration.py": 62.0,
    "integration/test_real_aws_rules_on_emulator.py": 60.1,
    "integration/test_stack_on_emulator.py": 54.4,
    "integration/test_rotation_on_emulator.py": 38.5,
    "integration/test_emulator_updates.py": 38.3,
    "unit/test_cli.py::test_check_as_json_and_sarif": 33.7,
    "unit/test_check_report.py": 30.2,
    "integration/test_redeploy_same_suffix.py": 28.8,
    "integration/test_detached_emulator.py": 26.9,
    "integration/test_restore_on_emulator.py": 26.9,
    "integration/test_destroy_writers.py": 25.1,
    "integration/test_prod_survives_on_emulator.py": 25.0,
    "integration/test_app_user_on_emulator.py": 24.5,
    "integration/test_manifest.py": 24.1,
    "unit/test_field_tools.py::test_d5_cfn_lint_gate_bites": 23.0,
    "integration/test_demo.py::test_d4_make_demo_deploys_tries_rotates_and_destroys": 21.5,
    "integration/test_previews.py": 20.5,
    "integration/test_deployed_template_refused.py": 17.8,
    "integration/test_loan_properties_db.py::test_any_batch_file_is_fully_accounted_and_one_row_per_loan": 17.5,
    "integration/test_declined.py": 16.7,
    "unit/test_partitions.py::test_cfn_lint_reports_nothing_for_the_other_partitions_regions": 14.6,
    "unit/test_cli.py::test_destroy_of_a_stack_that_is_not_there_says_so_and_succeeds": 14.5,
    "unit/test_field_tools.py::test_d5_checkov_gate_bites": 13.7,
    "unit/test_emulator_stackguard.py": 13.7,
    "unit/test_loan_malformed.py::test_malformed_application_names_each_broken_field": 11.8,
    "unit/test_loan_properties.py::test_the_quick_check_and_the_quick_measures_equal_the_exact_paths": 11.7,
    "unit/test_migrate_blocks.py::test_the_block_cut_equals_the_line_cut": 10.5,
    "unit/test_loan_properties.py::test_the_rules_never_raise_and_match_the_reference": 10.3,
}


# Units whose length is mostly a real-time wait that is their subject (the 30-second writer
# outage, the 10-second access-denied window, destroy held 5 s after each emptying): they go
# first, whatever their seconds, so their waits overlap the other workers' CPU. Three workers
# share two cores: a worker that waits leaves its core to the other two, but a unit that waits
# at the end of the run leaves the cores idle.
WAITING = frozenset(
    {
        "integration/test_data_tier_faults.py",
        "integration/test_destroy_writers.py",
    }
)


def unit_of(item: pytest.Item) -> str:
    """The key of the work unit the scheduler sees the test in (see COSTS): its xdist group
    (tiers.mark gave it), else the test."""
    group = item.get_closest_marker("xdist_group")
    if group is not None:
        return str(group.args[0])
    module = item.nodeid.split("::", 1)[0].removeprefix("tests/")
    return f"{module}::{getattr(item, 'originalname', item.name)}"


def cost(item: pytest.Item) -> float:
    return COSTS.get(unit_of(item), 0.0)


def rank(unit: str) -> tuple[bool, float]:
    """The order key, highest first: the waiting units, then the rest by seconds."""
    return unit in WAITING, COSTS.get(unit, 0.0)


def priority(item: pytest.Item) -> tuple[bool, float]:
    return rank(unit_of(item))


def order(items: list[pytest.Item]) -> None:
    """The waiting units first, then the longest; a unit's tests stay together in their order
    (a stable sort keyed by the unit's rank and its first position). Each test's unit is found once: finding it reads
    the test's fixtures, which is not free over 1,200 tests on every worker."""
    units = [unit_of(item) for item in items]
    first: dict[str, int] = {}
    for index, unit in enumerate(units):
        first.setdefault(unit, index)
    ranks = {unit: rank(unit) for unit in first}
    ranked = sorted(
        range(len(items)),
        key=lambda i: (not ranks[units[i]][0], -ranks[units[i]][1], first[units[i]]),
    )
    items[:] = [items[i] for i in ranked]


DURATION = re.compile(r"^\s*([\d.]+)s (setup|call|teardown)\s+tests/(\S+?)(?:@\S+)?$")
PARAMETERS = re.compile(r"\[.*\]$")


def costs_from_durations(lines: Iterable[str], grouped: set[str]) -> dict[str, float]:
    """COSTS from `pytest --durations=0` output: seconds per unit, a group's summed over its
    tests; a parametrized test's key (parameters dropped) takes its longest case."""
    per_test: dict[str, float] = defaultdict(float)
    for line in lines:
        if (match := DURATION.match(line)) is None:
            continue
        per_test[match.group(3)] += float(match.group(1))
    found: dict[str, float] = defaultdict(float)
    for test, seconds in per_test.items():
        module = test.split("::", 1)[0]
        if module in grouped:
            found[module] += seconds
        else:
            key = PARAMETERS.sub("", test)
            found[key] = max(found[key], seconds)
    return {unit: round(s, 1) for unit, s in found.items() if s >= COSTS_FLOOR}


def main() -> None:
    """Print COSTS for the durations on stdin (the grouped modules are read from the node ids,
    which carry `@<group>` under --dist loadgroup)."""
    text = sys.stdin.read().splitlines()
    grouped = {m.group(1) for m in re.finditer(r"tests/(\S+?)::\S*@\1", "\n".join(text))}
    for unit, seconds in sorted(costs_from_durations(text, grouped).items(), key=lambda u: -u[1]):
        print(f'    "{unit}": {seconds},')


if __name__ == "__main__":
    main()
