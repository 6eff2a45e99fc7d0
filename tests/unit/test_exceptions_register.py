"""The exceptions register: every accepted finding has an entry the bank fills (risk owner,
approval date, review-by date); prod's check lists what is unassigned or overdue as a warning."""

from __future__ import annotations

import copy
import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from loanstack.compliance import register, report

TODAY = datetime.date(2026, 11, 30)


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "register.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_every_accepted_finding_is_in_the_register_and_nothing_else() -> None:
    found, problems = register.entries()
    assert problems == []
    tools = {item.tool for item in found}
    assert {"checkov", "control tower", "design"} <= tools
    assert all(len(item.reason) >= 20 for item in found)


def test_a_new_suppression_without_an_entry_is_a_register_problem(doc: dict[str, Any]) -> None:
    doc["Resources"]["VPC"]["Metadata"] = {
        "checkov": {"skip": [{"id": "CKV_AWS_999", "comment": "a reason long enough to pass"}]}
    }
    _, problems = register.entries(doc)
    assert problems == ["checkov CKV_AWS_999 VPC: accepted but not in the register"]


def test_an_entry_nothing_accepts_any_more_is_a_register_problem(tmp_path: Path) -> None:
    data = register.load()
    data["accepted"].append(
        {"tool": "checkov", "check": "CKV_AWS_1", "resource": "Gone", "risk_owner": "x"}
    )
    _, problems = register.entries(path=write(tmp_path, data))
    assert problems == ["checkov CKV_AWS_1 Gone: in the register, but nothing accepts it"]


def filled(owner: str, approved: str, review_by: str) -> register.Accepted:
    return register.Accepted(
        "checkov", "CKV_AWS_18", "AccessLogsBucket", "r", owner, approved, review_by
    )


@pytest.mark.parametrize(
    ("item", "why"),
    [
        (
            filled("unassigned", "unassigned", "unassigned"),
            "unassigned: risk owner, approved, review by",
        ),
        (filled("CISO office", "2026-01-10", "2026-06-30"), "review overdue since 2026-06-30"),
        (
            filled("CISO office", "last week", "2027-01-01"),
            "approved and review_by must be dates (YYYY-MM-DD)",
        ),
        (filled("CISO office", "2027-02-01", "2027-01-01"), "approved after its review-by date"),
    ],
    ids=["unassigned", "overdue", "not-a-date", "approved-after-review"],
)
def test_open_items_name_what_a_review_would_stop_at(item: register.Accepted, why: str) -> None:
    assert list(register.open_items([item], TODAY)) == [(item, why)]


def test_an_assigned_entry_in_its_review_period_is_not_listed() -> None:
    assert (
        list(register.open_items([filled("CISO office", "2026-11-01", "2027-11-01")], TODAY)) == []
    )


def test_prod_check_lists_open_entries_as_warnings_not_failures(tmp_path: Path) -> None:
    data = copy.deepcopy(register.load())
    first = data["accepted"][0]
    first.update(risk_owner="CISO office", approved="2026-11-01", review_by="2027-11-01")
    rows = list(report.register_rows(TODAY, write(tmp_path, data)))
    assert rows and {r.result for r in rows} == {"review"}
    listed = {(r.resource, r.check) for r in rows}
    assert (first["resource"], f"{first['tool']} {first['check']}") not in listed
    assert len(rows) == len(register.entries()[0]) - 1


def test_a_gap_in_the_register_fails_the_check(tmp_path: Path) -> None:
    data = copy.deepcopy(register.load())
    gone = data["accepted"].pop()
    rows = list(report.register_rows(TODAY, write(tmp_path, data)))
    failing = [r for r in rows if r.result == "FAIL"]
    assert [r.reason for r in failing] == [
        f"{gone['tool']} {gone['check']} {gone['resource']}: accepted but not in the register"
    ]


def test_register_rows_of_the_repository_register_are_warnings() -> None:
    rows = list(report.register_rows(TODAY))
    assert rows, "the bank has not filled the register yet: every entry is listed"
    assert {r.result for r in rows} == {"review"}
    assert all(r.reason.startswith("unassigned") for r in rows)
    assert report.sarif(rows)["runs"][0]["results"][0]["level"] == "warning"
