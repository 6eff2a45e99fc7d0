"""The `loanstack` parser: every command's arguments, and nothing else.

It is all a `--help` or a usage error needs, so it imports no command's code: argparse and the
light modules only (a `loanstack` process that only refuses costs the interpreter's start, not
boto3's and rich's imports; docs/testing.md "Keeping it fast"). The handlers are imported when
their command runs (`cli/main.py`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from loanstack import __version__
from loanstack.ops.logs import FORMATS, LOGGED

ENVIRONMENTS = ("dev", "prod")
# `emulator start`'s default port: fixed, as LocalStack's 4566, so a URL written down stays
# true; not 4566 itself, nor LocalStack's 4510-4559 service range, so both run side by side
EMULATOR_DEFAULT_PORT = 4577
# ops.rotate.CHOICES and ops.restore.DEFAULT_TIMEOUT, which import boto3 and rich: copied here,
# held equal by tests/unit/test_cli_parser.py
ROTATE_CHOICES = ("master", "app", "both")
RESTORE_TIMEOUT = 3600.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="loanstack",
        description="Check, deploy, try and tear down the loan processing stack (lib/TapStack.json).",
        epilog=(
            "exit codes: 0 done (or declined: nothing changed), 1 failure, 2 usage, "
            "130 interrupted, 141 stdout closed, 143 terminated (docs/operations.md)"
        ),
    )
    parser.add_argument("--version", action="version", version=f"loanstack {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    chk = sub.add_parser(
        "check",
        help="judge the template: cfn-lint, checkov, own compliance checks, Control Tower rules",
    )
    chk.add_argument("--env", choices=ENVIRONMENTS, action="append", help="default: both")
    chk.add_argument("--suffix", default="check", help="EnvironmentSuffix to evaluate with")
    chk.add_argument("--sarif", metavar="FILE", help="also write the findings as SARIF 2.1.0")
    add_output_option(chk)

    fmt = sub.add_parser("fmt", help="rewrite lib/TapStack.json in canonical form (2-space JSON)")
    fmt.add_argument("--check", action="store_true", help="exit 1 if the file is not canonical")

    cst = sub.add_parser("cost", help="estimate the monthly bill of one environment")
    cst.add_argument("--env", choices=ENVIRONMENTS, required=True)
    cst.add_argument("--region", default="us-east-1")
    cst.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="parameter override"
    )
    add_output_option(cst)

    dia = sub.add_parser("diagram", help="print the architecture as Mermaid (from the template)")
    dia.add_argument("--write", action="store_true", help="update the diagram block in README.md")

    syn = sub.add_parser("sync", help="embed lib/functions/*/index.py into the template's ZipFile")
    syn.add_argument("--check", action="store_true", help="exit 1 if an embedded copy is stale")

    dep = sub.add_parser("deploy", help="create or update the stack through a change set")
    dep.add_argument("--env", choices=ENVIRONMENTS, required=True)
    add_stack_options(dep, suffix_required=True)
    dep.add_argument("--yes", action="store_true", help="execute the change set without asking")
    add_deploy_options(dep)
    add_output_option(dep)
    add_diff_parser(sub)

    des = sub.add_parser("destroy", help="empty the stack's buckets, delete it, report leftovers")
    add_stack_options(des, suffix_required=True)
    des.add_argument("--yes", action="store_true", help="do not ask for confirmation (dev)")
    des.add_argument(
        "--confirm-stack",
        metavar="NAME",
        help="prod: the stack's name, to delete it without a terminal (--yes is not enough)",
    )
    add_output_option(des)

    out = sub.add_parser(
        "outputs",
        help="print the last deploy's outputs (cfn-outputs/flat-outputs.json), or one stack's",
    )
    out.add_argument(
        "--suffix", help="that stack's record (cfn-outputs/tapstack-<suffix>.json): where, outputs"
    )
    add_output_option(out)

    inv = sub.add_parser("invoke", help="run the deployed validation function on a payload")
    inv.add_argument("function", choices=("validate",))
    inv.add_argument("--payload", required=True, help="JSON file, or - for standard input")
    add_stack_options(inv, suffix_required=False)
    add_output_option(inv)

    rot = sub.add_parser(
        "rotate",
        help="finish or clear an interrupted rotation, then rotate the database secret now and wait for it",
    )
    add_stack_options(rot, suffix_required=False)
    add_output_option(rot)
    add_rotate_options(rot)

    add_logs_parser(sub)

    emu = sub.add_parser("emulator", help="run the embedded AWS emulator for other commands")
    emu.add_argument("action", choices=("start", "status", "stop"))
    emu.add_argument(
        "--port",
        type=int,
        default=EMULATOR_DEFAULT_PORT,
        help=f"loopback port (default {EMULATOR_DEFAULT_PORT}; 0: a free one)",
    )
    emu.add_argument(
        "--detach", action="store_true", help="(start) run in the background and return"
    )

    mig = sub.add_parser(
        "migrate",
        help="move a CSV or JSON Lines export through the validation function, resumably, to one report",
    )
    mig.add_argument("export", help="the export file: .csv (with a header) or .jsonl/.ndjson")
    mig.add_argument(
        "--chunk-rows", type=int, default=10_000, help="lines per chunk file (default 10000)"
    )
    mig.add_argument(
        "--retry-failed", action="store_true", help="send chunks in the dead-letter queue again"
    )
    mig.add_argument(
        "--timeout", type=float, default=3600, help="seconds to wait for the chunks (default 3600)"
    )
    add_stack_options(mig, suffix_required=False)
    add_output_option(mig)
    mig.add_argument("--no-verify", action="store_true", help="skip `loanstack verify` at the end")
    mig.add_argument(
        "--manifest",
        metavar="FILE",
        help="also save the run's manifest here (it is always written to S3 under manifests/)",
    )
    mig.add_argument(
        "--problems",
        metavar="FILE",
        help="write every problem row here as JSON Lines (default: next to --manifest FILE, "
        "else migration-<id>.problems.jsonl in the current directory)",
    )
    mig.add_argument(
        "--show", type=int, default=20, help="problem rows printed (default 20; all in the file)"
    )

    sub.add_parser("demo", help="deploy, try, rotate and destroy a dev stack on the emulator")
    add_verify_parser(sub)
    add_restore_parser(sub)
    add_correct_parser(sub)
    add_drift_parser(sub)
    return parser.parse_args(argv)


def add_stack_options(parser: argparse.ArgumentParser, suffix_required: bool) -> None:
    if suffix_required:
        parser.add_argument("--suffix", required=True, help="EnvironmentSuffix, e.g. dev42")
    else:
        parser.add_argument(
            "--suffix",
            help="the stack's EnvironmentSuffix (default: the stack of the last deploy)",
        )
    parser.add_argument(
        "--region",
        help=(
            "default: the stack's recorded region, else AWS_REGION, AWS_DEFAULT_REGION, the "
            "profile's region (as the AWS CLI)"
        ),
    )
    parser.add_argument(
        "--profile", help="AWS CLI profile for credentials and region (default: AWS_PROFILE)"
    )
    parser.add_argument(
        "--target",
        choices=("local", "aws"),
        help=(
            "default: local (the emulator at $LOANSTACK_EMULATOR_URL, or one for this command); "
            "AWS only with --target aws or when confirmed at a terminal"
        ),
    )


def add_output_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help="json: one JSON document on stdout, human text on stderr",
    )


def add_change_set_options(parser: argparse.ArgumentParser) -> None:
    """What the change set carries: shared by `deploy` and `diff`, so a diff shows what the
    deploy with the same flags would do."""
    parser.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="parameter override"
    )
    parser.add_argument(
        "--template-bucket",
        help="bucket to stage the template in (default: loanstack-templates-<account>-<region>, created on first use)",
    )
    parser.add_argument(
        "--tags",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="stack tags, propagated by CloudFormation to the resources (Environment is --env)",
    )
    parser.add_argument(
        "--role-arn", help="CloudFormation service role that deploys the stack (RoleARN)"
    )
    parser.add_argument(
        "--notification-arns",
        nargs="+",
        default=[],
        metavar="ARN",
        help="SNS topics that receive the stack's events",
    )
    parser.add_argument(
        "--monitoring-minutes",
        type=int,
        default=0,
        help="updates: minutes CloudFormation watches the rollback-trigger alarms after the "
        "update (0-180, default 0: during the update only)",
    )


def add_deploy_options(parser: argparse.ArgumentParser) -> None:
    """`deploy` only: how the change set is executed and what is set on the stack after."""
    add_change_set_options(parser)
    parser.add_argument(
        "--termination-protection",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="refuse DeleteStack until turned off (default: on for prod, off for dev)",
    )
    parser.add_argument(
        "--allow-replace",
        action="append",
        default=[],
        metavar="LOGICAL_ID",
        help="prod: let this update replace or delete a resource the stack policy protects "
        "(the full policy is put back after the update)",
    )
    parser.add_argument(
        "--disable-rollback",
        action="store_true",
        help="keep what was built when the deploy fails (for debugging; destroy it after)",
    )


def add_diff_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dif = sub.add_parser(
        "diff",
        aliases=["plan"],
        help="show what a deploy would change (change set with before/after), change nothing",
    )
    dif.add_argument("--env", choices=ENVIRONMENTS, required=True)
    add_stack_options(dif, suffix_required=True)
    add_change_set_options(dif)
    dif.add_argument(
        "--exit-code",
        action="store_true",
        help="exit 1 when there are changes, 0 when none, 2 on any error (for CI)",
    )
    add_output_option(dif)


def add_drift_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dri = sub.add_parser(
        "drift",
        help="detect drift: resources changed outside CloudFormation (exit 1 when drifted)",
    )
    add_stack_options(dri, suffix_required=True)
    add_output_option(dri)


def add_logs_parser(sub: Any) -> None:
    """`loanstack logs`: the CLI's hook (one call in its parser setup)."""
    logs = sub.add_parser("logs", help="print (or --follow) a deployed function's log records")
    logs.add_argument("function", nargs="?", choices=tuple(LOGGED), default="validate")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new records")
    logs.add_argument(
        "--since",
        default="10m",
        help="from when: 30s, 10m, 2h, 1d, 1w ago, or an ISO 8601 time with its zone "
        "(2026-11-30T09:00Z) (default 10m)",
    )
    logs.add_argument(
        "--filter",
        metavar="PATTERN",
        help="a CloudWatch Logs filter pattern, e.g. ERROR or '{ $.level = \"ERROR\" }'",
    )
    logs.add_argument(
        "--format",
        choices=FORMATS,
        default="short",
        help="short: time and message; json: one JSON object per line (default short)",
    )
    add_stack_options(logs, suffix_required=False)
    add_output_option(logs)


def add_rotate_options(parser: argparse.ArgumentParser) -> None:
    """`rotate --secret`: which database secret (docs/operations.md, "Rotation")."""
    parser.add_argument(
        "--secret",
        choices=ROTATE_CHOICES,
        default="app",
        help="app: the validation function's own user (default); master: the cluster's master "
        "user; both: the master first, then the app",
    )


def add_verify_parser(subparsers: Any) -> None:
    """`loanstack verify EXPORT`: the CLI's hook (one call in its parser setup)."""
    parser = subparsers.add_parser(
        "verify",
        help="reconcile an export with the decisions table, line by line (exit 0: all reconciled)",
    )
    parser.add_argument("export", help="the export file migrated: .csv or .jsonl/.ndjson")
    parser.add_argument("--report", metavar="FILE", help="write every issue as JSON Lines")
    parser.add_argument(
        "--manifest",
        metavar="FILE",
        help="also check a migration manifest (from `loanstack migrate`) against the export "
        "and the database",
    )
    add_stack_options(parser, suffix_required=False)
    add_output_option(parser)


def add_correct_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "correct",
        help="supersede a recorded decision with a corrected application, keeping its history",
    )
    parser.add_argument("application", help="the corrected application, a JSON file")
    parser.add_argument("--by", required=True, help="who corrects (kept in the history)")
    parser.add_argument("--reason", required=True, help="why (kept in the history)")
    add_stack_options(parser, suffix_required=False)
    add_output_option(parser)


def add_restore_parser(subparsers: Any) -> None:
    """`loanstack restore`: the CLI's hook (one call in its parser setup)."""
    parser = subparsers.add_parser(
        "restore",
        help="restore the stack's cluster (point in time or snapshot) as a new cluster, "
        "reconcile it, measure RTO and RPO",
    )
    parser.add_argument("--suffix", required=True, help="EnvironmentSuffix of the stack")
    parser.add_argument(
        "--env", choices=ENVIRONMENTS, required=True, help="the stack's environment"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--to-time", metavar="ISO", help="a point in time, e.g. 2026-11-30T09:00:00Z"
    )
    source.add_argument("--latest", action="store_true", help="the latest restorable time")
    source.add_argument(
        "--snapshot", metavar="ID", help="a cluster snapshot (e.g. a destroy's final one)"
    )
    parser.add_argument("--new-cluster-id", metavar="ID", help="default: <cluster>-r<MMDDhhmmss>")
    parser.add_argument(
        "--db-subnet-group",
        help="when the stack's cluster is gone: the DB subnet group of the new cluster",
    )
    parser.add_argument(
        "--vpc-security-group-id",
        action="append",
        default=[],
        help="when the stack's cluster is gone: a security group of the new cluster (repeatable)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=RESTORE_TIMEOUT,
        help="seconds to wait for the new cluster and its writer (default: %(default)s)",
    )
    parser.add_argument(
        "--switch",
        action="store_true",
        help="switch the stack over: refused (the template names its cluster); see the runbook",
    )
    parser.add_argument("--region", help="default: the stack's recorded region, else AWS_REGION")
    parser.add_argument("--profile", help="AWS CLI profile (default: AWS_PROFILE)")
    parser.add_argument("--target", choices=("local", "aws"), help="default: local")
    add_output_option(parser)
