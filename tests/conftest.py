"""Shared fixtures: the template as loaded from disk and one instance per environment."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from loanstack import template

ENVIRONMENTS = ("dev", "prod")


@pytest.fixture(scope="session")
def pristine() -> dict[str, Any]:
    return template.load()


@pytest.fixture
def doc(pristine: dict[str, Any]) -> dict[str, Any]:
    """A private copy of the template that a test may mutate."""
    return copy.deepcopy(pristine)


@pytest.fixture(params=ENVIRONMENTS)
def env(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def instance(pristine: dict[str, Any], env: str) -> template.Environment:
    return template.instantiate(pristine, {"EnvironmentType": env, "EnvironmentSuffix": "dev42"})
