"""The outputs file `deploy` writes (R1b's flat-outputs.json, and each stack's own record, D9):
where it is and reading it, as one object (`StackRecord`) that commands and ops pass around and
read the stack's values from, by name (`loanstack.names` pins the output names to the template)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from rich.console import Console

from loanstack import names
from loanstack import render as layout
from loanstack.errors import DeployError, UsageError
from loanstack.template import ROOT


def default_outputs_file() -> Path:
    """Where `deploy` writes the stack's outputs (R1b) unless a target says otherwise."""
    return Path(
        os.environ.get("LOANSTACK_OUTPUTS_FILE") or ROOT / "cfn-outputs" / "flat-outputs.json"
    )


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def read_outputs(path: Path | None = None) -> dict[str, str]:
    """The outputs file `deploy` writes (R1b): a flat JSON object of strings, or a clear error.
    `path`: a target's `outputs_file`; by default the one a new target gets."""
    return read_stack(path).outputs


def read_stack(path: Path | None = None) -> StackRecord:
    """The outputs file as the one object commands pass around: a stack's own file (D9) as
    written, a flat file (R1b) as its outputs alone; a missing or malformed file is a clear
    error."""
    path = path or default_outputs_file()
    if not path.exists():
        raise DeployError(f"{shown(path)} not found: run `loanstack deploy` first")
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise UsageError(
            f"{shown(path)} is not readable JSON ({exc}): run `loanstack deploy` again"
        ) from exc
    if is_record(found):  # a stack's own file (D9)
        return record_of(found, path)
    if not isinstance(found, dict) or not all(isinstance(v, str) for v in found.values()):
        raise UsageError(
            f"{shown(path)} is not a flat JSON object of strings (output name to value, as "
            "`loanstack deploy` writes it): run `loanstack deploy` again"
        )
    return StackRecord.flat(found, path)


def outputs_table(console: Console, outputs: dict[str, str], path: Path | None = None) -> None:
    title = f"Stack outputs ({shown(path or default_outputs_file())})"
    layout.records(console, title, ("output", "value"), outputs.items())


class RecordJson(TypedDict):
    """`cfn-outputs/<stack>.json` as written (SPEC D9); `StackRecord` is the object the tool
    passes around, this is its file. `profile` is null unless the target named one."""

    stack: str
    account: str
    region: str
    target: str
    profile: str | None
    outputs: dict[str, str]


@dataclass(frozen=True)
class StackRecord:
    """Where one deployed stack lives (SPEC D9), written beside the flat outputs by every
    deploy: `cfn-outputs/<stack>.json` = {"stack", "account", "region", "target", "profile",
    "outputs"}. Follow-up commands find the stack's region and target here."""

    stack: str
    account: str
    region: str
    target: str
    outputs: dict[str, str]
    profile: str | None = None
    source: Path | None = field(default=None, compare=False)  # the file it was read from

    @classmethod
    def flat(cls, outputs: dict[str, str], source: Path) -> StackRecord:
        """A flat outputs file no record names (written by hand, or before records): its
        outputs only; stack, account, region and target are unknown (empty)."""
        return cls("", "", "", "", outputs, source=source)

    def output(self, key: str) -> str:
        """One output by name, or a one-line error that names the file it is missing from."""
        if key not in self.outputs:
            where = shown(self.source or default_outputs_file())
            raise DeployError(f"output {key} missing from {where}")
        return self.outputs[key]

    # what commands and ops read (SPEC R1b's outputs and those the tool adds)
    @property
    def function_name(self) -> str:
        return self.output(names.VALIDATION_FUNCTION_NAME)

    @property
    def bucket(self) -> str:
        return self.output(names.DOCUMENTS_BUCKET)

    @property
    def cluster_arn(self) -> str:
        return self.output(names.CLUSTER_ARN)

    @property
    def master_secret_arn(self) -> str:
        return self.output(names.MASTER_SECRET_ARN)

    @property
    def app_secret_arn(self) -> str:
        return self.output(names.APP_SECRET_ARN)

    @property
    def rotation_function_arn(self) -> str:
        return self.output(names.ROTATION_FUNCTION_ARN)

    @property
    def dead_letter_queue_url(self) -> str:
        return self.output(names.DEAD_LETTER_QUEUE_URL)

    @property
    def vpc_id(self) -> str | None:
        """None when absent: `destroy` compares it, and a file without it is not that stack's."""
        return self.outputs.get(names.VPC_ID)

    def as_json(self) -> RecordJson:
        return {
            "stack": self.stack,
            "account": self.account,
            "region": self.region,
            "target": self.target,
            "profile": self.profile,
            "outputs": self.outputs,
        }


def record_file(stack: str, flat: Path | None = None) -> Path:
    """The stack's own outputs file, in the directory of the flat one."""
    return (flat or default_outputs_file()).parent / f"{stack}.json"


def write_record(record: StackRecord, flat: Path | None = None) -> Path:
    """The stack's own file, and the client's flat file (the last deploy's outputs, R1b)."""
    flat = flat or default_outputs_file()
    flat.parent.mkdir(parents=True, exist_ok=True)
    own = record_file(record.stack, flat)
    own.write_text(json.dumps(record.as_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    flat.write_text(json.dumps(record.outputs, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return own


def read_record(stack: str, flat: Path | None = None) -> StackRecord | None:
    """The record `deploy` wrote for this stack, or None (never deployed from here, or gone)."""
    path = record_file(stack, flat)
    if not path.exists():
        return None
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"{shown(path)} is not readable JSON ({exc}): run `loanstack deploy` again"
        ) from exc
    if not is_record(found):
        raise UsageError(
            f"{shown(path)} is not a stack record (stack, account, region, target, outputs): "
            "run `loanstack deploy` again"
        )
    return record_of(found, path)


def record_of(found: dict[str, Any], path: Path) -> StackRecord:
    """A parsed record file (`is_record` holds) as the object."""
    return StackRecord(
        stack=found["stack"],
        account=found["account"],
        region=found["region"],
        target=found["target"],
        outputs=found["outputs"],
        profile=found.get("profile"),
        source=path,
    )


def is_record(found: object) -> bool:
    return (
        isinstance(found, dict)
        and all(isinstance(found.get(k), str) for k in ("stack", "account", "region", "target"))
        and isinstance(found.get("outputs"), dict)
        and all(isinstance(v, str) for v in found["outputs"].values())
    )


def last_record(flat: Path | None = None) -> StackRecord | None:
    """The record of the stack whose outputs the flat file holds (the last deploy), if any."""
    flat = flat or default_outputs_file()
    if not flat.exists() or not flat.parent.is_dir():
        return None
    outputs = read_outputs(flat)
    for path in sorted(flat.parent.glob("*.json")):
        if path == flat:
            continue
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if is_record(found) and found["outputs"] == outputs:
            return read_record(found["stack"], flat)
    return None
