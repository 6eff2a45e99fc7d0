"""`loanstack check`: every judge of the template in one table (check, tool, resource, result, reason).

The judges: cfn-lint and checkov (the template as written), the project's compliance checks and
AWS Control Tower's Guard rules (each environment as deployed). A finding that is accepted shows
its written reason (checkov suppression in Metadata, Control Tower exceptions file); anything
else fails the command.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loanstack import template
from loanstack.compliance import control_tower, field_tools, register, rules


@dataclass(frozen=True)
class Row:
    env: str
    check: str
    tool: str
    resource: str
    result: str  # pass | FAIL | accepted | review (prod's open register entries: a warning)
    reason: str = ""


def cfn_lint_rows() -> Iterator[Row]:
    matches = field_tools.cfn_lint(template.TEMPLATE_PATH)
    for m in matches:
        yield Row(
            "both",
            m["Rule"]["Id"],
            "cfn-lint",
            "/".join(map(str, m["Location"]["Path"][:2])),
            "FAIL",
            m["Message"],
        )
    if not matches:
        yield Row("both", "all rules (incl. informational)", "cfn-lint", "template", "pass")


def checkov_rows() -> Iterator[Row]:
    report = field_tools.checkov(template.TEMPLATE_PATH)
    results = report["results"]
    for f in results["failed_checks"]:
        yield Row(
            "both", f["check_id"], "checkov", f["resource"].split(".")[-1], "FAIL", f["check_name"]
        )
    for s in results["skipped_checks"]:
        yield Row(
            "both",
            s["check_id"],
            "checkov",
            s["resource"].split(".")[-1],
            "accepted",
            s.get("check_result", {}).get("suppress_comment", ""),
        )
    yield Row("both", f"{report['summary']['passed']} checks", "checkov", "template", "pass")


def own_rows(env: str, instance: template.Environment) -> Iterator[Row]:
    for c in rules.CHECKS:
        findings = list(c.run(instance))
        for f in findings:
            yield Row(env, f"{c.id} ({c.requirement})", "loanstack", f.resource, "FAIL", f.message)
        if not findings:
            yield Row(env, f"{c.id} ({c.requirement})", "loanstack", "all", "pass", c.description)


def guard_rows(
    env: str, instance: template.Environment, accepted: dict[tuple[str, str], str]
) -> Iterator[Row]:
    guard_rules, findings = control_tower.evaluate(instance)
    for f in findings:
        reason = accepted.get((f.control, f.resource))
        yield Row(
            env,
            f.control,
            "control tower",
            f.resource,
            "accepted" if reason else "FAIL",
            reason or f.message,
        )
    yield Row(env, f"{len(guard_rules)} rules", "control tower", "all others", "pass")


def rows(envs: tuple[str, ...], suffix: str) -> Iterator[Row]:
    yield from cfn_lint_rows()
    yield from checkov_rows()
    accepted = control_tower.exceptions()
    for env in envs:
        instance = template.instantiate(
            parameters={"EnvironmentType": env, "EnvironmentSuffix": suffix}
        )
        yield from own_rows(env, instance)
        yield from guard_rows(env, instance, accepted)
    if "prod" in envs:
        yield from register_rows(datetime.date.today())


def register_rows(today: datetime.date, path: Path = register.REGISTER) -> Iterator[Row]:
    """The exceptions register for prod: a gap in the register fails, an entry the bank has not
    assigned or not reviewed in time is a warning row (result "review")."""
    found, problems = register.entries(path=path)
    for problem in problems:
        yield Row("prod", "register", "loanstack", "exceptions-register.json", "FAIL", problem)
    for item, why in register.open_items(found, today):
        yield Row("prod", f"{item.tool} {item.check}", "register", item.resource, "review", why)


def as_dict(row: Row) -> dict[str, str]:
    return {
        "env": row.env,
        "check": row.check,
        "tool": row.tool,
        "resource": row.resource,
        "result": row.result,
        "reason": row.reason,
    }


SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVEL = {"FAIL": "error", "accepted": "note", "review": "warning"}


def sarif(found: list[Row]) -> dict[str, Any]:
    """The findings as SARIF 2.1.0 (OASIS), the format code-scanning tools read: one run, one
    rule per check, one result per FAIL (level error) or accepted finding (level note, with its
    suppression and reason); passes are not results. Suppression kinds as in the OASIS spec
    (https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html, 3.35); GitHub's subset:
    https://docs.github.com/en/code-security/code-scanning/integrating-with-code-scanning/sarif-support-for-code-scanning
    """
    uri = template.TEMPLATE_PATH.relative_to(template.ROOT).as_posix()
    findings = [row for row in found if row.result in SARIF_LEVEL]
    rule_ids = sorted({row.check for row in findings})
    results: list[dict[str, Any]] = []
    for row in findings:
        result: dict[str, Any] = {
            "ruleId": row.check,
            "level": SARIF_LEVEL[row.result],
            "message": {"text": f"{row.resource} ({row.env}): {row.reason or row.check}"},
            "locations": [
                {
                    "physicalLocation": {"artifactLocation": {"uri": uri}},
                    "logicalLocations": [{"name": row.resource, "kind": "resource"}],
                }
            ],
            "properties": {"tool": row.tool, "env": row.env},
        }
        if row.result == "accepted":  # checkov: in the template's Metadata; Control Tower: a file
            kind = "inSource" if row.tool == "checkov" else "external"
            result["suppressions"] = [{"kind": kind, "justification": row.reason}]
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "loanstack check",
                        "rules": [{"id": rule_id} for rule_id in rule_ids],
                    }
                },
                "results": results,
            }
        ],
    }
