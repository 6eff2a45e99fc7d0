"""Create or update the stack through a change set, shown before it runs (SPEC R1).

The template goes inline or staged in S3 (`staging`), what AWS would refuse late is refused first
(`preflight`), the events stream as they happen and the first failure stops the command with the
failing resource and its reason (`events`). One code path for AWS and the local target.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from rich.console import Console
from rich.text import Text

from loanstack import template
from loanstack.aws.outputs import StackRecord, record_file, shown, write_record
from loanstack.aws.target import Target, command_for
from loanstack.errors import DeployError, UsageError
from loanstack.names import ENVIRONMENT_SUFFIX, ENVIRONMENT_TYPE, stack_name
from loanstack.stack.destroy import prepare_removals
from loanstack.stack.events import (
    event_ids,
    first_failure,
    follow,
    show_change_set,
    stack_status,
    wait_for_change_set,
)
from loanstack.stack.preflight import (
    backup_problem,
    capacity_problem,
    check_concurrency,
    refuse_stale_previous_values,
)
from loanstack.stack.staging import stage_template

FAILED_STATES = {
    "CREATE_FAILED",
    "ROLLBACK_COMPLETE",
    "ROLLBACK_FAILED",
    "DELETE_FAILED",
    "UPDATE_ROLLBACK_FAILED",
    "IMPORT_ROLLBACK_FAILED",
}


def parameters_for(env: str, suffix: str, overrides: dict[str, str]) -> dict[str, str]:
    """The parameters sent, validated first against the template's own constraints."""
    given = {**overrides, ENVIRONMENT_TYPE: env, ENVIRONMENT_SUFFIX: suffix}
    try:
        values = template.parameter_values(template.load(), given)
    except template.ParameterError as exc:
        raise UsageError(str(exc)) from exc
    problem = capacity_problem(values) or backup_problem(values)
    if problem:
        raise UsageError(problem)
    return given


@dataclass
class Deployment:
    target: Target
    env: str
    suffix: str
    parameters: dict[str, str]
    console: Console
    template_doc: dict[str, Any] = field(default_factory=template.load)
    template_bucket: str | None = None

    @property
    def name(self) -> str:
        return stack_name(self.suffix)

    def expected_resources(self) -> int:
        env = template.instantiate(self.template_doc, self.parameters)
        return len(env.resources)

    def body(self) -> dict[str, str]:
        """TemplateBody when it fits CloudFormation's inline limit; else a staged TemplateURL.

        The template outgrew the 51,200-byte inline limit (SPEC R1), so it goes through S3 as
        `sam deploy --resolve-s3` and rain do: into a bucket this tool manages for the account
        and region (or --template-bucket), under a content-addressed key. The emulator takes the
        same path, so the staging code is tested where AWS is not at hand.
        """
        text = template.minified(self.template_doc)
        if len(text.encode()) <= template.DIRECT_UPLOAD_LIMIT:
            return {"TemplateBody": text}
        return {"TemplateURL": stage_template(self.target, text, self.name, self.template_bucket)}


def deploy(d: Deployment, confirm: Callable[[], bool]) -> dict[str, str]:
    """Create or update through a change set; returns the stack outputs (also written, R1b)."""
    cfn = d.target.client("cloudformation")
    current = stack_status(d.target, d.name)
    status = current["StackStatus"] if current else None
    if status in FAILED_STATES:
        raise DeployError(
            f"stack {d.name} is {status}: remove it with "
            f"`{command_for(d.target, 'destroy', d.suffix)}` and deploy again "
            f"({d.target.where()})"
        )
    if status and status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        raise DeployError(f"stack {d.name} is busy ({status}); wait for it to finish")
    kind = "UPDATE" if status and status != "REVIEW_IN_PROGRESS" else "CREATE"
    check_concurrency(d, current)
    params: list[dict[str, Any]] = [
        {"ParameterKey": k, "ParameterValue": v} for k, v in d.parameters.items()
    ]
    if kind == "UPDATE":  # keep values given before unless changed now, as the console does
        refuse_stale_previous_values(d, current)
        previous = {p["ParameterKey"] for p in current.get("Parameters", [])} if current else set()
        params += [
            {"ParameterKey": k, "UsePreviousValue": True}
            for k in d.template_doc["Parameters"]
            if k not in d.parameters and k in previous
        ]
    d.console.print(Text(d.target.describe(d.name)), soft_wrap=True)
    try:
        change_set = cfn.create_change_set(
            StackName=d.name,
            ChangeSetName=f"loanstack-{int(time.time())}",
            ChangeSetType=kind,
            Parameters=params,
            Capabilities=["CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],  # the transform (R1)
            Tags=[{"Key": "Environment", "Value": d.env}],
            **d.body(),
        )
    except ClientError as exc:  # moto refuses an identical update here; AWS fails the change set
        if "No updates are to be performed" not in str(exc):
            raise
        d.console.print(f"{d.name}: no changes")
        return write_outputs(d.target, d.name)
    changes = wait_for_change_set(d.target, change_set["Id"])
    if changes is None:
        d.console.print(f"{d.name}: no changes")
        return write_outputs(d.target, d.name)
    show_change_set(d.console, d.name, kind, changes)
    if not confirm():
        cfn.delete_change_set(ChangeSetName=change_set["Id"])
        raise UsageError("change set not executed (rerun with --yes to execute without asking)")
    stopped = prepare_removals(d.target, d.name, changes, d.console)
    before = event_ids(d.target, d.name)
    cfn.execute_change_set(ChangeSetName=change_set["Id"])
    final = follow(d.target, d.name, d.console, len(changes), before)
    if final not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        for trail in stopped:  # the trail stays: it must log again
            d.target.client("cloudtrail").start_logging(Name=trail)
            d.console.print(f"trail {trail} logs again (the update that removed it failed)")
        reason = first_failure(d.target, d.name, before)
        advice = ""
        if final in FAILED_STATES:  # a stack that never got created cannot be updated
            advice = f"; remove it with `{command_for(d.target, 'destroy', d.suffix)}`"
        raise DeployError(f"{d.name} ended {final}: {reason}{advice}")
    outputs = write_outputs(d.target, d.name)
    d.console.print(
        f"{d.name}: {final}; outputs in {shown(record_file(d.name, d.target.outputs_file))} "
        f"and {shown(d.target.outputs_file)}"
    )
    return outputs


def stack_outputs(target: Target, name: str) -> dict[str, str]:
    stack = stack_status(target, name)
    if stack is None:
        raise DeployError(f"no stack {name}")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def write_outputs(target: Target, name: str) -> dict[str, str]:
    """The stack's own record (D9: account, region, target, outputs) and the flat file (R1b)."""
    outputs = stack_outputs(target, name)
    record = StackRecord(
        name, target.account(), target.region, target.name, outputs, target.profile
    )
    write_record(record, target.outputs_file)
    return outputs
