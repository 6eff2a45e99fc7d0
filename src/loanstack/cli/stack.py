"""Commands on the stack's life: deploy, destroy, outputs."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.console import Console
from rich.text import Text

from loanstack import render as layout
from loanstack.aws.outputs import (
    StackRecord,
    outputs_table,
    read_outputs,
    read_record,
    record_file,
)
from loanstack.aws.target import Target, command_for
from loanstack.cli.common import (
    ask,
    ask_or_decline,
    connected,
    overrides,
    type_name,
    warn_if_ephemeral,
)
from loanstack.cli.stackopts import stack_options
from loanstack.errors import Declined, DeployError, UsageError
from loanstack.names import stack_name
from loanstack.stack.deploy import Deployment, deploy, parameters_for
from loanstack.stack.destroy import destroy, environment_of, regions_holding, what_survives
from loanstack.stack.events import change_records, stack_status


def run_deploy(args: argparse.Namespace, console: Console) -> int:
    params = parameters_for(args.env, args.suffix, overrides(args.param))
    with connected(args, console) as target:
        warn_if_ephemeral(target, console)
        d = Deployment(
            target,
            args.env,
            args.suffix,
            params,
            console,
            template_bucket=args.template_bucket,
            options=stack_options(args),
        )
        answers: list[bool] = []
        try:
            outputs = deploy(d, confirm=lambda: answer(args.yes, console, answers))
        except UsageError as exc:
            if answers == [False] and sys.stdin.isatty():  # "no" at the prompt: a choice
                raise Declined("nothing changed (the change set was not executed)") from exc
            raise
        where = {"target": target.name, "account": target.account(), "region": target.region}
    if args.output == "json":
        changes = {"changed": bool(d.changes), "changes": change_records(d.changes)}
        layout.emit({"stack": d.name, **where, "outputs": outputs, **changes})
    else:
        outputs_table(console, outputs)
    return 0


def answer(yes: bool, console: Console, answers: list[bool]) -> bool:
    """The deploy prompt's answer (--yes, else asked), kept so a "no" can be told from an error."""
    answers.append(yes or ask(console, "Execute this change set?"))
    return answers[-1]


def run_destroy(args: argparse.Namespace, console: Console) -> int:
    """Destroy exactly one named stack (D9): in the region and target given, else where its
    record says it is; the prompt names account, region, target and stack, and what survives."""
    parameters_for("dev", args.suffix, {})  # a bad suffix is refused before connecting
    name = stack_name(args.suffix)
    record = read_record(name)
    if record is not None:  # flags win; the record fills in the rest (the AWS CLI order after)
        args.region = args.region or record.region
        args.target = args.target or record.target
        args.profile = args.profile or record.profile
    with connected(args, console) as target:
        stack = stack_status(target, name)
        if stack is None:
            return not_there(target, name, args.suffix, record, console, args.output)
        console.print(Text(f"{target.describe(name)} ({stack['StackStatus']})"), soft_wrap=True)
        survives = list(what_survives(target, stack))
        for line in survives:
            console.print(Text(f"  {line}"), soft_wrap=True)
        confirm_delete(args, console, target, name, environment_of(stack))
        refuse_protected(target, stack, args.suffix)
        destroy(target, args.suffix, console)
        where = {"target": target.name, "account": target.account(), "region": target.region}
    if args.output == "json":
        layout.emit({"stack": name, **where, "deleted": True, "survives": survives})
    return 0


def refuse_protected(target: Target, stack: dict[str, Any], suffix: str) -> None:
    """Termination protection makes DeleteStack fail: say so before emptying anything, with
    the commands that turn it off (this tool's and the AWS CLI's)."""
    if not stack.get("EnableTerminationProtection"):
        return
    name, env = stack["StackName"], environment_of(stack)
    deploy_off = command_for(target, "deploy", suffix).replace(
        "loanstack deploy", f"loanstack deploy --env {env}"
    )
    endpoint = f" --endpoint-url {target.endpoint_url}" if target.endpoint_url else ""
    raise DeployError(
        f"stack {name} has termination protection, so it cannot be deleted: turn it off with "
        f"`{deploy_off} --no-termination-protection --yes` (or `aws cloudformation "
        f"update-termination-protection --no-enable-termination-protection --stack-name {name} "
        f"--region {target.region}{endpoint}`), then destroy again"
    )


def not_there(
    target: Target,
    name: str,
    suffix: str,
    record: StackRecord | None,
    console: Console,
    output: str = "text",
) -> int:
    """No such stack where we looked: exit 0 only when it is nowhere we know of."""
    elsewhere = []
    if record is not None and (record.region, record.target) != (target.region, target.name):
        profile = f" --profile {record.profile}" if record.profile else ""
        elsewhere.append(
            f"recorded in {record.target} region {record.region}: `loanstack destroy --suffix "
            f"{suffix} --region {record.region} --target {record.target}{profile}`"
        )
    for region in regions_holding(target, name):
        if record is None or region != record.region:
            elsewhere.append(
                f"found in region {region}: `{command_for_region(target, suffix, region)}`"
            )
    if elsewhere:
        raise DeployError(f"no stack {name} in {target.where()}; " + "; ".join(elsewhere))
    console.print(Text(f"no stack {name} in {target.where()}: nothing to destroy"))
    if output == "json":
        where = {"target": target.name, "account": target.account(), "region": target.region}
        layout.emit({"stack": name, **where, "deleted": False, "survives": []})
    return 0


def command_for_region(target: Target, suffix: str, region: str) -> str:
    here = command_for(target, "destroy", suffix)
    return here.replace(f"--region {target.region}", f"--region {region}")


def confirm_delete(
    args: argparse.Namespace, console: Console, target: Target, name: str, env: str
) -> None:
    """dev: --yes or a yes at a terminal. prod: the stack name typed at a terminal, or
    `--confirm-stack NAME` (CI); --yes alone never deletes prod."""
    where = f"{target.where()}, target {target.name}"
    if env != "prod":
        question = f"Delete stack {name} ({where}) and its data?"
        if not (args.yes or ask_or_decline(console, question)):
            raise UsageError("not confirmed (use --yes)")
        return
    if args.confirm_stack is not None:
        if args.confirm_stack != name:
            raise UsageError(f"--confirm-stack {args.confirm_stack} is not the stack {name}")
        return
    typed = type_name(console, f"Delete prod stack {name} ({where})? Type its name to confirm")
    if typed != name:
        raise UsageError(
            f"{name} is a prod stack: type its name at the prompt, or pass --confirm-stack {name} "
            "(--yes alone does not delete prod)"
        )


def run_outputs(args: argparse.Namespace, console: Console) -> int:
    if args.suffix:
        parameters_for("dev", args.suffix, {})
        record = read_record(stack_name(args.suffix))
        if record is None:
            raise DeployError(
                f"no outputs recorded for stack {stack_name(args.suffix)}: deploy it first"
            )
        if args.output == "json":
            layout.emit(record.as_json())
        else:
            console.print(
                Text(
                    f"stack {record.stack}: {record.target}, account {record.account}, "
                    f"region {record.region}"
                )
            )
            outputs_table(console, record.outputs, record_file(record.stack))
        return 0
    outputs = read_outputs()
    if args.output == "json":
        layout.emit(outputs)
    else:
        outputs_table(console, outputs)
    return 0
