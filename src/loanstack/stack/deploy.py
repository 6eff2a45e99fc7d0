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
from loanstack.stack import protection, survival
from loanstack.stack.destroy import prepare_removals, stack_resources
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
    """The parameters sent, validated first against the template's own constraints; an
    override that contradicts --env or --suffix is refused, not silently replaced."""
    for key, flag, value in (
        (ENVIRONMENT_TYPE, "--env", env),
        (ENVIRONMENT_SUFFIX, "--suffix", suffix),
    ):
        if overrides.get(key, value) != value:
            raise UsageError(
                f"--param {key}={overrides[key]} contradicts {flag} {value}: drop the --param"
            )
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
    options: protection.StackOptions = field(default_factory=protection.StackOptions)
    changes: list[dict[str, Any]] = field(default_factory=list)  # the last change set's

    deployed_parameters: dict[str, str] = field(default_factory=dict)  # the stack's, if any
    deployed_template: dict[str, Any] | None = None  # the stack's own (GetTemplate), if any

    def protected(self) -> list[str]:
        """What the prod stack policy protects once deployed (from the template model)."""
        return protection.protected_ids(self.template_doc, self.parameters)

    def guarded(self) -> list[str]:
        """What the policy protects during this update: the new template's protected resources
        and the deployed stack's, read from the template it was deployed with and its parameter
        values (an update that removes one, by a parameter as EnableCloudTrail=false removes the
        trail bucket, or by a template that no longer has it, is an Update:Delete of it)."""
        found = set(self.protected())
        if self.deployed_parameters:
            doc = self.deployed_template or self.template_doc  # none: the new one, as a guess
            declared = doc.get("Parameters", {})
            valid = {  # a value this template no longer allows is refused later, with its fix
                k: v
                for k, v in self.deployed_parameters.items()
                if k in declared and not template.constraint_violation(declared[k], v)
            }
            try:
                found |= set(protection.protected_ids(doc, valid))
            except template.ParameterError:  # an old template the model cannot resolve
                found |= set(protection.protected_ids(self.template_doc, valid))
        return sorted(found)

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


@dataclass
class Plan:
    """A change set made for the stack and what it lists; `change_set` is None when there is
    nothing to change (no change set is left behind then)."""

    kind: str  # CREATE or UPDATE
    existed: bool  # a stack of that name was there before (in review counts)
    change_set: str | None
    changes: list[dict[str, Any]]


def plan(d: Deployment) -> Plan:
    """Refuse what cannot be deployed, then create the change set (create or update) with the
    stack options and wait for it."""
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
    if current is not None and status != "REVIEW_IN_PROGRESS":
        d.deployed_parameters = {
            p["ParameterKey"]: p["ParameterValue"]
            for p in current.get("Parameters", [])
            if "ParameterValue" in p
        }
        d.deployed_template = read_deployed_template(d, cfn, current)
    if kind == "UPDATE" and current is not None:  # before anything reads the merged values
        refuse_stale_previous_values(d, current)
    protection.check_allowed(d.options.allow_replace, d.guarded(), d.env)
    check_concurrency(d, current)
    params: list[dict[str, Any]] = [
        {"ParameterKey": k, "ParameterValue": v} for k, v in d.parameters.items()
    ]
    extra: dict[str, Any] = {}
    alarms = protection.health_alarms(d.template_doc, d.parameters)
    if kind == "UPDATE" and current is not None:  # keep values given before, as the console does
        previous = {p["ParameterKey"] for p in current.get("Parameters", [])}
        params += [
            {"ParameterKey": k, "UsePreviousValue": True}
            for k in d.template_doc["Parameters"]
            if k not in d.parameters and k in previous
        ]
        rollback = protection.rollback_configuration(
            current["StackId"],
            list(stack_resources(d.target, d.name)),
            alarms,
            d.options.monitoring_minutes,
        )
        if rollback:
            extra["RollbackConfiguration"] = rollback
    if d.options.role_arn:
        extra["RoleARN"] = d.options.role_arn
    if d.options.notification_arns:
        extra["NotificationARNs"] = d.options.notification_arns
    d.console.print(Text(d.target.describe(d.name)), soft_wrap=True)
    try:
        change_set = cfn.create_change_set(
            StackName=d.name,
            ChangeSetName=f"loanstack-{int(time.time())}",
            ChangeSetType=kind,
            Parameters=params,
            Capabilities=["CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],  # the transform (R1)
            Tags=protection.stack_tags(d.env, d.options.tags),
            **extra,
            **d.body(),
        )
    except ClientError as exc:  # moto refuses an identical update here; AWS fails the change set
        if "No updates are to be performed" not in str(exc):
            raise
        return Plan(kind, current is not None, None, [])
    changes = wait_for_change_set(d.target, change_set["Id"])
    found = None if changes is None else change_set["Id"]
    return Plan(kind, current is not None, found, changes or [])


def deploy(d: Deployment, confirm: Callable[[], bool]) -> dict[str, str]:
    """Create or update through a change set; returns the stack outputs (also written, R1b).
    The changes shown are kept on `d.changes` (for `--output json`)."""
    cfn = d.target.client("cloudformation")
    p = plan(d)
    d.changes = p.changes
    if p.change_set is None:
        d.console.print(f"{d.name}: no changes")
        settle(d)
        return write_outputs(d.target, d.name)
    show_change_set(d.console, d.name, p.kind, p.changes)
    if not confirm():
        cfn.delete_change_set(ChangeSetName=p.change_set)
        raise UsageError("change set not executed (rerun with --yes to execute without asking)")
    stopped = prepare_removals(d.target, d.name, p.changes, d.console)
    before = event_ids(d.target, d.name)
    prod = d.env == "prod" and p.kind == "UPDATE"
    with protection.policy_for_update(d.target, d.name, d.guarded(), d.options.allow_replace, prod):
        cfn.execute_change_set(
            ChangeSetName=p.change_set, DisableRollback=d.options.disable_rollback
        )
        final = follow(d.target, d.name, d.console, len(p.changes), before)
    if final not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        for trail in stopped:  # the trail stays: it must log again
            d.target.client("cloudtrail").start_logging(Name=trail)
            d.console.print(f"trail {trail} logs again (the update that removed it failed)")
        reason = first_failure(d.target, d.name, before)
        advice = ""
        if final in FAILED_STATES:  # a stack that never got created cannot be updated
            advice = f"; remove it with `{command_for(d.target, 'destroy', d.suffix)}`"
        raise DeployError(f"{d.name} ended {final}: {reason}{advice}")
    settle(d)
    outputs = write_outputs(d.target, d.name)
    d.console.print(
        f"{d.name}: {final}; outputs in {shown(record_file(d.name, d.target.outputs_file))} "
        f"and {shown(d.target.outputs_file)}"
    )
    return outputs


def settle(d: Deployment) -> None:
    """The stack policy (prod) and termination protection wanted, each change said."""
    stack = stack_status(d.target, d.name)
    if stack is None:
        return
    for line in protection.settle(d.target, stack, d.env, d.options, d.protected()):
        d.console.print(Text(f"{d.name}: {line}"), soft_wrap=True)


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


# What IAM answers when a policy does not allow the call: only then may prod's guard go on with
# the new template alone (anything else is a failure to retry, not a permission to work around).
# https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException"})


def read_deployed_template(
    d: Deployment, cfn: Any, current: dict[str, Any]
) -> dict[str, Any] | None:
    """The deployed stack's own template, which prod's guard reads to know what its stack policy
    protects (a resource the new template drops is an Update:Delete of it). Only prod has that
    policy, so dev never calls GetTemplate; when it cannot be read (no permission, a YAML body),
    the guard takes the new template, as it would on a first deploy, and says so."""
    if d.env != "prod":
        return None
    try:
        doc, _ = survival.deployed_template(cfn, current)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "Error"), " ".join(str(error.get("Message", exc)).split())
        if code not in DENIED_CODES:  # throttled past boto3's retries, expired, a 5xx: not a no
            raise DeployError(
                f"cannot read the deployed template of {d.name} ({code}: {message}); prod's "
                "stack policy guard needs it: nothing was changed, run the deploy again"
            ) from exc
        why = f"GetTemplate refused: {code}: {message}"
        fix = "allow cloudformation:GetTemplate on the stack to guard what the deployed template protects"
        template_note(d, why, fix)
        return None
    except survival.SurvivalUnknown as exc:  # a YAML body, deployed by another tool
        template_note(d, str(exc))
        return None
    return doc


def template_note(d: Deployment, why: str, fix: str = "") -> None:
    """One line however wide the terminal, AWS's words as written (no console markup in them)."""
    line = (
        f"note: cannot read the deployed template of {d.name} ({' '.join(why.split())}): "
        "the stack policy guard judges the new template only"
    )
    d.console.print(Text(f"{line}; {fix}" if fix else line), soft_wrap=True)
