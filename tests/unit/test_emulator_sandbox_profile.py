"""A benchmark's profile directory (bench/emulated.py's LOANSTACK_BENCH_CPROFILE) reaches a
Lambda sandbox's environment only when the benchmark set it: a user's function never sees it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from loanstack.emulator import awslambda_sandbox
from loanstack.emulator.awslambda_worker import PROFILE

FN = SimpleNamespace(
    handler="index.handler", run_time="python3.12", memory_size=128, function_name="f"
)


def test_the_profile_directory_reaches_the_sandbox_only_when_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(PROFILE, raising=False)
    assert PROFILE not in awslambda_sandbox.process_environment({"A": "1"}, FN)
    monkeypatch.setenv(PROFILE, str(tmp_path))
    assert awslambda_sandbox.process_environment({"A": "1"}, FN)[PROFILE] == str(tmp_path)
