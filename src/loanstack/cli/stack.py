"""Commands on the stack's life: deploy, destroy, outputs."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.text import Text

from loanstack import render as layout
from loanstack.aws.outputs import outputs_table, read_outputs
from loanstack.cli.common import ask, connected, overrides, warn_if_ephemeral
from loanstack.errors import UsageError
from loanstack.names import stack_name
from loanstack.stack.deploy import Deployment, deploy, parameters_for
from loanstack.stack.destroy import destroy
from loanstack.stack.events import stack_status


def run_deploy(args: argparse.Namespace, console: Console) -> int:
    params = parameters_for(args.env, args.suffix, overrides(args.param))
    with connected(args, console) as target:
        warn_if_ephemeral(target, console)
        d = Deployment(
            target, args.env, args.suffix, params, console, template_bucket=args.template_bucket
        )
        outputs = deploy(d, confirm=lambda: args.yes or ask(console, "Execute this change set?"))
        where = {"target": target.name, "account": target.account(), "region": target.region}
    if args.output == "json":
        layout.emit({"stack": d.name, **where, "outputs": outputs})
    else:
        outputs_table(console, outputs)
    return 0


def run_destroy(args: argparse.Namespace, console: Console) -> int:
    parameters_for("dev", args.suffix, {})  # a bad suffix is refused before connecting
    name = stack_name(args.suffix)
    with connected(args, console) as target:
        if stack_status(target, name) is None:
            console.print(Text(f"no stack {name} in {target.where()}: nothing to destroy"))
            return 0
        if not (args.yes or ask(console, f"Delete stack {name} and its data?")):
            raise UsageError("not confirmed (use --yes)")
        destroy(target, args.suffix, console)
    return 0


def run_outputs(args: argparse.Namespace, console: Console) -> int:
    outputs = read_outputs()
    if args.output == "json":
        layout.emit(outputs)
    else:
        outputs_table(console, outputs)
    return 0
