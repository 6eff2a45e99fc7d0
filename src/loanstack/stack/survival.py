"""What a stack delete leaves behind on purpose (R6 amended: prod's data survives).

`loanstack destroy` must not empty a bucket the stack keeps, must not stop a trail whose
archive is kept (stopping it breaks the digest chain an auditor verifies), and must say what
survives so that the data can be restored from it. The answer comes from the deployed
template and parameters, resolved as CloudFormation resolves them (template.py), so it holds
for any environment and any future resource.
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-deletionpolicy.html
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loanstack import template

KEEPS = ("Retain", "RetainExceptOnCreate")
SNAPSHOTS = ("Snapshot",)


class SurvivalUnknown(ValueError):
    """The deployed template and parameters do not resolve: refuse rather than guess."""


@dataclass(frozen=True)
class Survivor:
    """One resource a delete leaves (kept) or leaves a snapshot of."""

    logical_id: str
    type: str
    policy: str

    @property
    def kept(self) -> bool:
        return self.policy in KEEPS


def survivors(
    doc: dict[str, Any], parameters: Mapping[str, str], context: template.Context | None = None
) -> dict[str, Survivor]:
    """Logical id -> what its DeletionPolicy does, for every resource a delete does not erase."""
    env = template.instantiate(doc, dict(parameters), context)
    return {
        r.logical_id: Survivor(r.logical_id, r.type, str(r.deletion_policy))
        for r in env.resources.values()
        if r.deletion_policy in KEEPS + SNAPSHOTS
    }


def deployed_template(cfn: Any, stack: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The template the stack was deployed with, as written (GetTemplate, Stage Original: the
    transform not yet applied, as the template model reads it), and the stack's parameter
    values that template declares.
    https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_GetTemplate.html"""
    body = cfn.get_template(StackName=stack["StackId"], TemplateStage="Original")["TemplateBody"]
    try:
        doc = body if isinstance(body, dict) else json.loads(body)
    except ValueError as exc:  # a stack first deployed from YAML, by another tool
        raise unknown(stack, ValueError("its deployed template is not JSON")) from exc
    if not isinstance(doc, dict):
        raise unknown(stack, ValueError("its deployed template is not a JSON object"))
    given = {
        p["ParameterKey"]: p["ParameterValue"]
        for p in stack.get("Parameters", [])
        if "ParameterValue" in p
    }
    declared = set(doc.get("Parameters", {}))
    return doc, {k: v for k, v in given.items() if k in declared}


def deployed_survivors(cfn: Any, stack: Mapping[str, Any]) -> dict[str, Survivor]:
    """The survivors of a deployed stack, from its own template and parameter values."""
    doc, given = deployed_template(cfn, stack)
    try:
        return survivors(doc, given)
    except template.ParameterError as exc:
        raise unknown(stack, exc) from exc


def unknown(stack: Mapping[str, Any], exc: Exception) -> SurvivalUnknown:
    return SurvivalUnknown(
        f"{stack.get('StackName', 'the stack')}: cannot tell what its delete keeps ({exc})"
    )


def summary(
    found: Mapping[str, Survivor],
    physical: Mapping[str, str],
    snapshots: Mapping[str, list[str]],
) -> list[str]:
    """One line per survivor: its physical id, and for a snapshot policy the snapshot ids."""
    lines = []
    for logical_id, survivor in sorted(found.items()):
        name = physical.get(logical_id, "?")
        if survivor.kept:
            lines.append(f"kept: {survivor.type} {logical_id} {name}")
        else:
            taken = ", ".join(snapshots.get(name, [])) or "none found"
            lines.append(f"final snapshot of {survivor.type} {logical_id} {name}: {taken}")
    return lines
