"""The deploy options a bank sets on the stack, and the commands that look without changing:
`diff` (alias `plan`: the change set, then nothing left behind) and `drift`.

Exit codes: `diff` 0 (with `--exit-code`: 0 no changes, 1 changes, 2 any error); `drift` 0 in
sync, 1 drifted (or an error, said in one line on stderr); 2 usage, as every command.
"""

from __future__ import annotations

import argparse

from rich.console import Console

from loanstack import render as layout
from loanstack.cli.common import (
    connected,
    overrides,
)
from loanstack.errors import DeployError, Interrupted, UsageError
from loanstack.names import stack_name
from loanstack.stack.deploy import Deployment, parameters_for
from loanstack.stack.drift import detect, show
from loanstack.stack.events import change_records, stack_status
from loanstack.stack.preview import preview
from loanstack.stack.protection import StackOptions


def stack_options(args: argparse.Namespace) -> StackOptions:
    if not 0 <= args.monitoring_minutes <= 180:  # RollbackConfiguration's range
        raise UsageError("--monitoring-minutes takes 0 to 180")
    return StackOptions(
        tags=overrides(args.tags, "--tags"),
        role_arn=args.role_arn,
        notification_arns=list(args.notification_arns),
        termination_protection=getattr(args, "termination_protection", None),
        allow_replace=list(getattr(args, "allow_replace", [])),
        disable_rollback=getattr(args, "disable_rollback", False),
        monitoring_minutes=args.monitoring_minutes,
    )


def run_diff(args: argparse.Namespace, console: Console) -> int:
    try:
        return diff(args, console)
    except Interrupted:
        raise
    except DeployError as exc:
        if args.exit_code and not isinstance(exc, UsageError):
            raise UsageError(str(exc)) from exc  # 1 means "changes" under --exit-code
        raise


def diff(args: argparse.Namespace, console: Console) -> int:
    params = parameters_for(args.env, args.suffix, overrides(args.param))
    options = stack_options(args)
    with connected(args, console) as target:
        d = Deployment(
            target,
            args.env,
            args.suffix,
            params,
            console,
            template_bucket=args.template_bucket,
            options=options,
        )
        changes = preview(d)
    if args.output == "json":
        layout.emit({"stack": d.name, "changed": bool(changes), "changes": change_records(changes)})
    return 1 if args.exit_code and changes else 0


def run_drift(args: argparse.Namespace, console: Console) -> int:
    parameters_for("dev", args.suffix, {})  # a bad suffix is refused before connecting
    name = stack_name(args.suffix)
    with connected(args, console) as target:
        if stack_status(target, name) is None:
            raise DeployError(f"no stack {name} in {target.where()}")
        report = detect(target, name)
    if args.output == "json":
        layout.emit(report.as_json())
    else:
        show(console, report)
    return 1 if report.drifted else 0
