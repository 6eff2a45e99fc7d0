"""`loanstack check`: every judge of the template in one table (check, tool, resource, result, reason).

The judges: cfn-lint and checkov (the template as written), the project's compliance checks and
AWS Control Tower's Guard rules (each environment as deployed). A finding that is accepted shows
its written reason (checkov suppression in Metadata, Control Tower exceptions file); anything
else fails the command.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from loanstack import checks, guard, linters, template


@dataclass(frozen=True)
class Row:
    env: str
    check: str
    tool: str
    resource: str
    result: str  # pass | FAIL | accepted
    reason: str = ""


def cfn_lint_rows() -> Iterator[Row]:
    matches = linters.cfn_lint(template.TEMPLATE_PATH)
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
    report = linters.checkov(template.TEMPLATE_PATH)
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


def own_rows(env: str, instance: template.Instance) -> Iterator[Row]:
    for c in checks.CHECKS:
        findings = list(c.run(instance))
        for f in findings:
            yield Row(env, f"{c.id} ({c.requirement})", "loanstack", f.resource, "FAIL", f.message)
        if not findings:
            yield Row(env, f"{c.id} ({c.requirement})", "loanstack", "all", "pass", c.description)


def guard_rows(
    env: str, instance: template.Instance, accepted: dict[tuple[str, str], str]
) -> Iterator[Row]:
    rules, findings = guard.evaluate(instance)
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
    yield Row(env, f"{len(rules)} rules", "control tower", "all others", "pass")


def rows(envs: tuple[str, ...], suffix: str) -> Iterator[Row]:
    yield from cfn_lint_rows()
    yield from checkov_rows()
    accepted = guard.exceptions()
    for env in envs:
        instance = template.instantiate(
            parameters={"EnvironmentType": env, "EnvironmentSuffix": suffix}
        )
        yield from own_rows(env, instance)
        yield from guard_rows(env, instance, accepted)
