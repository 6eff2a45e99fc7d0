"""The xdist scheduler gets the longest work units first (tests/support/schedule.py): a long
group handed out last ends the run alone while the other workers idle. The session-wide check
sees every test in a full run (`make test`), the selected ones otherwise."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tests.support import schedule, tiers


class Worker:
    """What the scheduler asks of a worker; every batch of tests sent is logged in `log`."""

    def __init__(self, log: list[list[int]], name: str) -> None:
        self.log, self.shutting_down, self.gateway = log, False, SimpleNamespace(id=name)

    def send_runtest_some(self, indexes: list[int]) -> None:
        self.log.append(indexes)

    def shutdown(self) -> None:
        self.shutting_down = True


def handed_out(config: pytest.Config, collection: list[str], workers: int = 3) -> list[str]:
    """The work units (scopes) in the order xdist's own LoadGroupScheduling hands them out:
    the ones sent at the start, then its queue, which workers take from in order."""
    from xdist.scheduler.loadgroup import LoadGroupScheduling

    # the main process's options as they reached this worker; `workers` local workers
    main = SimpleNamespace(
        option=config.option, hook=config.hook, getvalue=lambda _: [f"{workers}*popen"]
    )
    scheduler = LoadGroupScheduling(main)
    log: list[list[int]] = []
    for n in range(workers):
        node: Any = Worker(log, f"gw{n}")
        scheduler.add_node(node)
        scheduler.add_node_collection(node, collection)
    scheduler.schedule()
    sent = [scheduler._split_scope(collection[batch[0]]) for batch in log]
    return sent + list(scheduler.workqueue)


def test_the_scheduler_hands_out_the_longest_units_first(request: pytest.FixtureRequest) -> None:
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("only an xdist worker under --dist loadgroup schedules by group")
    assert request.config.option.loadscopereorder is False, (
        "xdist reorders the units by their number of tests: keep --no-loadscope-reorder"
    )
    from xdist.scheduler.loadgroup import LoadGroupScheduling

    items = request.session.items
    split = LoadGroupScheduling._split_scope  # the scheduler's own reading
    rank_of = {split(None, item.nodeid): schedule.priority(item) for item in items}
    ranks = [rank_of[scope] for scope in handed_out(request.config, [i.nodeid for i in items])]
    assert ranks == sorted(ranks, reverse=True), ranks[:20]


def test_the_scheduler_keeps_the_collection_order_of_units(request: pytest.FixtureRequest) -> None:
    """A one-test unit collected first goes out first, before a group of three (xdist's own
    reordering, by number of tests, would send the group first)."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("only an xdist worker under --dist loadgroup schedules by group")
    collection = [
        "tests/unit/test_long.py::test_one",
        *(f"tests/integration/test_g.py::test_{n}@integration/test_g.py" for n in range(3)),
        "tests/unit/test_short.py::test_two",
        "tests/unit/test_short.py::test_three",
    ]
    assert handed_out(request.config, collection) == [
        "tests/unit/test_long.py::test_one",
        "integration/test_g.py",
        "tests/unit/test_short.py::test_two",
        "tests/unit/test_short.py::test_three",
    ]


def test_a_units_tests_stay_together_in_their_order(request: pytest.FixtureRequest) -> None:
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("the collection is reordered only under --dist loadgroup")
    seen: list[str] = []
    for item in request.session.items:
        unit = schedule.unit_of(item)
        if not seen or seen[-1] != unit:
            assert unit not in seen, f"{unit} is split by the order"
            seen.append(unit)


def test_every_unit_named_in_the_costs_exists() -> None:
    for key in [*schedule.COSTS, *schedule.WAITING]:
        module, _, name = key.partition("::")
        path = tiers.TESTS / module
        assert path.is_file(), key
        assert not name or f"def {name}(" in path.read_text(encoding="utf-8"), key


def test_costs_are_read_from_pytest_durations() -> None:
    lines = [
        "============================= slowest durations ==============================",
        "70.51s call     tests/integration/test_migration_faults.py::test_faults@integration/test_migration_faults.py",
        "3.00s setup    tests/integration/test_migration_faults.py::test_faults@integration/test_migration_faults.py",
        "8.00s call     tests/integration/test_migration.py::test_a@integration/test_migration.py",
        "2.50s call     tests/integration/test_migration.py::test_b@integration/test_migration.py",
        "12.25s call    tests/unit/test_cli.py::test_usage[deploy]",
        "0.01s teardown tests/unit/test_cli.py::test_usage[deploy]",
        "11.50s call    tests/unit/test_cli.py::test_usage[destroy]",
        "1.00s call     tests/unit/test_cli.py::test_short",
    ]
    grouped = {"integration/test_migration_faults.py", "integration/test_migration.py"}
    assert schedule.costs_from_durations(lines, grouped) == {
        "integration/test_migration_faults.py": 73.5,
        "integration/test_migration.py": 10.5,
        "unit/test_cli.py::test_usage": 12.3,
    }
