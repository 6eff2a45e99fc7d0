"""The outputs file `deploy` writes (R1b's flat-outputs.json): where it is, reading it, one value."""

from __future__ import annotations

import json
import os
from pathlib import Path

from rich.console import Console

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
    path = path or default_outputs_file()
    if not path.exists():
        raise DeployError(f"{shown(path)} not found: run `loanstack deploy` first")
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise UsageError(
            f"{shown(path)} is not readable JSON ({exc}): run `loanstack deploy` again"
        ) from exc
    if not isinstance(found, dict) or not all(isinstance(v, str) for v in found.values()):
        raise UsageError(
            f"{shown(path)} is not a flat JSON object of strings (output name to value, as "
            "`loanstack deploy` writes it): run `loanstack deploy` again"
        )
    return found


def output(outputs: dict[str, str], key: str, path: Path | None = None) -> str:
    if key not in outputs:
        raise DeployError(f"output {key} missing from {shown(path or default_outputs_file())}")
    return outputs[key]


def outputs_table(console: Console, outputs: dict[str, str], path: Path | None = None) -> None:
    title = f"Stack outputs ({shown(path or default_outputs_file())})"
    layout.records(console, title, ("output", "value"), outputs.items())
