"""The field's own judges of a template (SPEC D5): cfn-lint through its Python API, in process,
and checkov as its CLI.

checkov lives in its own virtual environment (it pins an old boto3), found through CHECKOV_BIN
or `.venv-checkov`; a missing tool is an error, never a silent pass. Both verdicts are kept by the
template's bytes, path and the judge's version when LOANSTACK_JUDGE_CACHE asks (judge_cache.py).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loanstack.compliance.judge_cache import remembered
from loanstack.template import ROOT

REGIONS = ("us-east-1", "us-west-2", "eu-west-1")


class ToolMissing(RuntimeError):
    pass


def checkov_bin() -> Path:
    return Path(os.environ.get("CHECKOV_BIN", ROOT / ".venv-checkov" / "bin" / "checkov"))


def checkov_version(binary: Path) -> str:
    """checkov's version as its environment records it (no run: a run costs seconds), else
    what identifies the installed script."""
    venv = binary.parent.parent
    found = sorted(p.name for p in venv.glob("lib/python*/site-packages/checkov-*.dist-info"))
    if found:
        return found[-1]
    stat = binary.stat()
    return f"{binary.resolve()} {stat.st_size} {stat.st_mtime_ns}"


def cfn_lint(path: Path, regions: Sequence[str] = REGIONS) -> list[dict[str, Any]]:
    """cfn-lint matches, informational rules included, for the regions the client uses (or
    others: another partition's); in the shape of its JSON output (Rule.Id, Message, Level,
    Location.Start.LineNumber, Location.Path).
    https://github.com/aws-cloudformation/cfn-lint/blob/main/docs/getting_started/integration.md
    """
    from importlib.metadata import version

    parts = (version("cfn-lint"), " ".join(regions), str(path.resolve()), path.read_bytes())
    return remembered("cfn-lint", parts, lambda: _cfn_lint(path, regions))


def _cfn_lint(path: Path, regions: Sequence[str]) -> list[dict[str, Any]]:
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(path, ManualArgs(regions=list(regions), include_checks=["I"]))
    return [
        {
            "Rule": {"Id": m.rule.id},
            "Message": m.message,
            "Level": m.rule.severity.capitalize(),
            "Location": {
                "Start": {"LineNumber": m.linenumber, "ColumnNumber": m.columnnumber},
                "Path": list(getattr(m, "path", None) or []),
            },
        }
        for m in matches
    ]


def checkov(path: Path) -> dict[str, Any]:
    """checkov's CloudFormation report (offline: no platform download)."""
    binary = checkov_bin()
    if not binary.exists():
        raise ToolMissing(f"checkov not found at {binary}: `make test` builds .venv-checkov")
    parts = (checkov_version(binary), str(path.resolve()), path.read_bytes())
    return remembered("checkov", parts, lambda: _checkov(binary, path))


def interpreter(binary: Path) -> Path | None:
    """The Python that runs the checkov script (its `#!` line), when it is one."""
    try:
        with binary.open("rb") as script:
            first = script.readline(200).decode("utf-8", "replace")
    except OSError:
        return None
    found = Path(first[2:].strip()) if first.startswith("#!") else None
    return found if found and found.name.startswith("python") and found.exists() else None


def launch(python: Path, script: Path) -> list[str]:
    """`script` run by `python` without its own folder on sys.path: started as a path, Python
    puts the script's folder first, and a module of ours there would shadow what checkov
    imports. runpy runs a file without adding its folder, and the `-c` entry (the working
    directory) is taken off; any Python 3 runs it (`-P` would need 3.11).
    https://docs.python.org/3/library/runpy.html#runpy.run_path"""
    code = (
        f"import runpy, sys; del sys.path[0]; runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    return [str(python), "-c", code]


def _checkov(binary: Path, path: Path) -> dict[str, Any]:
    """checkov's JSON report, through checkov_run.py (its parser's tables built once: about
    half the CPU of a plain run) when the script's interpreter is known, else the script."""
    python = interpreter(binary)
    script = Path(__file__).with_name("checkov_run.py")
    command = launch(python, script) if python else [str(binary)]
    run = subprocess.run(  # noqa: S603 (checkov of our venv, fixed arguments, no shell)
        [*command, "-f", str(path), "--framework", "cloudformation", "--skip-download", "--output", "json"],
        capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )  # fmt: skip
    if not run.stdout.strip():
        raise ToolMissing(f"checkov printed nothing: {run.stderr.strip()[-500:]}")
    report = json.loads(run.stdout)
    return dict(report[0] if isinstance(report, list) else report)
