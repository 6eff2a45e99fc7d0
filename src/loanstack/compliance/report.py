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
from typing import Any, NotRequired, TypedDict

from loanstack import template
from loanstack.compliance import control_tower, field_tools, judges, register, rules
from loanstack.compliance.locate import line_of, pointer_of


@dataclass(frozen=True)
class Row:
    """One line of the report. `check` is the judge's own rule id (LS012, W3005, CKV_AWS_18...),
    `requirement` the SPEC item it enforces (ours only); `pointer` the JSON pointer of the part
    judged and `line` the template line it starts on (None: the whole template)."""

    env: str
    check: str
    tool: str
    resource: str
    result: str  # pass | FAIL | accepted | review (prod's open register entries: a warning)
    reason: str = ""
    requirement: str = ""
    pointer: str = ""
    line: int | None = None


def resource_pointer(logical_id: str) -> str:
    return f"/Resources/{logical_id}" if logical_id else ""


def located(pointer: str) -> dict[str, Any]:
    return {"pointer": pointer, "line": line_of(pointer)}


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
            pointer=pointer_of(m["Location"]["Path"]),
            line=m["Location"]["Start"]["LineNumber"],
        )
    if not matches:
        yield Row("both", "all rules (incl. informational)", "cfn-lint", "template", "pass")


def checkov_rows() -> Iterator[Row]:
    report = field_tools.checkov(template.TEMPLATE_PATH)
    results = report["results"]
    for f in results["failed_checks"]:
        logical_id = f["resource"].split(".")[-1]
        yield Row(
            "both",
            f["check_id"],
            "checkov",
            logical_id,
            "FAIL",
            f["check_name"],
            **located(resource_pointer(logical_id)),
        )
    for s in results["skipped_checks"]:
        logical_id = s["resource"].split(".")[-1]
        yield Row(
            "both",
            s["check_id"],
            "checkov",
            logical_id,
            "accepted",
            s.get("check_result", {}).get("suppress_comment", ""),
            **located(resource_pointer(logical_id)),
        )
    yield Row("both", f"{report['summary']['passed']} checks", "checkov", "template", "pass")


def own_rows(env_name: str, env: template.Environment) -> Iterator[Row]:
    for c in rules.CHECKS:
        findings = list(c.run(env))
        for f in findings:
            yield Row(
                env_name,
                c.id,
                "loanstack",
                f.resource,
                "FAIL",
                f.message,
                c.requirement,
                **located(f.path),
            )
        if not findings:
            yield Row(env_name, c.id, "loanstack", "all", "pass", c.description, c.requirement)


def guard_rows(
    env_name: str, env: template.Environment, accepted: dict[tuple[str, str], str]
) -> Iterator[Row]:
    guard_rules, findings = control_tower.evaluate(env)
    for f in findings:
        reason = accepted.get((f.control, f.resource))
        yield Row(
            env_name,
            f.control,
            "control tower",
            f.resource,
            "accepted" if reason else "FAIL",
            reason or f.message,
            **located(resource_pointer(f.resource)),
        )
    yield Row(env_name, f"{len(guard_rules)} rules", "control tower", "all others", "pass")


def judge_rows(
    env_name: str, env: template.Environment, accepted: dict[tuple[str, str, str], str]
) -> Iterator[Row]:
    """parliament and cfripper (SPEC D5 amended) on the environment as deployed."""
    for tool, verdicts in (
        ("parliament", judges.parliament_verdicts(env)),
        ("cfripper", judges.cfripper_verdicts(env)),
    ):
        for v in verdicts:
            reason = accepted.get((v.judge, v.rule, v.resource.split("/")[0]))
            yield Row(
                env_name,
                v.rule,
                tool,
                v.resource,
                "accepted" if reason else "FAIL",
                reason or v.message,
                **located(v.path),
            )
        yield Row(env_name, "all rules", tool, "all others", "pass")


def stale_exceptions(used: set[tuple[str, str, str]]) -> Iterator[Row]:
    """An exception no environment needs any more is a finding too: the file stays honest."""
    for (judge, rule, resource), reason in judges.exceptions().items():
        if (judge, rule, resource) not in used:
            yield Row(
                "both", rule, judge, resource, "FAIL", f"exception no longer needed: {reason}"
            )


def rows(envs: tuple[str, ...], suffix: str) -> Iterator[Row]:
    yield from cfn_lint_rows()
    yield from checkov_rows()
    accepted = control_tower.exceptions()
    judged = judges.exceptions()
    used: set[tuple[str, str, str]] = set()
    for env_name in envs:
        env = template.instantiate(parameters=template.judged_parameters(env_name, suffix))
        yield from own_rows(env_name, env)
        yield from guard_rows(env_name, env, accepted)
        for row in judge_rows(env_name, env, judged):
            if row.result == "accepted":
                used.add((row.tool, row.check, row.resource.split("/")[0]))
            yield row
    if set(envs) == {"dev", "prod"}:  # an exception may be needed by one environment only
        yield from stale_exceptions(used)
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


class RowJson(TypedDict):
    """One finding of `loanstack check --output json` (its "findings" list): a `Row`, keyed as
    readers of the JSON know it."""

    env: str
    check: str
    requirement: str
    tool: str
    resource: str
    pointer: str
    line: int | None
    result: str
    reason: str


def as_dict(row: Row) -> RowJson:
    return {
        "env": row.env,
        "check": row.check,
        "requirement": row.requirement,
        "tool": row.tool,
        "resource": row.resource,
        "pointer": row.pointer,
        "line": row.line,
        "result": row.result,
        "reason": row.reason,
    }


def where(row: Row) -> str:
    """The table's location column: pointer and line."""
    if row.line is None:
        return row.pointer
    return f"{row.pointer} (line {row.line})"


SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVEL = {"FAIL": "error", "accepted": "note", "review": "warning"}


class SarifSuppression(TypedDict):
    kind: str  # inSource | external (SARIF 3.35.2)
    justification: str


class SarifResult(TypedDict):
    """One result of the SARIF run (SARIF 3.27): the fields `sarif` writes, no others."""

    ruleId: str
    level: str
    message: dict[str, str]
    locations: list[dict[str, Any]]
    properties: dict[str, str]
    suppressions: NotRequired[list[SarifSuppression]]


class SarifRun(TypedDict):
    tool: dict[str, Any]  # {"driver": {"name", "rules": [{"id"}]}} (SARIF 3.18)
    results: list[SarifResult]


# The log `loanstack check --sarif` writes (SARIF 3.13), one run; "$schema" is no identifier,
# hence the functional form.
SarifLog = TypedDict("SarifLog", {"$schema": str, "version": str, "runs": list[SarifRun]})


def sarif(found: list[Row]) -> SarifLog:
    """The findings as SARIF 2.1.0 (OASIS), the format code-scanning tools read: one run, one
    rule per check, one result per FAIL (level error) or accepted finding (level note, with its
    suppression and reason); passes are not results. Suppression kinds as in the OASIS spec
    (https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html, 3.35); GitHub's subset:
    https://docs.github.com/en/code-security/code-scanning/integrating-with-code-scanning/sarif-support-for-code-scanning
    """
    uri = template.TEMPLATE_PATH.relative_to(template.ROOT).as_posix()
    findings = [row for row in found if row.result in SARIF_LEVEL]
    rule_ids = sorted({row.check for row in findings})
    results: list[SarifResult] = []
    for row in findings:
        physical: dict[str, Any] = {"artifactLocation": {"uri": uri}}
        if row.line is not None:  # SARIF 3.30: a region, lines 1-based
            physical["region"] = {"startLine": row.line}
        logical: dict[str, Any] = {"name": row.resource, "kind": "resource"}
        if row.pointer:
            logical["fullyQualifiedName"] = row.pointer
        result: SarifResult = {
            "ruleId": row.check,
            "level": SARIF_LEVEL[row.result],
            "message": {"text": f"{row.resource} ({row.env}): {row.reason or row.check}"},
            "locations": [{"physicalLocation": physical, "logicalLocations": [logical]}],
            "properties": {
                "tool": row.tool,
                "env": row.env,
                "requirement": row.requirement,
                "pointer": row.pointer,
            },
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
