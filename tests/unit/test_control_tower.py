"""AWS Control Tower proactive controls (Guard rules from cdklabs-cdk-validator-cfnguard), D5.

Run for each environment: any non-compliant result must be listed, with its reason, in
compliance/control-tower-exceptions.json, and every listed exception must still be needed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loanstack import template
from loanstack.compliance import control_tower

# with the suffix `loanstack check` judges with (test_check_report.py's too): the same documents,
# so the session runs cfn-guard on each once (compliance/judge_cache.py)
VARIANTS = {
    "dev": template.judged_parameters("dev", "check"),
    "prod": template.judged_parameters("prod", "check"),
    "prod-with-org-trail": template.judged_parameters("prod", "check", EnableCloudTrail="false"),
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


def test_d5_the_guard_wheel_is_pinned_with_its_hash_and_fetched_by_make_only(
    tmp_path: Path,
) -> None:
    """SPEC D5 amended: pinned with its hash in a constraints file, fetched by the Makefile's
    install step; a missing cache is an error that says so, never a download at test time."""
    pins = (template.ROOT / "constraints-guard.txt").read_text()
    assert re.search(
        r"^cdklabs-cdk-validator-cfnguard==[\d.]+ --hash=sha256:[0-9a-f]{64}$", pins, re.M
    )
    assert control_tower.pinned_package() == "cdklabs-cdk-validator-cfnguard==0.0.62"
    makefile = (template.ROOT / "Makefile").read_text()
    assert "$(GUARD): constraints-guard.txt" in makefile
    assert "$(PY) -m loanstack.compliance.control_tower" in makefile
    for target in ("check:", "test:"):
        [line] = [ln for ln in makefile.splitlines() if ln.startswith(target)]
        assert "$(GUARD)" in line, target
    with pytest.raises(control_tower.GuardMissing, match="make check"):
        control_tower.ensure_guard(tmp_path)
    source = (template.ROOT / "src" / "loanstack" / "compliance" / "control_tower.py").read_text()
    fetch = source[source.index("def fetch_guard") :]
    assert '"--require-hashes"' in fetch and "def ensure_guard" not in fetch
