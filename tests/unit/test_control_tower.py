"""AWS Control Tower proactive controls (Guard rules from cdklabs-cdk-validator-cfnguard), D5.

Run for each environment: any non-compliant result must be listed, with its reason, in
compliance/control-tower-exceptions.json, and every listed exception must still be needed.
"""

from __future__ import annotations

import pytest

from loanstack import template
from loanstack.compliance import control_tower

VARIANTS = {
    "dev": {"EnvironmentType": "dev"},
    "prod": {"EnvironmentType": "prod"},
    "prod-with-org-trail": {"EnvironmentType": "prod", "EnableCloudTrail": "false"},
}


@pytest.fixture(scope="module")
def results() -> dict[str, tuple[list[object], list[control_tower.GuardFinding]]]:
    out = {}
    for name, params in VARIANTS.items():
        rules, findings = control_tower.evaluate(template.instantiate(parameters=params))
        out[name] = (list(rules), findings)
    return out


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_d5_every_control_tower_finding_is_a_reviewed_exception(
    results: dict, variant: str
) -> None:  # type: ignore[type-arg]
    rules, findings = results[variant]
    assert len(rules) >= 40, "the rules for the services the template uses must run"
    accepted = control_tower.exceptions()
    unexplained = [
        f"{f.control} {f.resource}: {f.message}"
        for f in findings
        if (f.control, f.resource) not in accepted
    ]
    assert unexplained == []


def test_d5_every_exception_is_still_needed_and_explained(results: dict) -> None:  # type: ignore[type-arg]
    seen = {(f.control, f.resource) for _, findings in results.values() for f in findings}
    for key, reason in control_tower.exceptions().items():
        assert key in seen, f"exception {key} no longer needed: remove it"
        assert len(reason) >= 20, key


def test_d5_guard_gate_bites(doc: dict) -> None:  # type: ignore[type-arg]
    doc["Resources"]["LoanDocumentsBucket"]["Properties"]["PublicAccessBlockConfiguration"][
        "BlockPublicAcls"
    ] = False
    _, findings = control_tower.evaluate(template.instantiate(doc, {"EnvironmentType": "dev"}))
    assert ("CT.S3.PR.1", "LoanDocumentsBucket") in {(f.control, f.resource) for f in findings}


def test_d5_rules_are_chosen_by_the_types_they_report_on() -> None:
    _, rules = control_tower.ensure_guard()
    chosen = control_tower.applicable_rules(rules, {"AWS::S3::Bucket"})
    assert chosen and all("AWS::S3::Bucket" in control_tower.reported_types(r) for r in chosen)
    assert not control_tower.applicable_rules(rules, {"AWS::Made::Up"})
