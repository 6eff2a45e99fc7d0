"""Deploy, inspect and tear down the stack: one code path for AWS and the embedded emulator.

Everything goes through boto3's CloudFormation, Lambda, Secrets Manager and S3 APIs; the only
difference between the targets is the endpoint (`Target`). Creates and updates go through a
change set, shown before it runs; events stream as they happen; the first failure stops the
command with the failing resource and its reason.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from loanstack import template
from loanstack.template import ROOT

OUTPUTS_FILE = ROOT / "cfn-outputs" / "flat-outputs.json"
DIRECT_UPLOAD_LIMIT = 51_200  # CloudFormation's TemplateBody limit, in bytes
EMULATOR_URL_VARIABLE = "LOANSTACK_EMULATOR_URL"
TERMINAL = ("_COMPLETE", "_FAILED")
FAILED_STATES = {
    "CREATE_FAILED",
    "ROLLBACK_COMPLETE",
    "ROLLBACK_FAILED",
    "DELETE_FAILED",
    "UPDATE_ROLLBACK_FAILED",
    "IMPORT_ROLLBACK_FAILED",
}


class DeployError(Exception):
    """A deployment problem reported to the user as one line."""


@dataclass
class Target:
    """Where the stack lives: AWS (the default credential chain) or the embedded emulator."""

    name: str
    region: str
    session: boto3.Session
    endpoint_url: str | None = None
    emulator: Any = None
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, endpoint_url=self.endpoint_url)
        return self._clients[service]

    @property
    def poll_seconds(self) -> float:
        return 0.2 if self.name == "local" else 5.0

    def close(self) -> None:
        if self.emulator is not None:
            self.emulator.stop()


def has_aws_credentials() -> bool:
    return boto3.Session().get_credentials() is not None


def connect(target: str | None, region: str) -> Target:
    """`local` unless AWS credentials are configured; local reuses a running emulator."""
    name = target or ("aws" if has_aws_credentials() else "local")
    if name == "aws":
        session = boto3.Session(region_name=region)
        if session.get_credentials() is None:
            raise DeployError("no AWS credentials configured (use --target local for the emulator)")
        return Target("aws", region, session)
    from loanstack.emulator import CREDENTIALS, Emulator, EmulatorError

    session = boto3.Session(region_name=region, **CREDENTIALS)
    url = os.environ.get(EMULATOR_URL_VARIABLE)
    if url:
        return Target("local", region, session, endpoint_url=url)
    try:
        emulator = Emulator().start()
    except EmulatorError as exc:
        raise DeployError(str(exc)) from exc
    return Target("local", region, session, endpoint_url=emulator.url, emulator=emulator)


def stack_name(suffix: str) -> str:
    return f"tapstack-{suffix}"


def parameters_for(env: str, suffix: str, overrides: dict[str, str]) -> dict[str, str]:
    """The parameters sent, validated first against the template's own constraints."""
    given = {**overrides, "EnvironmentType": env, "EnvironmentSuffix": suffix}
    try:
        template.parameter_values(template.load(), given)
    except template.ParameterError as exc:
        raise DeployError(str(exc)) from exc
    return given


def stack_status(target: Target, name: str) -> dict[str, Any] | None:
    try:
        stacks = target.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return dict(stacks[0]) if stacks else None


# --- deploy ------------------------------------------------------------------------------------


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
        instance = template.instantiate(self.template_doc, self.parameters)
        return len(instance.resources)

    def body(self) -> dict[str, str]:
        """TemplateBody when it fits CloudFormation's limit; else a URL in the staging bucket."""
        text = template.minified(self.template_doc)
        size = len(text.encode())
        if size <= DIRECT_UPLOAD_LIMIT:
            return {"TemplateBody": text}
        if self.target.name == "local":
            self.console.print(
                f"[yellow]note:[/] the minified template is {size:,} bytes, over AWS's "
                f"{DIRECT_UPLOAD_LIMIT:,}-byte TemplateBody limit (README, Known gaps); the "
                "emulator takes it, AWS needs --template-bucket"
            )
            return {"TemplateBody": text}
        if not self.template_bucket:
            raise DeployError(
                f"the minified template is {size:,} bytes, over CloudFormation's "
                f"{DIRECT_UPLOAD_LIMIT:,}-byte TemplateBody limit: pass --template-bucket BUCKET "
                "(an existing bucket of yours) to upload it first"
            )
        key = f"loanstack/{self.name}/TapStack-{int(time.time())}.json"
        self.target.client("s3").put_object(
            Bucket=self.template_bucket, Key=key, Body=text.encode()
        )
        region = self.target.region
        return {"TemplateURL": f"https://{self.template_bucket}.s3.{region}.amazonaws.com/{key}"}


def deploy(d: Deployment, confirm: Callable[[], bool]) -> dict[str, str]:
    """Create or update through a change set; returns the stack outputs (also written, R1b)."""
    cfn = d.target.client("cloudformation")
    current = stack_status(d.target, d.name)
    status = current["StackStatus"] if current else None
    if status in FAILED_STATES:
        raise DeployError(
            f"stack {d.name} is {status}: remove it with `loanstack destroy --suffix {d.suffix}` "
            "and deploy again"
        )
    if status and status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        raise DeployError(f"stack {d.name} is busy ({status}); wait for it to finish")
    kind = "UPDATE" if status and status != "REVIEW_IN_PROGRESS" else "CREATE"
    params: list[dict[str, Any]] = [
        {"ParameterKey": k, "ParameterValue": v} for k, v in d.parameters.items()
    ]
    if kind == "UPDATE":  # keep values given before unless changed now, as the console does
        previous = {p["ParameterKey"] for p in current.get("Parameters", [])} if current else set()
        params += [
            {"ParameterKey": k, "UsePreviousValue": True}
            for k in d.template_doc["Parameters"]
            if k not in d.parameters and k in previous
        ]
    change_set = cfn.create_change_set(
        StackName=d.name,
        ChangeSetName=f"loanstack-{int(time.time())}",
        ChangeSetType=kind,
        Parameters=params,
        Capabilities=["CAPABILITY_NAMED_IAM"],
        Tags=[{"Key": "Environment", "Value": d.env}],
        **d.body(),
    )
    changes = wait_for_change_set(d.target, change_set["Id"])
    if changes is None:
        d.console.print(f"{d.name}: no changes")
        return write_outputs(d.target, d.name)
    show_change_set(d.console, d.name, kind, changes)
    if not confirm():
        cfn.delete_change_set(ChangeSetName=change_set["Id"])
        raise DeployError("change set not executed (rerun with --yes to execute without asking)")
    before = event_ids(d.target, d.name)
    cfn.execute_change_set(ChangeSetName=change_set["Id"])
    final = follow(d.target, d.name, d.console, d.expected_resources(), before)
    if final not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        reason = first_failure(d.target, d.name, before)
        raise DeployError(f"{d.name} ended {final}: {reason}")
    outputs = write_outputs(d.target, d.name)
    d.console.print(f"{d.name}: {final}; outputs in {shown(OUTPUTS_FILE)}")
    return outputs


def wait_for_change_set(target: Target, change_set_id: str) -> list[dict[str, Any]] | None:
    cfn = target.client("cloudformation")
    while True:
        described = cfn.describe_change_set(ChangeSetName=change_set_id)
        status = described.get("Status", "CREATE_COMPLETE")
        if status == "CREATE_COMPLETE":
            changes = list(described.get("Changes", []))
            return changes or None
        if status == "FAILED":
            reason = described.get("StatusReason", "")
            if "didn't contain changes" in reason or "No updates" in reason:
                cfn.delete_change_set(ChangeSetName=change_set_id)
                return None
            raise DeployError(f"change set failed: {reason}")
        time.sleep(target.poll_seconds)


def show_change_set(console: Console, name: str, kind: str, changes: list[dict[str, Any]]) -> None:
    table = Table(title=f"{name}: change set ({kind.lower()}, {len(changes)} changes)")
    for column in ("action", "resource", "type", "replacement"):
        table.add_column(column)
    for change in changes:
        rc = change.get("ResourceChange", {})
        table.add_row(
            rc.get("Action", ""),
            rc.get("LogicalResourceId", ""),
            rc.get("ResourceType", ""),
            rc.get("Replacement", "") or "",
        )
    console.print(table)


def new_events(target: Target, name: str, seen: set[str]) -> list[dict[str, Any]]:
    """Stack events not in `seen` (which they join), oldest first."""
    fresh: list[dict[str, Any]] = []
    paginator = target.client("cloudformation").get_paginator("describe_stack_events")
    for page in paginator.paginate(StackName=name):
        for event in page["StackEvents"]:
            if event["EventId"] not in seen:
                seen.add(event["EventId"])
                fresh.append(event)
    return sorted(fresh, key=lambda e: e["Timestamp"])


def event_ids(target: Target, name: str) -> set[str]:
    seen: set[str] = set()
    new_events(target, name, seen)
    return seen


def follow(target: Target, name: str, console: Console, expected: int, before: set[str]) -> str:
    """Stream events (one line each) under a progress bar until the stack settles."""
    seen = set(before)
    stack_id = (stack_status(target, name) or {}).get("StackId", name)
    done: set[str] = set()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(name, total=expected)
        while True:
            for event in new_events(target, stack_id, seen):
                progress.console.print(event_line(event))
                status = event["ResourceStatus"]
                if event["ResourceType"] != "AWS::CloudFormation::Stack" and status in (
                    "CREATE_COMPLETE",
                    "UPDATE_COMPLETE",
                    "DELETE_COMPLETE",
                ):
                    done.add(event["LogicalResourceId"])
                    progress.update(task, completed=min(len(done), expected))
            current = (stack_status(target, stack_id) or {}).get("StackStatus", "DELETE_COMPLETE")
            if current.endswith(TERMINAL) and not current.endswith("_IN_PROGRESS"):
                if current in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE"):
                    progress.update(task, completed=expected)
                return str(current)
            time.sleep(target.poll_seconds)


def event_line(event: dict[str, Any]) -> str:
    status = event["ResourceStatus"]
    colour = (
        "red"
        if "FAILED" in status or "ROLLBACK" in status
        else ("green" if status.endswith("COMPLETE") else "cyan")
    )
    reason = event.get("ResourceStatusReason") or ""
    return (
        f"{event['Timestamp']:%H:%M:%S} [{colour}]{status:<20}[/] "
        f"{event['LogicalResourceId']} ({event['ResourceType']}) {reason}"
    ).rstrip()


def first_failure(target: Target, name: str, before: set[str]) -> str:
    """The first resource that failed, and why: what a user needs to fix."""
    stack_id = (stack_status(target, name) or {}).get("StackId", name)
    events = new_events(target, stack_id, set(before))
    for event in events:
        if (
            event["ResourceStatus"].endswith("_FAILED")
            and event["ResourceType"] != "AWS::CloudFormation::Stack"
        ):
            return (
                f"{event['LogicalResourceId']} ({event['ResourceType']}) failed: "
                f"{event.get('ResourceStatusReason', 'no reason given')}"
            )
    last = next((e for e in reversed(events) if e.get("ResourceStatusReason")), None)
    return last["ResourceStatusReason"] if last else "no failure reported"


def stack_outputs(target: Target, name: str) -> dict[str, str]:
    stack = stack_status(target, name)
    if stack is None:
        raise DeployError(f"no stack {name}")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def write_outputs(target: Target, name: str) -> dict[str, str]:
    outputs = stack_outputs(target, name)
    OUTPUTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    OUTPUTS_FILE.write_text(json.dumps(outputs, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return outputs


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def read_outputs() -> dict[str, str]:
    path = OUTPUTS_FILE
    if not path.exists():
        raise DeployError(f"{shown(path)} not found: run `loanstack deploy` first")
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except ValueError as exc:
        raise DeployError(f"{shown(path)} is not JSON: {exc}") from exc


def outputs_table(console: Console, outputs: dict[str, str]) -> None:
    table = Table(title=f"Stack outputs ({shown(OUTPUTS_FILE)})")
    table.add_column("output")
    table.add_column("value", overflow="fold")
    for key, value in outputs.items():
        table.add_row(key, value)
    console.print(table)


def output(outputs: dict[str, str], key: str) -> str:
    if key not in outputs:
        raise DeployError(f"output {key} missing from {shown(OUTPUTS_FILE)}")
    return outputs[key]


# --- destroy -----------------------------------------------------------------------------------


def destroy(target: Target, suffix: str, console: Console) -> None:
    """Empty the stack's buckets (every version and delete marker), delete, wait, report."""
    name = stack_name(suffix)
    stack = stack_status(target, name)
    if stack is None:
        raise DeployError(f"no stack {name} to destroy")
    resources = list(stack_resources(target, name))
    buckets = [r["PhysicalResourceId"] for r in resources if r["ResourceType"] == "AWS::S3::Bucket"]
    for bucket in buckets:
        removed = empty_bucket(target, bucket)
        console.print(f"emptied {bucket}: {removed} object versions and delete markers removed")
    before = event_ids(target, stack["StackId"])
    target.client("cloudformation").delete_stack(StackName=stack["StackId"])
    final = follow(target, stack["StackId"], console, len(resources), before)
    left = [b for b in buckets if bucket_exists(target, b)]
    if final != "DELETE_COMPLETE" or left:
        reason = first_failure(target, stack["StackId"], before)
        raise DeployError(f"{name} ended {final}; left behind: {', '.join(left) or reason}")
    if OUTPUTS_FILE.exists() and read_outputs().get("VPCId") == vpc_of(stack):
        OUTPUTS_FILE.unlink()  # the outputs of the stack just deleted, not of another one
    console.print(f"{name}: deleted, nothing left behind")


def vpc_of(stack: dict[str, Any]) -> str | None:
    return next(
        (o["OutputValue"] for o in stack.get("Outputs", []) if o["OutputKey"] == "VPCId"), None
    )


def stack_resources(target: Target, name: str) -> Iterator[dict[str, Any]]:
    paginator = target.client("cloudformation").get_paginator("list_stack_resources")
    for page in paginator.paginate(StackName=name):
        yield from page["StackResourceSummaries"]


def empty_bucket(target: Target, bucket: str) -> int:
    s3 = target.client("s3")
    removed = 0
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            doomed = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            for start in range(0, len(doomed), 1000):
                s3.delete_objects(
                    Bucket=bucket, Delete={"Objects": doomed[start : start + 1000], "Quiet": True}
                )
            removed += len(doomed)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchBucket":
            raise
    return removed


def bucket_exists(target: Target, bucket: str) -> bool:
    try:
        target.client("s3").head_bucket(Bucket=bucket)
    except ClientError:
        return False
    return True


# --- try it ------------------------------------------------------------------------------------


def invoke_validation(target: Target, payload: Any) -> Any:
    """Lambda Invoke of the deployed validation function (the emulator runs it in process)."""
    function = output(read_outputs(), "LoanValidationFunctionName")
    reply = target.client("lambda").invoke(
        FunctionName=function, Payload=json.dumps(payload).encode()
    )
    body = json.loads(reply["Payload"].read() or b"null")
    if reply.get("FunctionError"):
        message = body.get("errorMessage") if isinstance(body, dict) else body
        raise DeployError(f"{function} failed: {message}")
    return body


def rotate(target: Target, console: Console, timeout: float = 600) -> dict[str, Any]:
    """Recover an interrupted rotation first (Secrets Manager refuses a new one while it is
    left over), then rotate the database secret now and wait until the new version is
    AWSCURRENT; then prove the database takes it (a Data API call authenticates with it)."""
    outputs = read_outputs()
    secret = output(outputs, "DBSecretArn")
    sm = target.client("secretsmanager")
    recover_rotation(target, console, outputs, timeout)
    try:
        token = sm.rotate_secret(SecretId=secret)["VersionId"]
    except ClientError as exc:
        raise DeployError(f"rotation refused: {exc.response['Error']['Message']}") from exc
    deadline = time.monotonic() + timeout
    while True:
        stages = sm.describe_secret(SecretId=secret).get("VersionIdsToStages", {})
        if "AWSCURRENT" in stages.get(token, []):
            break
        if time.monotonic() > deadline:
            raise DeployError(
                f"rotation {token} not finished after {timeout:.0f} s: read the rotation function's "
                "log group, then run `loanstack rotate` again to finish or clear it"
            )
        time.sleep(target.poll_seconds)
    previous = next((v for v, s in stages.items() if "AWSPREVIOUS" in s), None)
    if not database_takes_awscurrent(target, outputs):
        raise DeployError(
            "rotated, but the Data API is refused with AWSCURRENT: run `loanstack rotate`"
        )
    console.print(
        f"rotated: AWSCURRENT is version {token}, AWSPREVIOUS {previous}; the Data API opens the database with it"
    )
    return {"current": token, "previous": previous}


# The rotation function's custom staging label: setSecret applied this version to the cluster.
APPLIED = "APPLIED"


def recover_rotation(
    target: Target, console: Console, outputs: dict[str, str], timeout: float
) -> None:
    """An AWSPENDING on a version other than AWSCURRENT is an interrupted rotation: finish it
    with its own token when setSecret had applied it, else put the database back on AWSCURRENT's
    password and clear it (SPEC D2)."""
    secret = output(outputs, "DBSecretArn")
    sm = target.client("secretsmanager")
    stages = sm.describe_secret(SecretId=secret).get("VersionIdsToStages", {})
    left = [v for v, s in stages.items() if "AWSPENDING" in s and "AWSCURRENT" not in s]
    if not left:
        console.print("no interrupted rotation found")
        return
    token = left[0]
    if APPLIED in stages[token]:
        console.print(
            f"found an interrupted rotation: version {token} is AWSPENDING and setSecret had applied it"
        )
        function = output(outputs, "SecretRotationLambdaArn")
        for step in ("setSecret", "testSecret", "finishSecret"):
            invoke_rotation_step(target, function, secret, token, step)
        console.print(f"finished it with the same token: version {token} is AWSCURRENT")
        return
    console.print(
        f"found an interrupted rotation: version {token} is AWSPENDING, setSecret had not applied it"
    )
    restore_awscurrent_password(target, console, outputs, timeout)
    sm.update_secret_version_stage(
        SecretId=secret, VersionStage="AWSPENDING", RemoveFromVersionId=token
    )
    console.print(f"cleared it: AWSPENDING removed from version {token}")


def invoke_rotation_step(target: Target, function: str, secret: str, token: str, step: str) -> None:
    event = {"Step": step, "SecretId": secret, "ClientRequestToken": token}
    reply = target.client("lambda").invoke(
        FunctionName=function, Payload=json.dumps(event).encode()
    )
    if reply.get("FunctionError"):
        body = json.loads(reply["Payload"].read() or b"null")
        message = body.get("errorMessage") if isinstance(body, dict) else body
        raise DeployError(f"rotation function failed in {step}: {message}")


def database_takes_awscurrent(target: Target, outputs: dict[str, str]) -> bool:
    """A Data API call authenticates with the secret's AWSCURRENT: MySQL's 1045 means it no
    longer matches the database's password."""
    try:
        target.client("rds-data").execute_statement(
            resourceArn=output(outputs, "DBClusterArn"),
            secretArn=output(outputs, "DBSecretArn"),
            database="loans",
            sql="SELECT 1",
        )
    except ClientError as exc:
        if "Access denied for user" in str(exc.response["Error"].get("Message", "")):
            return False
        raise DeployError(f"the Data API failed: {exc.response['Error']['Message']}") from exc
    return True


def restore_awscurrent_password(
    target: Target, console: Console, outputs: dict[str, str], timeout: float
) -> None:
    """Give the cluster AWSCURRENT's password again unless it already takes it."""
    if database_takes_awscurrent(target, outputs):
        console.print("the database already takes AWSCURRENT's password")
        return
    current = json.loads(
        target.client("secretsmanager").get_secret_value(
            SecretId=output(outputs, "DBSecretArn"), VersionStage="AWSCURRENT"
        )["SecretString"]
    )
    rds, cluster = target.client("rds"), str(current["dbClusterIdentifier"])
    deadline = time.monotonic() + timeout
    while True:  # RDS refuses a modification while another one applies
        described = rds.describe_db_clusters(DBClusterIdentifier=cluster)["DBClusters"][0]
        if described.get("Status") == "available" and not described.get(
            "PendingModifiedValues", {}
        ).get("MasterUserPassword"):
            break
        if time.monotonic() > deadline:
            raise DeployError(
                f"cluster {cluster} still {described.get('Status')!r} after {timeout:.0f} s"
            )
        time.sleep(target.poll_seconds)
    rds.modify_db_cluster(
        DBClusterIdentifier=cluster, MasterUserPassword=current["password"], ApplyImmediately=True
    )
    while not database_takes_awscurrent(target, outputs):
        if time.monotonic() > deadline:
            raise DeployError(
                f"cluster {cluster} does not take AWSCURRENT's password after {timeout:.0f} s"
            )
        time.sleep(target.poll_seconds)
    console.print(f"put cluster {cluster} back on AWSCURRENT's password")
