"""Shared fixtures (the template as loaded from disk, its `template.Environment` per environment
type) and the tiers: every test is marked `unit`, `emulator`, `mariadb`, `subprocess` or `aws` by what it uses,
and a `unit` test fails if it starts a process or the emulator (tests/support/tiers.py)."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loanstack import template
from loanstack.compliance import judge_cache
from tests.support import schedule, sessions, tiers

ENVIRONMENTS = ("dev", "prod")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups (--dist loadgroup)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    loadgroup = bool(getattr(config.option, "loadgroup", False))
    tiers.mark(items, loadgroup=loadgroup)
    if loadgroup:  # the longest work units first (tests/support/schedule.py)
        schedule.order(items)


@pytest.fixture(scope="session", autouse=True)
def _worker_paths(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The files a command writes by default (the outputs file, the emulator's state file) live
    in this worker's temporary directory, never in the work tree shared by parallel workers.
    Not when real-AWS tests are asked for: they read the outputs file of a real deployment.
    The outside judges' verdicts (checkov ~12 s of CPU, cfn-lint ~7 s) are kept for the session,
    shared by its workers (compliance/judge_cache.py): the unchanged template is judged once."""
    if os.environ.get("LOANSTACK_AWS_TESTS") == "1":
        yield
        return
    worker = tmp_path_factory.mktemp("worker")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LOANSTACK_OUTPUTS_FILE", str(worker / "cfn-outputs" / "flat-outputs.json"))
        env.setenv("LOANSTACK_EMULATOR_STATE", str(worker / "emulator.json"))
        env.setenv(judge_cache.VARIABLE, str(session_root(tmp_path_factory) / "judges"))
        yield


def session_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This session's temporary root, shared by its xdist workers (each worker's base is a
    directory in it), new for every session."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session", autouse=True)
def _shared_boto_models() -> None:
    """New default boto3 sessions (one per test under moto) share botocore's parsed data files
    (tests/support/sessions.py)."""
    sessions.share_default_sessions()


@pytest.fixture(autouse=True)
def _tier_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A `unit` test may not start a process or the emulator (the tier's definition)."""
    if request.node.get_closest_marker("unit") is None:
        yield
        return
    with tiers.outside_resources_forbidden(monkeypatch):
        yield


@pytest.fixture(scope="session")
def pristine() -> dict[str, Any]:
    return template.load()


@pytest.fixture
def doc(pristine: dict[str, Any]) -> dict[str, Any]:
    """A private copy of the template that a test may mutate."""
    return copy.deepcopy(pristine)


@pytest.fixture(params=ENVIRONMENTS)
def env_type(request: pytest.FixtureRequest) -> str:
    """The template's EnvironmentType parameter, once per value."""
    return str(request.param)


@pytest.fixture
def env(pristine: dict[str, Any], env_type: str) -> template.Environment:
    return template.instantiate(pristine, template.judged_parameters(env_type, "dev42"))
