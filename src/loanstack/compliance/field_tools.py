"""The field's own judges of a template (SPEC D5): cfn-lint and checkov, run as their CLIs.

checkov lives in its own virtual environment (it pins an old boto3), found through CHECKOV_BIN
or `.venv-checkov`; a missing tool is an error, never a silent pass.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from loanstack.template import ROOT

REGIONS = ("us-east-1", "us-west-2", "eu-west-1")


class ToolMissing(RuntimeError):
    pass


def checkov_bin() -> Path:
    return Path(os.environ.get("CHECKOV_BIN", ROOT / ".venv-checkov" / "bin" / "checkov"))


def cfn_lint(path: Path) -> list[dict[str, Any]]:
    """cfn-lint matches, informational rules included, for the regions the client uses."""
    binary = Path(sys.executable).parent / "cfn-lint"
    run = subprocess.run(
        [str(binary), "--include-checks", "I", "--format", "json", "--regions", *REGIONS, "--", str(path)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if not run.stdout.strip():
        raise ToolMissing(f"cfn-lint printed nothing: {run.stderr.strip()[:500]}")
    return list(json.loads(run.stdout))


def checkov(path: Path) -> dict[str, Any]:
    """checkov's CloudFormation report (offline: no platform download)."""
    binary = checkov_bin()
    if not binary.exists():
        raise ToolMissing(f"checkov not found at {binary}: `make test` builds .venv-checkov")
    run = subprocess.run(
        [str(binary), "-f", str(path), "--framework", "cloudformation", "--skip-download", "--output", "json"],
        capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )  # fmt: skip
    if not run.stdout.strip():
        raise ToolMissing(f"checkov printed nothing: {run.stderr.strip()[-500:]}")
    report = json.loads(run.stdout)
    return dict(report[0] if isinstance(report, list) else report)
