"""AWS Control Tower proactive controls (CloudFormation Guard rules) applied to the template (D5).

The rules and a `cfn-guard` binary ship inside the PyPI package `cdklabs-cdk-validator-cfnguard`,
pinned with its hash in constraints-guard.txt; the Makefile's install step fetches it once with
`pip download --require-hashes` (never installed) and unpacks it under `.cache/cfn-guard`
(`python -m loanstack.compliance.control_tower`). Tests and `loanstack check` never download. Only
the rules that report on resource types the template uses are run, each environment separately
(Guard knows nothing of CloudFormation conditions, so it is given the resolved environment).
Accepted findings are listed, with their reason, in one reviewed file.
"""

from __future__ import annotations

import io
import json
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loanstack.compliance.field_tools import ToolMissing
from loanstack.compliance.judge_cache import remembered
from loanstack.template import ROOT, Environment

PINS = ROOT / "constraints-guard.txt"
CACHE = ROOT / ".cache" / "cfn-guard"
EXCEPTIONS = ROOT / "compliance" / "control-tower-exceptions.json"
RULES_PREFIX = "package/rules/control-tower/cfn-guard/"
CONTROL = re.compile(r"\[(CT\.[A-Z0-9]+\.PR\.\d+)\]")
RESOURCE_PATH = re.compile(r"^/Resources/([^/]+)")


@dataclass(frozen=True)
class GuardFinding:
    control: str
    rule: str
    resource: str
    message: str


class GuardMissing(ToolMissing):
    pass


def pinned_package(pins: Path = PINS) -> str:
    """name==version of the wheel, as constraints-guard.txt pins it (the one place)."""
    for line in pins.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line.split()[0]
    raise GuardMissing(f"{pins.name} pins no package")


def ensure_guard(cache: Path = CACHE) -> tuple[Path, Path]:
    """(cfn-guard binary, rules directory), as the Makefile's install step left them."""
    binary, rules = cache / "cfn-guard", cache / "rules"
    if binary.exists() and any(rules.rglob("*.guard")):
        return binary, rules
    raise GuardMissing(
        f"the Control Tower rules are not under {cache}: `make check` (or `python -m "
        "loanstack.compliance.control_tower`) fetches the pinned wheel first"
    )


def fetch_guard(cache: Path = CACHE, pins: Path = PINS) -> tuple[Path, Path]:
    """Download the pinned wheel (pip checks its hash) and unpack the binary and the rules."""
    binary, rules = cache / "cfn-guard", cache / "rules"
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}[
        platform.machine().lower()
    ]
    shutil.rmtree(rules, ignore_errors=True)  # no rule of an older wheel survives an upgrade
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(  # noqa: S603 (a fixed argument list of our own tool, no shell)
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "--require-hashes",
                "--dest",
                tmp,
                "-r",
                str(pins),
            ],
            check=True,
            capture_output=True,
        )
        wheel = zipfile.ZipFile(next(Path(tmp).glob("*.whl")))
        bundle = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(wheel.read(bundle))) as tar:
            for member in tar.getmembers():
                if member.name == f"package/bin/ubuntu/{arch}/cfn-guard":
                    target = binary
                elif member.name.startswith(RULES_PREFIX) and member.name.endswith(".guard"):
                    target = rules / member.name.removeprefix(RULES_PREFIX)
                else:
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                extracted = tar.extractfile(member)
                assert extracted is not None  # noqa: S101 (a regular file member: tarfile returns its data)
                target.write_bytes(extracted.read())
    binary.chmod(0o755)
    return binary, rules


def reported_types(rule_file: Path) -> set[str]:
    """The resource types a rule file says it reports on (its '# Reports on:' header)."""
    types, reading = set(), False
    for line in rule_file.read_text(encoding="utf-8").splitlines():
        text = line.lstrip("#").strip()
        if text.startswith("Reports on:"):
            reading = True
        elif reading and text.startswith("AWS::"):
            types |= {t.strip() for t in text.split(",")}
        elif reading:
            break
    return types


def applicable_rules(rules: Path, types: set[str]) -> list[Path]:
    return sorted(f for f in rules.rglob("*.guard") if reported_types(f) & types)


def guard_document(env: Environment) -> dict[str, Any]:
    """The environment as CloudFormation would see it: present resources, resolved properties."""
    kept = ("Metadata", "DeletionPolicy", "UpdateReplacePolicy", "DependsOn")
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            r.logical_id: {
                "Type": r.type,
                "Properties": r.properties,
                **{k: r.raw[k] for k in kept if k in r.raw},
            }
            for r in env.resources.values()
        },
    }


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def evaluate(env: Environment) -> tuple[list[Path], list[GuardFinding]]:
    """(rules run, non-compliant findings) for one environment."""
    binary, rules = ensure_guard()
    selected = applicable_rules(rules, {r.type for r in env.resources.values()})
    document = json.dumps(guard_document(env))
    parts = [pinned_package(), str(binary.stat().st_size), document]
    parts += [f"{rule.relative_to(rules)}\n{rule.read_text(encoding='utf-8')}" for rule in selected]
    output = remembered("cfn-guard", parts, lambda: _run_guard(binary, selected, document))
    findings: set[GuardFinding] = set()
    for report in json.loads(output):
        for entry in report.get("not_compliant", []):
            rule = entry["Rule"]["name"]
            text = json.dumps(entry)
            control = next(iter(CONTROL.findall(text)), rule)
            message = next(
                (
                    m.strip().splitlines()[0].strip()
                    for m in re.findall(r'"custom_message": "([^"]+)"', text)
                ),
                rule,
            )
            for node in _walk(entry):
                path = node.get("path") if isinstance(node, dict) else None
                match = RESOURCE_PATH.match(path) if isinstance(path, str) else None
                if match:
                    findings.add(
                        GuardFinding(
                            control, rule, match.group(1), message.replace("\\n", " ").strip()
                        )
                    )
    return selected, sorted(findings, key=lambda f: (f.control, f.resource))


def _run_guard(binary: Path, selected: list[Path], document: str) -> str:
    """cfn-guard's JSON report of the document against the selected rules."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "template.json"
        data.write_text(document)
        args = [
            str(binary),
            "validate",
            "--data",
            str(data),
            "--output-format",
            "json",
            "--show-summary",
            "none",
            "--structured",
        ]
        for rule in selected:
            args += ["--rules", str(rule)]
        run = subprocess.run(args, capture_output=True, text=True, check=False)  # noqa: S603 (cfn-guard from the pinned wheel, our arguments, no shell)
    if run.returncode not in (0, 19):  # 19: evaluated, something is not compliant
        raise RuntimeError(f"cfn-guard failed ({run.returncode}): {run.stderr.strip()[:500]}")
    return run.stdout


def exceptions(path: Path = EXCEPTIONS) -> dict[tuple[str, str], str]:
    """(control, resource) -> the reviewed reason it is accepted."""
    entries = json.loads(path.read_text(encoding="utf-8"))["exceptions"]
    return {(e["control"], e["resource"]): e["reason"] for e in entries}


if __name__ == "__main__":  # the Makefile's install step
    found, _ = fetch_guard()
    print(f"{pinned_package()}: {found}")
