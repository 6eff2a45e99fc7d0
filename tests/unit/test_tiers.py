"""The tiers hold: every test has one, a `unit` test uses no resource fixture and cannot start a
process or the emulator, and tests sharing a module fixture share an xdist worker. The
session-wide checks see every test in a full run (`make test`), the selected ones otherwise."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from loanstack.emulator.mariadb import SERVER, MariaDB
from tests.support import tiers


def marked(item: pytest.Item) -> set[str]:
    return {m.name for m in item.iter_markers() if m.name in tiers.TIERS}


def test_every_collected_test_has_a_tier(request: pytest.FixtureRequest) -> None:
    items = request.session.items
    assert items and all(marked(item) for item in items)


def test_unit_tests_use_no_resource_fixture(request: pytest.FixtureRequest) -> None:
    for item in request.session.items:
        if "unit" in marked(item):
            assert marked(item) == {"unit"}, item.nodeid
            assert not set(item.fixturenames) & set(tiers.FIXTURE_TIERS), item.nodeid


def test_tests_using_a_resource_fixture_carry_its_tier(request: pytest.FixtureRequest) -> None:
    for item in request.session.items:
        for name in set(item.fixturenames) & set(tiers.FIXTURE_TIERS):
            assert tiers.FIXTURE_TIERS[name] in marked(item), item.nodeid


def test_every_test_named_in_the_tier_tables_exists() -> None:
    for key in {*tiers.MODULE_TIERS, *tiers.EXCLUSIVE_GROUPS}:
        module, _, name = key.partition("::")
        path = tiers.TESTS / module
        assert path.is_file(), key
        assert not name or f"def {name}(" in path.read_text(encoding="utf-8"), key


def test_tests_of_a_module_fixture_share_one_worker(request: pytest.FixtureRequest) -> None:
    for item in request.session.items:
        if tiers.uses_module_fixture(item):
            groups = [m.args[0] for m in item.iter_markers("xdist_group")]
            assert groups == [tiers.group_of(item)], item.nodeid


def test_the_groups_reach_the_xdist_scheduler(request: pytest.FixtureRequest) -> None:
    """Under `--dist loadgroup` the scheduler groups by the node id's `@<group>` suffix, so a
    group that is only a marker is no group at all (pytest 9 ignored xdist 3.8's suffix: every
    module fixture was built on both workers)."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("only an xdist worker under --dist loadgroup schedules by group")
    from xdist.scheduler.loadgroup import LoadGroupScheduling

    split = LoadGroupScheduling._split_scope  # the scheduler's own reading
    items = request.session.items
    sharing = [item for item in items if tiers.uses_module_fixture(item)]
    if not sharing:
        pytest.skip("no selected test uses a module fixture: there is no group to schedule")
    grouped = [item for item in items if tiers.group_of(item)]
    assert {item.nodeid for item in sharing} <= {item.nodeid for item in grouped}
    for item in grouped:
        assert split(None, item.nodeid) == tiers.group_of(item), item.nodeid  # type: ignore[arg-type]


def test_this_test_is_unit(request: pytest.FixtureRequest) -> None:
    assert marked(request.node) == {"unit"}


def test_a_unit_test_cannot_start_a_process() -> None:
    with pytest.raises(pytest.fail.Exception, match="marked `unit` started a subprocess"):
        subprocess.run(["true"], check=False)


def test_a_unit_test_cannot_install_the_emulator() -> None:
    from loanstack.emulator import fence, install

    assert not fence.applied(), "a unit test sees plain moto, whatever ran before it"
    with pytest.raises(pytest.fail.Exception, match="started the emulator"):
        install()
    assert not fence.applied()


def test_a_unit_test_cannot_start_mariadb(tmp_path: Path) -> None:
    if not Path(SERVER).exists():
        pytest.skip(f"MariaDB is not installed ({SERVER})")
    with pytest.raises(pytest.fail.Exception, match="marked `unit` started"):
        MariaDB(tmp_path).start()


def test_the_guard_puts_back_what_an_earlier_test_left() -> None:
    """Order must not matter: patches an emulator test left on are off during a unit test and on
    again after it, for the tests that follow on the same worker. (This test installs the
    patches itself, so it is in the emulator tier and runs the guard by hand.)"""
    from loanstack.emulator import fence, patches

    patches.install()
    try:
        with tiers.outside_resources_forbidden(pytest.MonkeyPatch()):
            assert not fence.applied()
            with pytest.raises(pytest.fail.Exception, match="started a subprocess"):
                subprocess.run(["true"], check=False)
        assert fence.applied()
        subprocess.run(["true"], check=True)  # the guard is gone with the test
    finally:
        patches.uninstall()
