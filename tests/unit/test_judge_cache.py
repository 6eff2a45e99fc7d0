"""The judges' verdict cache (compliance/judge_cache.py): opt-in, keyed by everything judged, and
one run for callers that ask at the same time (the test session's workers share it)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from loanstack.compliance import field_tools, judge_cache


class Judge:
    """A stand-in judge that counts its runs."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.runs, self.seconds = 0, seconds

    def __call__(self) -> dict[str, Any]:
        self.runs += 1
        time.sleep(self.seconds)
        return {"failed": [], "run": self.runs}


def test_without_the_variable_every_call_runs_the_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(judge_cache.VARIABLE, raising=False)
    judge = Judge()
    for _ in range(2):
        judge_cache.remembered("checkov", ["v1", b"template"], judge)
    assert judge.runs == 2


def test_the_same_input_is_judged_once_and_any_change_is_judged_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(judge_cache.VARIABLE, str(tmp_path / "judges"))
    judge = Judge()
    first = judge_cache.remembered("checkov", ["v1", b"template"], judge)
    assert judge_cache.remembered("checkov", ["v1", b"template"], judge) == first
    assert judge.runs == 1
    for parts in (["v2", b"template"], ["v1", b"templatf"], ["v1t", b"emplate"]):
        judge_cache.remembered("checkov", parts, judge)
    judge_cache.remembered("cfn-lint", ["v1", b"template"], judge)
    assert judge.runs == 5  # a new version, new bytes, the same bytes split otherwise, a judge


def test_callers_at_the_same_time_wait_for_one_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(judge_cache.VARIABLE, str(tmp_path / "judges"))
    judge = Judge(seconds=0.3)
    results: list[dict[str, Any]] = []
    callers = [
        threading.Thread(
            target=lambda: results.append(judge_cache.remembered("checkov", ["x"], judge))
        )
        for _ in range(3)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert judge.runs == 1 and results == [results[0]] * 3


def test_checkov_is_asked_again_when_the_template_changes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The key holds the bytes judged, not only the path: a mutated copy at the same path (the
    gate tests write one) gets its own verdict."""
    monkeypatch.setenv(judge_cache.VARIABLE, str(tmp_path / "judges"))
    binary = tmp_path / "venv" / "bin" / "checkov"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    monkeypatch.setenv("CHECKOV_BIN", str(binary))
    judged: list[bytes] = []

    def fake(_binary: Path, path: Path) -> dict[str, Any]:
        judged.append(path.read_bytes())
        return {"results": {"failed_checks": []}, "n": len(judged)}

    monkeypatch.setattr(field_tools, "_checkov", fake)
    template = tmp_path / "TapStack.json"
    template.write_text('{"Resources": {}}')
    assert field_tools.checkov(template) == field_tools.checkov(template)
    template.write_text('{"Resources": {"A": {}}}')
    assert field_tools.checkov(template)["n"] == 2
    assert judged == [b'{"Resources": {}}', b'{"Resources": {"A": {}}}']


def test_parliament_and_cfripper_verdicts_are_kept_and_read_back_equal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`loanstack check` and three test modules judge the same environments: the second asker
    reads the verdicts back as the run gave them; a changed environment is judged again."""
    from loanstack import template
    from loanstack.compliance import judges

    monkeypatch.setenv(judge_cache.VARIABLE, str(tmp_path / "judges"))
    runs: list[str] = []

    def parliament(policies: list[list[str]]) -> list[list[str]]:
        runs.append("parliament")
        return [["RESOURCE_MISMATCH", policies[0][0], "detail", policies[0][1]]]

    def cfripper(scope: list[str], document: str) -> list[list[str]]:
        runs.append("cfripper")
        return [["WildcardResourceRule", "KMSKey", scope[0]], ["SomeRule", "template", "why"]]

    monkeypatch.setattr(judges, "_parliament", parliament)
    monkeypatch.setattr(judges, "_cfripper", cfripper)
    env = template.instantiate(parameters=template.judged_parameters("dev", "check"))
    first = judges.parliament_verdicts(env) + judges.cfripper_verdicts(env)
    assert judges.parliament_verdicts(env) + judges.cfripper_verdicts(env) == first
    assert runs == ["parliament", "cfripper"]
    assert [v.path for v in first[1:]] == ["/Resources/KMSKey", ""]
    other = template.instantiate(parameters=template.judged_parameters("dev", "other"))
    judges.parliament_verdicts(other) + judges.cfripper_verdicts(other)
    assert runs == ["parliament", "cfripper"] * 2
