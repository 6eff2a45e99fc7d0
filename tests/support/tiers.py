"""Tests by tier: each test is marked by what it needs, and a `unit` test is held to needing nothing.

Tiers (markers, registered in pyproject.toml):
  unit        no emulator, no MariaDB, no subprocess: runs anywhere in seconds
  emulator    the embedded emulator (its moto patches installed, or its server started)
  mariadb     a MariaDB server started by the test run
  subprocess  an outside program: the `loanstack` entry point, make, cfn-lint, checkov, cfn-guard
  aws         a real AWS account (opt-in, LOANSTACK_AWS_TESTS=1)

The marks come from the fixtures a test uses (FIXTURE_TIERS: the shared fixtures of
tests/integration/conftest.py) and, for modules that build what they need in their own fixtures,
from MODULE_TIERS; a test neither gives is `unit`. `outside_resources_forbidden` then makes every
`unit` test fail the moment it starts a process or installs the emulator's patches, so a wrong
`unit` mark cannot stand.

Parallel runs (pytest-xdist, `--dist loadgroup`): the tests of a module that uses a module-scoped
fixture (a deployed stack, an emulator) form one `xdist_group`, so that fixture is built once, on
one worker, and the module's tests keep their order; EXCLUSIVE_GROUPS would put tests that write
one place in the work tree on one worker (none do today). Session fixtures (MariaDB) are per worker by construction.
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest

TIERS = ("unit", "emulator", "mariadb", "subprocess", "aws")
TESTS = Path(__file__).resolve().parents[1]

FIXTURE_TIERS = {
    "emulator": "emulator",
    "target": "emulator",
    "deployed_dev_stack": "emulator",
    "mariadb": "mariadb",
    "mariadb_tls": "mariadb",
    "loans": "mariadb",
    "worker_emulator": "subprocess",
}

# Modules (or single tests, module::name) whose own fixtures or bodies start what they need
# (paths relative to tests/).
MODULE_TIERS: dict[str, tuple[str, ...]] = {
    "unit/test_emulator_audit_extensions.py": ("emulator",),
    "unit/test_emulator_global_names.py": ("emulator",),
    "unit/test_emulator_zones.py": ("emulator",),
    "unit/test_emulator_stackguard.py": ("emulator",),
    "unit/test_rotation_race.py": ("emulator",),
    "unit/test_rotation_recovery.py": ("emulator",),
    "unit/test_emulator_door.py": ("subprocess",),
    "unit/test_emulator_faults.py": ("emulator", "subprocess"),
    "unit/test_invoke_payloads.py": ("subprocess",),
    "integration/test_verify.py": ("subprocess", "emulator"),
    "unit/test_verify_parallel.py": ("subprocess",),  # verify's worker processes
    "unit/test_verify_blocks.py": ("subprocess",),  # verify's worker processes
    "integration/test_data_tier_faults.py": ("emulator",),
    "integration/test_manifest.py": ("subprocess", "emulator"),  # the manifest asks git
    "integration/test_restore_on_emulator.py": ("subprocess", "emulator"),  # migrate's manifest
    "unit/test_tiers.py::test_the_guard_puts_back_what_an_earlier_test_left": ("emulator",),
    "integration/test_previews.py": ("subprocess", "emulator"),
    "integration/test_stack_options.py": ("subprocess", "emulator"),
    "unit/test_cli.py": ("subprocess", "emulator"),
    "unit/test_cli_output.py": ("subprocess",),
    "unit/test_migrate.py": ("subprocess",),
    "unit/test_moto_fence.py": ("emulator", "subprocess"),
    "unit/test_template_format.py": ("emulator",),  # the patches installed
    "unit/test_field_tools.py": ("subprocess",),
    "unit/test_control_tower.py": ("subprocess",),
    "unit/test_check_report.py": ("subprocess",),
    "unit/test_startup.py": ("subprocess",),
    "unit/test_emulator_async_lambda.py": ("emulator", "subprocess"),  # sandbox processes
    "unit/test_emulator_lambda_threads.py": ("emulator", "subprocess"),  # sandbox processes
    "unit/test_emulator_sandbox_lifecycle.py": ("emulator", "subprocess"),  # sandbox processes
    "unit/test_emulator_extensions.py": ("emulator",),
    "unit/test_emulator_password_timing.py": ("emulator",),
    "unit/test_emulator_security_group_rules.py": ("emulator",),
    "unit/test_secret_rotation.py": ("emulator",),
    "integration/test_cli_walkthrough.py": ("subprocess",),
    "integration/test_target_cli.py": ("subprocess",),
    "integration/test_detached_emulator.py": ("subprocess",),
    "integration/test_declined.py": ("subprocess",),
    "integration/test_demo.py": ("emulator",),
    "integration/test_deployed_on_aws.py": ("aws",),
}

# Tests that write one shared place in the work tree run on one worker, one after another (a
# module, or one test as module::name, mapped to a group name). None today: the cfn-guard rules
# under .cache/cfn-guard, which the first `loanstack check` used to unpack in place, are fetched
# by the Makefile's install step and only read by tests (control_tower.ensure_guard), so the 16
# tests that were held together here for them (checkov, cfn-guard and cfn-lint runs, ~60 s of
# CPU) spread over both workers again.
EXCLUSIVE_GROUPS: dict[str, str] = {}


def module_key(item: pytest.Item) -> str:
    return relative(item.path)


@functools.cache
def relative(path: Path) -> str:
    """A module's path under tests/ (resolved once per module, not once per test)."""
    return path.resolve().relative_to(TESTS).as_posix()


def table_keys(item: pytest.Item) -> tuple[str, str]:
    """How the tables below name a test: module::name first, then its module."""
    key = module_key(item)
    return f"{key}::{getattr(item, 'originalname', item.name)}", key


def tiers_of(item: pytest.Item) -> set[str]:
    """The tiers a test belongs to; `unit` only when it needs none of the others."""
    found = {FIXTURE_TIERS[name] for name in item.fixturenames if name in FIXTURE_TIERS}
    for key in table_keys(item):
        found.update(MODULE_TIERS.get(key, ()))
    found.update(mark.name for mark in item.iter_markers() if mark.name in TIERS)
    return found or {"unit"}


def uses_module_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(
        defs[-1].scope in ("module", "class", "package") for defs in info.name2fixturedefs.values()
    )


def group_of(item: pytest.Item) -> str | None:
    """The xdist group a test must share a worker with (None: any worker)."""
    for key in table_keys(item):
        if key in EXCLUSIVE_GROUPS:
            return EXCLUSIVE_GROUPS[key]
    if uses_module_fixture(item):
        return module_key(item)
    return None


def mark(items: Iterable[pytest.Item], loadgroup: bool = False) -> None:
    for item in items:
        for tier in sorted(tiers_of(item)):
            item.add_marker(getattr(pytest.mark, tier))
        group = group_of(item)
        if group is not None and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(group))
        if group is not None and loadgroup:
            name_the_group(item, group)


def name_the_group(item: pytest.Item, group: str) -> None:
    """Give the test the node id `--dist loadgroup` schedules by (`<nodeid>@<group>`).

    pytest-xdist 3.8 does this itself by assigning `item._nodeid`, which pytest 9 no longer
    reads (a node's id is `item._id`, a NodeId): without this the groups were silently ignored,
    so a module's tests went to both workers and each worker built the module's emulator and
    stack for itself. The id is parsed back as pytest would parse it; a suffix already there
    (an xdist that sets it again) is kept as is: the group is what follows the last `@`.
    """
    from _pytest.nodeid import NodeId  # pytest 9: the structured node id

    if item.nodeid.endswith(f"@{group}"):
        return
    item._id = NodeId.parse(f"{item.nodeid}@{group}")  # private: see above


def _refuse(what: str) -> Callable[..., NoReturn]:
    def refused(*_args: Any, **_kwargs: Any) -> NoReturn:
        pytest.fail(
            f"a test marked `unit` started {what}; give it its tier in "
            "tests/support/tiers.py (MODULE_TIERS) or use the tier's fixture",
            pytrace=False,
        )

    return refused


@contextmanager
def outside_resources_forbidden(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """For the test's duration: moto as plain moto, and any process start or emulator install
    fails the test. An emulator test earlier on this worker may have left the emulator's patches
    on (installing is idempotent and tests do not undo it); they are taken off for the unit test
    and put back after it, so the tests around it see what they saw before."""
    from loanstack.emulator import fence  # light: the fence imports no moto

    was_applied = fence.applied()
    if was_applied:
        from loanstack.emulator import patches

        patches.uninstall()
    with monkeypatch.context() as guard:
        guard.setattr(subprocess.Popen, "_execute_child", _refuse("a subprocess"))
        for name in ("posix_spawn", "posix_spawnp", "fork", "system"):
            if hasattr(os, name):
                guard.setattr(os, name, _refuse(f"a process (os.{name})"))
        guard.setattr(fence, "apply", _refuse("the emulator (its moto patches)"))
        try:
            yield
        finally:
            guard.undo()
            if was_applied:
                patches.install()
