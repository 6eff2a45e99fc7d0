"""`make demo`: the whole life of a dev stack on the embedded emulator, in one process.

Deploy, validate the sample applications under `examples/`, rotate the database password and
show the database now takes the new one, migrate a small generated export (`loanstack migrate`),
print the outputs, destroy. Exit 0 only when every step
did what it should.
"""

from __future__ import annotations

import json
import time
from typing import Any

from botocore.exceptions import ClientError
from rich.console import Console
from rich.text import Text

from loanstack import render as layout
from loanstack.aws.outputs import StackRecord, outputs_table, read_stack, record_file
from loanstack.aws.target import Target, connect, local_door
from loanstack.ops.invoke import invoke_validation
from loanstack.ops.rotate import rotate as rotate_now
from loanstack.stack.deploy import Deployment, deploy, parameters_for
from loanstack.stack.destroy import destroy
from loanstack.template import ROOT

EXAMPLES = ROOT / "examples"
EXPECTED = {
    "approved.json": "APPROVED",
    "manual_review.json": "MANUAL_REVIEW",
    "rejected.json": "REJECTED",
    "malformed.json": "INVALID",
}


def run(console: Console, suffix: str = "demo", region: str = "us-east-1") -> int:
    started = time.monotonic()
    console.rule("loanstack demo: the dev stack on the embedded AWS emulator")
    target = connect("local", region)
    try:
        console.print(
            Text(f"emulator: {target.endpoint_url}"),
            "(moto, in this process; MariaDB behind the Data API)",
        )
        d = Deployment(target, "dev", suffix, parameters_for("dev", suffix, {}), console)
        deploy(d, confirm=lambda: True)
        stack = read_stack(record_file(d.name, target.outputs_file))  # what deploy wrote (D9)
        problems = validate_examples(target, console, stack)
        problems += rotate(target, console, stack)
        problems += demo_migration(target, console, stack)
        outputs_table(console, stack.outputs, target.outputs_file)
        destroy(target, suffix, console)
    finally:
        target.close()
    verdict = (
        "[green]all steps passed[/]"
        if not problems
        else f"[red]{layout.plural(len(problems), 'problem')}[/]"
    )
    console.rule(f"{verdict} in {time.monotonic() - started:.1f} s")
    for problem in problems:
        console.print(f"[red]- {problem}[/]")
    return 1 if problems else 0


def validate_examples(target: Target, console: Console, stack: StackRecord) -> list[str]:
    rows = []
    problems = []
    s3 = target.client("s3")
    for name, expected in EXPECTED.items():
        result = invoke_validation(target, json.loads((EXAMPLES / name).read_text()))
        decision = result.get("decision")
        why = ", ".join(result.get("reasons", [])) or ", ".join(
            f"{e['field']}: {e['message']}" for e in result.get("errors", [])
        )
        key = f"validations/{result.get('loanId')}.json"
        stored = key_exists(s3, stack.bucket, key)
        rows.append(
            (name, str(result.get("loanId", "")), str(decision), key if stored else "-", why or "-")
        )
        if decision != expected:
            problems.append(f"{name}: expected {expected}, got {decision}")
        if (expected != "INVALID") != stored:
            problems.append(
                f"{name}: result document {'missing' if not stored else 'written for invalid input'}"
            )
    layout.records(
        console,
        "Sample applications through LoanValidationFunction",
        ("file", "loan", "decision", "document in S3", "why"),
        rows,
        prose="why",
    )
    return problems


def key_exists(s3: Any, bucket: str, key: str) -> bool:
    """False when S3 answers 404 for the key; any other refusal is an error, not an absence.
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html"""
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def rotate(target: Target, console: Console, stack: StackRecord) -> list[str]:
    sm = target.client("secretsmanager")
    before = json.loads(
        sm.get_secret_value(SecretId=stack.master_secret_arn, VersionStage="AWSCURRENT")[
            "SecretString"
        ]
    )
    rotate_now(target, console)
    after = json.loads(
        sm.get_secret_value(SecretId=stack.master_secret_arn, VersionStage="AWSCURRENT")[
            "SecretString"
        ]
    )
    in_database = cluster_password(target, stack)
    checks = {
        "AWSCURRENT changed": before["password"] != after["password"],
        "database password == AWSCURRENT": in_database == after["password"],
        "database password != old password": in_database != before["password"],
        "TLS login to the writer with AWSCURRENT (testSecret's test)": logs_in(after),
        "TLS login with the old password refused": not logs_in(before),
    }
    layout.records(
        console,
        "Password rotation",
        ("check", "result"),
        [(check, "yes" if ok else "no") for check, ok in checks.items()],
    )
    return [f"rotation: {check} is false" for check, ok in checks.items() if not ok]


def logs_in(secret: dict[str, Any]) -> bool:
    """testSecret's TLS login to the writer (the emulator's MariaDB) with this secret."""
    return bool(local_door().logs_in(secret))


def cluster_password(target: Target, stack: StackRecord) -> str:
    """Read from the emulator's RDS backend (this process): AWS never shows a password."""
    return str(local_door().cluster_password(stack.cluster_arn, target.region))


def demo_migration(target: Target, console: Console, stack: StackRecord) -> list[str]:
    """`loanstack migrate` on a generated 5,000-row export with bad rows spread through it."""
    import tempfile
    from pathlib import Path

    from loanstack.ops import migrate
    from loanstack.testing import loanbook

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "loanbook.csv"
        expected = loanbook.write_export(path, 5000, every=1000, prefix="DEMO")
        console.rule("Migration: loanbook.csv (5,000 rows) through `loanstack migrate`")
        batch = migrate.stack_of(target, stack)
        report = migrate.migrate(path, batch, console, migrate.Options(chunk_rows=1000))
    migrate.print_summary(console, report)
    problems = []
    if report["summary"] != dict(expected.summary):
        problems.append(f"migration: summary {report['summary']} != {dict(expected.summary)}")
    if {p["line"]: p["decision"] for p in migrate.problems(batch, report)} != expected.problems:
        problems.append("migration: the problem lines differ from the export's bad lines")
    return problems
