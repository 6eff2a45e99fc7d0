"""`loanstack check`: one table over every judge, and no accepted finding without its reason."""

from __future__ import annotations

from typing import Any

import pytest

from loanstack import template
from loanstack.compliance import field_tools, report, rules
from tests.support.helpers import build


@pytest.fixture(scope="module")
def rows() -> list[report.Row]:
    return list(report.rows(("dev", "prod"), "check"))


def test_d5_check_table_covers_every_judge_for_both_environments(rows: list[report.Row]) -> None:
    judged = {(r.env, r.tool) for r in rows}
    assert {("both", "cfn-lint"), ("both", "checkov")} <= judged
    for env in ("dev", "prod"):
        assert {(env, "loanstack"), (env, "control tower")} <= judged
        assert {(env, "parliament"), (env, "cfripper")} <= judged


def test_d5_every_accepted_finding_shows_its_written_reason(rows: list[report.Row]) -> None:
    accepted = [r for r in rows if r.result == "accepted"]
    assert {r.tool for r in accepted} == {"checkov", "control tower", "cfripper"}
    assert [r for r in accepted if len(r.reason) < 20] == []


def test_d5_nothing_fails(rows: list[report.Row]) -> None:
    failing = {(r.env, r.check, r.resource) for r in rows if r.result == "FAIL"}
    assert failing == set()


def test_rows_carry_rule_id_and_requirement_separately(rows: list[report.Row]) -> None:
    own = [r for r in rows if r.tool == "loanstack"]
    assert {r.check for r in own} == {c.id for c in rules.CHECKS}
    assert {(r.check, r.requirement) for r in own} == {(c.id, c.requirement) for c in rules.CHECKS}


def test_accepted_findings_point_at_their_resource_and_line(rows: list[report.Row]) -> None:
    lines = template.TEMPLATE_PATH.read_text().splitlines()
    for row in (r for r in rows if r.result == "accepted"):
        assert row.pointer == f"/Resources/{row.resource.split('/')[0]}", row
        assert row.line is not None
        assert lines[row.line - 1].strip().startswith(f'"{row.resource.split("/")[0]}"'), row


def test_a_finding_reaches_json_and_sarif_with_its_pointer_and_line(doc: dict[str, Any]) -> None:
    """The report drops nothing a check computes: pointer, line, rule id, requirement."""
    doc["Resources"]["DBCluster"]["DeletionPolicy"] = "Retain"
    [row] = [
        r
        for r in report.own_rows("dev", build(doc, "dev"))
        if r.result == "FAIL" and r.check == "LS006"
    ]
    line = next(
        i + 1
        for i, text in enumerate(template.TEMPLATE_PATH.read_text().splitlines())
        if text == '    "DBCluster": {'
    )
    assert (row.check, row.requirement, row.pointer, row.line) == (
        "LS006",
        "R6",
        "/Resources/DBCluster",
        line,
    )
    as_json = report.as_dict(row)
    assert (as_json["pointer"], as_json["line"], as_json["requirement"]) == (
        "/Resources/DBCluster",
        line,
        "R6",
    )
    [result] = report.sarif([row])["runs"][0]["results"]
    [location] = result["locations"]
    assert location["physicalLocation"]["region"] == {"startLine": line}
    assert location["logicalLocations"][0]["fullyQualifiedName"] == "/Resources/DBCluster"
    assert result["properties"]["requirement"] == "R6"
    assert report.where(row) == f"/Resources/DBCluster (line {line})"


def test_cfn_lint_runs_in_process_and_locates_its_matches(
    doc: dict[str, Any], tmp_path: Any
) -> None:
    """Through cfn-lint's API (no subprocess), with the line and path of each match."""
    fn = doc["Resources"]["LoanValidationFunction"]
    fn["Properties"]["LoggingConfig"]["LogGroup"] = {"Ref": "LoanValidationLogGroup"}
    path = tmp_path / "t.json"
    path.write_text(template.canonical(doc))
    [match] = field_tools.cfn_lint(path)
    assert match["Rule"]["Id"] == "W3005"
    assert match["Location"]["Path"][:3] == ["Resources", "LoanValidationFunction", "DependsOn"]
    assert match["Location"]["Start"]["LineNumber"] > 1
