"""The field's own judges (SPEC D5): cfn-lint with informational rules, and checkov.

Both must report nothing on the template; each accepted checkov finding is suppressed in the
resource's Metadata with a written reason. A missing tool fails the test, it never skips.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loanstack import template
from loanstack.compliance import field_tools


def cfn_lint(path: Path) -> list[dict[str, Any]]:
    return field_tools.cfn_lint(path)


def checkov(path: Path) -> dict[str, Any]:
    try:
        return field_tools.checkov(path)
    except field_tools.ToolMissing as exc:
        pytest.fail(str(exc))


def write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "TapStack.json"
    path.write_text(template.canonical(doc))
    return path


def test_d5_cfn_lint_reports_nothing_including_informational() -> None:
    matches = cfn_lint(template.TEMPLATE_PATH)
    assert matches == [], "\n".join(f"{m['Rule']['Id']} {m['Message']}" for m in matches)


def test_d5_cfn_lint_gate_bites(tmp_path: Path, doc: dict[str, Any]) -> None:
    doc["Resources"]["VPC"]["Properties"]["EnableDnsSupport"] = "maybe"
    del doc["Resources"]["KMSKey"]["UpdateReplacePolicy"]
    rules = {m["Rule"]["Id"] for m in cfn_lint(write(tmp_path, doc))}
    assert "E3012" in rules  # wrong type
    assert "I3011" in rules  # informational: stateful resource without UpdateReplacePolicy


def test_d5_checkov_reports_no_failed_check(pristine: dict[str, Any]) -> None:
    report = checkov(template.TEMPLATE_PATH)
    failed = report["results"]["failed_checks"]
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 0
    assert failed == [], "\n".join(
        f"{f['check_id']} {f['resource']}: {f['check_name']}" for f in failed
    )


def test_d5_checkov_gate_bites(tmp_path: Path, doc: dict[str, Any]) -> None:
    doc["Resources"]["DBSecurityGroup"]["Properties"]["SecurityGroupIngress"] = [
        {
            "IpProtocol": "tcp",
            "FromPort": 22,
            "ToPort": 22,
            "CidrIp": "0.0.0.0/0",
            "Description": "ssh",
        }
    ]
    failed = {f["check_id"] for f in checkov(write(tmp_path, doc))["results"]["failed_checks"]}
    assert "CKV_AWS_24" in failed


def test_d5_every_suppression_states_its_reason(pristine: dict[str, Any]) -> None:
    for logical_id, resource in pristine["Resources"].items():
        metadata = resource.get("Metadata", {})
        for skip in metadata.get("checkov", {}).get("skip", []):
            assert len(skip.get("comment", "").strip()) >= 20, f"{logical_id} {skip.get('id')}"
        assert "cfn-lint" not in metadata, f"{logical_id}: cfn-lint findings are fixed, not ignored"


def test_checkov_runs_through_its_own_interpreter_with_the_jsonpath_tables_kept() -> None:
    """checkov_run.py builds bc_jsonpath_ng's parse table once per grammar (not once per
    expression) and the expressions parse as without it; run where checkov lives."""
    import subprocess

    python = field_tools.interpreter(field_tools.checkov_bin())
    if python is None:
        pytest.fail(f"no Python in the #! line of {field_tools.checkov_bin()}")
    probe = """
import ply.yacc
from bc_jsonpath_ng.ext import parse
from loanstack.compliance import checkov_run
paths = ["Resources.*.Properties", "a[0].b", "$..Tags[?(@.Key == 'x')]", "a.b"]
plain = [repr(parse(p)) for p in paths]
builds = []
real = ply.yacc.yacc
ply.yacc.yacc = lambda **kw: builds.append(1) or real(**kw)
checkov_run.remember_jsonpath_tables()
assert [repr(parse(p)) for p in paths * 2] == plain * 2
print(len(builds))
"""
    source = Path(field_tools.__file__).parents[2]
    done = subprocess.run(
        [str(python), "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PYTHONPATH": str(source), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1"]  # eight expressions, one table


def test_checkov_run_starts_without_its_folder_on_sys_path(tmp_path: Path) -> None:
    """checkov_run.py started as a script path put src/loanstack/compliance/ first on checkov's
    sys.path, where a module of ours could shadow one checkov imports: runpy from `-c` leaves
    the script's folder off."""
    import subprocess
    import sys

    python = Path(sys.executable)
    folder = tmp_path / "ours"
    folder.mkdir()
    (folder / "json.py").write_text("raise SystemExit('our json shadowed the standard one')\n")
    script = folder / "probe.py"
    script.write_text("import json, sys\nprint(json.dumps(sys.path))\n")
    command = field_tools.launch(python, script)
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=60, check=False, cwd=folder
    )
    assert done.returncode == 0, done.stderr
    import json

    assert str(folder) not in json.loads(done.stdout)
