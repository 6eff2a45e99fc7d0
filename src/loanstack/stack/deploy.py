"""Deploy, inspect and tear down the stack: one code path for AWS and the embedded emulator.

Everything goes through boto3's CloudFormation, Lambda, Secrets Manager and S3 APIs; the only
difference between the targets is the endpoint (`Target`). Creates and updates go through a
change set, shown before it runs; events stream as they happen; the first failure stops the
command with the failing resource and its reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from loanstack import output as layout
from loanstack import template
from loanstack.template import ROOT


def default_outputs_file() -> Path:
    """Where `deploy` writes the stack's outputs (R1b) unless a target says otherwise."""
    return Path(
        os.environ.get("LOANSTACK_OUTPUTS_FILE") or ROOT / "cfn-outputs" / "flat-outputs.json"
    )


STAGED_TEMPLATE_DAYS = 30  # the staging bucket's lifecycle expires templates after this
# Lambda keeps this much of an account's concurrency unreserved (or the whole limit, when the
# limit is below it, as on young accounts): "Configuring reserved concurrency".
# https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html
MIN_UNRESERVED_CONCURRENCY = 100
CONCURRENCY_QUOTA_CODE = "L-B99A9384"  # Service Quotas: Lambda "Concurrent executions"
EMULATOR_URL_VARIABLE = "LOANSTACK_EMULATOR_URL"
SHOWN_VALUE_LIMIT = 120  # longer property values are summarised by length in the change set
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
    """A deployment problem reported to the user as one line (exit 1)."""


class UsageError(DeployError):
    """Bad input (a parameter, a file, an unconfirmed action): one line, exit 2."""


class Interrupted(DeployError):
    """Ctrl-C: one line saying what carries on without us (exit 130)."""


@dataclass
class Target:
    """Where the stack lives: AWS (the default credential chain) or the embedded emulator."""

    name: str
    region: str
    session: boto3.Session
    endpoint_url: str | None = None
    emulator: Any = None
    outputs_file: Path = field(default_factory=default_outputs_file)  # R1b's flat-outputs.json
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

    def account(self) -> str:
        """The account the calls land in (STS GetCallerIdentity; the emulator's on local)."""
        if "account" not in self._clients:
            sts = self.session.client(
                "sts",
                endpoint_url=self.endpoint_url,
                config=Config(connect_timeout=3, retries={"max_attempts": 1}),
            )
            try:
                self._clients["account"] = sts.get_caller_identity()["Account"]
            except EndpointConnectionError as exc:
                raise DeployError(unreachable(self)) from exc
            except (ClientError, BotoCoreError) as exc:
                raise DeployError(
                    f"cannot tell which AWS account these credentials reach: {exc}"
                ) from exc
        return str(self._clients["account"])

    def where(self) -> str:
        kind = "AWS" if self.name == "aws" else f"local emulator {self.endpoint_url}"
        return f"{kind}, account {self.account()}, region {self.region}"

    def describe(self, stack: str) -> str:
        """The one line printed before every change set: where it is about to land."""
        return f"target: {self.where()}, stack {stack}"


def unreachable(target: Target) -> str:
    if target.name == "local":
        return (
            f"no emulator answers at {target.endpoint_url} ({EMULATOR_URL_VARIABLE}): start one "
            f"with `loanstack emulator start`, or unset {EMULATOR_URL_VARIABLE} to use one that "
            "lives as long as the command"
        )
    return f"cannot reach AWS in {target.region}: check the network, proxy and --region"


def has_aws_credentials() -> bool:
    return boto3.Session().get_credentials() is not None


def choose_target(explicit: str | None, confirm_aws: Callable[[str], bool]) -> str:
    """The target rule: AWS only when asked for (`--target aws`) or confirmed at a terminal; an
    emulator URL, or no credentials, means local. Credentials alone never choose a real account
    (they are often dummies for the aws CLI against the emulator)."""
    if explicit:
        return explicit
    if os.environ.get(EMULATOR_URL_VARIABLE) or not has_aws_credentials():
        return "local"
    session = boto3.Session()
    question = (
        f"AWS credentials are configured ({session.region_name or 'no region'}): use the real "
        "AWS account?"
    )
    if confirm_aws(question):
        return "aws"
    raise UsageError(
        "AWS credentials are configured but no target was chosen: pass --target aws to use "
        "that account, or --target local for the emulator"
    )


def connect(
    target: str | None, region: str, confirm_aws: Callable[[str], bool] = lambda _: False
) -> Target:
    """Connect to the chosen target (see `choose_target`); local reuses a running emulator."""
    name = choose_target(target, confirm_aws)
    if name == "aws":
        session = boto3.Session(region_name=region)
        if session.get_credentials() is None:
            raise DeployError("no AWS credentials configured (use --target local for the emulator)")
        return Target("aws", region, session)
    from loanstack.emulator import CREDENTIALS, Emulator, EmulatorError

    session = boto3.Session(region_name=region, **CREDENTIALS)
    url = os.environ.get(EMULATOR_URL_VARIABLE)
    if url:
        running = Target("local", region, session, endpoint_url=url)
        running.account()  # an emulator that has gone is reported now, in one line
        return running
    try:
        emulator = Emulator().start()
    except EmulatorError as exc:
        raise DeployError(str(exc)) from exc
    return Target("local", region, session, endpoint_url=emulator.url, emulator=emulator)


def not_here(target: Target) -> str:
    """What to do when the stack's resources are not where we looked."""
    if target.name == "local":
        return (
            f"the stack is not on the emulator at {target.endpoint_url}: a stack lives only as "
            "long as the emulator that holds it; keep one running with `loanstack emulator "
            f"start`, export {EMULATOR_URL_VARIABLE}, and deploy again"
        )
    return (
        f"not found in account {target.account()}, region {target.region}: check --region, "
        "or deploy first"
    )


@contextmanager
def aws_errors(target: Target) -> Iterator[None]:
    """AWS (or emulator) refusals as one line that says what to do."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "Error"), error.get("Message", str(exc))
        if code in ("ResourceNotFoundException", "NoSuchBucket") or "does not exist" in message:
            raise DeployError(f"{message} ({exc.operation_name}): {not_here(target)}") from exc
        raise DeployError(f"{exc.operation_name} refused: {code}: {message}") from exc
    except EndpointConnectionError as exc:
        raise DeployError(unreachable(target)) from exc
    except BotoCoreError as exc:
        raise DeployError(f"AWS call failed: {exc}") from exc


def stack_name(suffix: str) -> str:
    return f"tapstack-{suffix}"


def parameters_for(env: str, suffix: str, overrides: dict[str, str]) -> dict[str, str]:
    """The parameters sent, validated first against the template's own constraints."""
    given = {**overrides, "EnvironmentType": env, "EnvironmentSuffix": suffix}
    try:
        values = template.parameter_values(template.load(), given)
    except template.ParameterError as exc:
        raise UsageError(str(exc)) from exc
    problem = capacity_problem(values)
    if problem:
        raise UsageError(problem)
    return given


def capacity_problem(values: dict[str, str]) -> str | None:
    """What RDS would refuse about the Serverless v2 range, late (after the VPC and NAT are
    built): ACUs come in steps of 0.5 and the floor may not exceed the ceiling. CloudFormation
    Rules cannot compare numbers, so the tool does. (ServerlessV2ScalingConfiguration, RDS API)"""
    floor = float(values.get("DBServerlessMinCapacityProd", "0.5"))
    ceiling = float(values.get("DBServerlessMaxCapacity", "1"))
    for name, acu in (("DBServerlessMinCapacityProd", floor), ("DBServerlessMaxCapacity", ceiling)):
        if (acu * 2) != int(acu * 2):
            return f"{name}={acu:g}: Aurora capacity comes in steps of 0.5 ACU"
    if values.get("EnvironmentType") == "prod" and floor > ceiling:
        return (
            f"DBServerlessMinCapacityProd={floor:g} is above DBServerlessMaxCapacity={ceiling:g}: "
            "raise the maximum or lower the floor"
        )
    return None


# DescribeStacks: "If the stack doesn't exist, a ValidationError is returned", the generic code
# of every bad request, so only its message ("Stack with id NAME does not exist") tells them apart.
# https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeStacks.html
MISSING_STACK = re.compile(r"Stack with id \S+ does not exist")


def is_missing_stack(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return error.get("Code") == "ValidationError" and bool(
        MISSING_STACK.fullmatch(str(error.get("Message", "")))
    )


def stack_status(target: Target, name: str) -> dict[str, Any] | None:
    try:
        stacks = target.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if is_missing_stack(exc):
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


def identity(target: Target) -> tuple[str, str]:
    """(account, partition) of the caller: the partition from its ARN (aws, aws-cn, aws-us-gov)."""
    me = target.client("sts").get_caller_identity()
    return str(me["Account"]), str(me["Arn"]).split(":")[1]


def staging_bucket_name(account: str, region: str) -> str:
    return f"loanstack-templates-{account}-{region}"


def stage_template(target: Target, text: str, stack: str, bucket: str | None = None) -> str:
    """Upload the template (creating the managed bucket on first use); its TemplateURL."""
    account, partition = identity(target)
    if bucket is None:
        bucket = staging_bucket_name(account, target.region)
        ensure_staging_bucket(target, bucket, account, partition)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    key = f"{stack}/TapStack-{digest}.json"
    try:
        target.client("s3").put_object(
            Bucket=bucket, Key=key, Body=text.encode(), ExpectedBucketOwner=account
        )
    except ClientError as exc:
        raise DeployError(
            f"cannot stage the template in s3://{bucket}: {exc.response['Error']['Message']} "
            "(pass --template-bucket with a bucket of this account you may write to)"
        ) from exc
    suffix = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return f"https://{bucket}.s3.{target.region}.{suffix}/{key}"


def ensure_staging_bucket(target: Target, bucket: str, account: str, partition: str) -> None:
    """The tool's own bucket: private, TLS only, encrypted, versioned, templates expire. The
    settings are applied on every run (each call is idempotent), so a first run cut short or a
    setting changed by hand is put right the next time."""
    s3 = target.client("s3")
    try:
        s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=account)
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        if code in ("403", "AccessDenied", "Forbidden", "301", "400", "PermanentRedirect"):
            raise DeployError(
                f"bucket {bucket} exists but is not this account's in {target.region}: pass "
                "--template-bucket with a bucket of yours"
            ) from exc
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise
        create_bucket(s3, bucket, target.region)
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "expire-staged-templates",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "Expiration": {"Days": STAGED_TEMPLATE_DAYS},
                    "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                }
            ]
        },
    )
    arn = f"arn:{partition}:s3:::{bucket}"
    s3.put_bucket_policy(
        Bucket=bucket,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "DenyInsecureTransport",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [arn, f"{arn}/*"],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ],
            }
        ),
    )


def create_bucket(s3: Any, bucket: str, region: str) -> None:
    created: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        created["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**created)
    except ClientError as exc:  # another deploy of this account created it a moment ago
        if exc.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise


# --- reserved concurrency preflight --------------------------------------------------------------


def concurrency_shortfall(
    limit: int, unreserved: int, requested: int, held: int, region: str
) -> str | None:
    """Why reserving `requested` (the function holds `held` today) does not fit, or None."""
    floor = min(MIN_UNRESERVED_CONCURRENCY, limit)
    left = unreserved + held - requested
    if requested == 0 or left >= floor:
        return None
    fits = unreserved + held - floor
    advice = (
        f"--param ValidationReservedConcurrency={fits} (or 0 for no reservation)"
        if fits > 0
        else "--param ValidationReservedConcurrency=0 (no reservation)"
    )
    return (
        f"reserving {requested} concurrent executions for the validation function would leave "
        f"{left} of the account's {limit} unreserved in {region}; Lambda keeps at least {floor}. "
        f"Deploy with {advice}, or raise the quota (Service Quotas, Lambda {CONCURRENCY_QUOTA_CODE})"
    )


def requested_reservation(d: Deployment, current: dict[str, Any] | None) -> int:
    """The ValidationReservedConcurrency this deployment asks for (given, kept, or default)."""
    if "ValidationReservedConcurrency" in d.parameters:
        return int(float(d.parameters["ValidationReservedConcurrency"]))
    for p in (current or {}).get("Parameters", []):
        if p["ParameterKey"] == "ValidationReservedConcurrency":
            return int(float(p["ParameterValue"]))
    return int(d.template_doc["Parameters"]["ValidationReservedConcurrency"]["Default"])


def check_concurrency(d: Deployment, current: dict[str, Any] | None) -> None:
    """Refuse, before any change set, a reservation the account cannot give (CREATE would fail
    with "...decreases account's UnreservedConcurrentExecution below its minimum value")."""
    requested = requested_reservation(d, current)
    if requested == 0:
        return
    lam = d.target.client("lambda")
    limits = lam.get_account_settings()["AccountLimit"]
    held = 0
    try:
        reply = lam.get_function_concurrency(FunctionName=f"lambda-loanvalidator-{d.suffix}")
        held = int(reply.get("ReservedConcurrentExecutions", 0))
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
    problem = concurrency_shortfall(
        int(limits["ConcurrentExecutions"]),
        int(limits["UnreservedConcurrentExecutions"]),
        requested,
        held,
        d.target.region,
    )
    if problem:
        raise DeployError(problem)


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
            Capabilities=["CAPABILITY_NAMED_IAM"],
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
        raise DeployError(f"{d.name} ended {final}: {reason}")
    outputs = write_outputs(d.target, d.name)
    d.console.print(f"{d.name}: {final}; outputs in {shown(d.target.outputs_file)}")
    return outputs


def refuse_stale_previous_values(d: Deployment, current: dict[str, Any] | None) -> None:
    """A value kept from the last deploy that this template no longer allows (the old default
    db.t4g.medium, an engine before 3.08) would fail CreateChangeSet: say which and what to pass."""
    declared = d.template_doc.get("Parameters", {})
    for p in (current or {}).get("Parameters", []):
        key, value = p["ParameterKey"], str(p.get("ParameterValue", ""))
        if key in d.parameters or key not in declared:
            continue
        problem = template.constraint_violation(declared[key], value)
        if problem:
            default = declared[key].get("Default")
            fix = f"--param {key}={default}" if default is not None else f"--param {key}=<value>"
            raise UsageError(
                f"the stack's {key}={value!r} is no longer allowed ({problem}): deploy with {fix}"
            )


def wait_for_change_set(target: Target, change_set_id: str) -> list[dict[str, Any]] | None:
    cfn = target.client("cloudformation")
    while True:
        described = cfn.describe_change_set(ChangeSetName=change_set_id, IncludePropertyValues=True)
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
    """One row per resource; for a modification, the properties that change and whether each
    forces a replacement (DescribeChangeSet's `Details[].Target.RequiresRecreation`)."""
    rows = []
    for change in changes:
        rc = change.get("ResourceChange", {})
        rows.append(
            (
                rc.get("Action", ""),
                rc.get("LogicalResourceId", ""),
                rc.get("ResourceType", ""),
                rc.get("Replacement", "") or "",
                property_changes(rc),
            )
        )
    layout.records(
        console,
        f"{name}: change set ({kind.lower()}, {len(changes)} changes)",
        ("action", "resource", "type", "replacement", "properties"),
        rows,
        prose="properties",
    )


def property_changes(resource_change: dict[str, Any]) -> str:
    """`Name (replaces)` for each changed property; the before and after values when given."""
    shown = []
    for detail in resource_change.get("Details", []):
        t = detail.get("Target", {})
        if t.get("Attribute") != "Properties" or not t.get("Name"):
            continue
        recreation = {"Always": " (replaces)", "Conditionally": " (may replace)"}
        text = t["Name"] + recreation.get(t.get("RequiresRecreation", ""), "")
        before, after = t.get("BeforeValue", "-"), t.get("AfterValue", "-")
        if "BeforeValue" in t or "AfterValue" in t:  # code and policies: too long to read here
            fits = max(len(before), len(after)) <= SHOWN_VALUE_LIMIT
            text += (
                f": {before} -> {after}"
                if fits
                else f": {len(before):,} -> {len(after):,} characters"
            )
        if text not in shown:
            shown.append(text)
    return "; ".join(shown)


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
    """Stream events (one line each) under a progress bar until the stack settles; Ctrl-C
    stops following (one line saying what carries on), not the stack."""
    try:
        return stream_events(target, name, console, expected, before)
    except KeyboardInterrupt:
        raise Interrupted(still_running(target, name)) from None


def stream_events(
    target: Target, name: str, console: Console, expected: int, before: set[str]
) -> str:
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
        task = progress.add_task(short_name(name), total=expected)
        while True:
            for event in new_events(target, stack_id, seen):
                progress.console.print(event_line(event), soft_wrap=True)
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


def short_name(name_or_id: str) -> str:
    """`tapstack-dev42` from a stack ARN (`arn:…:stack/tapstack-dev42/<uuid>`) or a name."""
    return name_or_id.split("/")[1] if name_or_id.startswith("arn:") else name_or_id


def still_running(target: Target, name: str) -> str:
    """Ctrl-C stops following, not CloudFormation: say what carries on and how to follow it."""
    if target.emulator is not None:
        return (
            f"stopped following {name}; the emulator held by this command stops with it, and "
            "the stack with it"
        )
    endpoint = f" --endpoint-url {target.endpoint_url}" if target.endpoint_url else ""
    return (
        f"stopped following {name}; CloudFormation carries on with it. Follow it with: aws "
        f"cloudformation describe-stack-events --stack-name {name} --region {target.region}"
        f"{endpoint}"
    )


def event_line(event: dict[str, Any]) -> Text:
    status = event["ResourceStatus"]
    colour = (
        "red"
        if "FAILED" in status or "ROLLBACK" in status
        else ("green" if status.endswith("COMPLETE") else "cyan")
    )
    reason = event.get("ResourceStatusReason") or ""
    line = Text.assemble(
        f"{event['Timestamp']:%H:%M:%S} ",
        (f"{status:<20}", colour),
        f" {event['LogicalResourceId']} ({event['ResourceType']}) {reason}",
    )
    line.rstrip()
    return line


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
    path = target.outputs_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(outputs, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return outputs


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


def outputs_table(console: Console, outputs: dict[str, str], path: Path | None = None) -> None:
    title = f"Stack outputs ({shown(path or default_outputs_file())})"
    layout.records(console, title, ("output", "value"), outputs.items())


def output(outputs: dict[str, str], key: str, path: Path | None = None) -> str:
    if key not in outputs:
        raise DeployError(f"output {key} missing from {shown(path or default_outputs_file())}")
    return outputs[key]


# --- destroy -----------------------------------------------------------------------------------


def destroy(target: Target, suffix: str, console: Console, attempts: int = 3) -> None:
    """Stop the stack's trails, empty its buckets, delete; when a bucket delete fails because
    late log files arrived, empty again and retry."""
    name = stack_name(suffix)
    stack = stack_status(target, name)
    if stack is None:
        raise DeployError(f"no stack {name} to destroy")
    resources = list(stack_resources(target, name))
    for trail in physical_ids(resources, "AWS::CloudTrail::Trail"):
        stop_trail(target, trail, console)
    buckets = physical_ids(resources, "AWS::S3::Bucket")
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            time.sleep(target.poll_seconds * 6)  # late deliveries: give them time to land
        for bucket in buckets:
            removed = empty_bucket(target, bucket)
            console.print(f"emptied {bucket}: {removed} object versions and delete markers removed")
        before = event_ids(target, stack["StackId"])
        target.client("cloudformation").delete_stack(StackName=stack["StackId"])
        final = follow(target, stack["StackId"], console, len(resources), before)
        left = [b for b in buckets if bucket_exists(target, b)]
        if final == "DELETE_COMPLETE" and not left:
            break
        if not left or attempt == attempts:
            reason = first_failure(target, stack["StackId"], before)
            raise DeployError(f"{name} ended {final}; left behind: {', '.join(left) or reason}")
        console.print(f"{', '.join(left)} not empty yet (late deliveries): emptying again")
    path = target.outputs_file
    if path.exists() and read_outputs(path).get("VPCId") == vpc_of(stack):
        path.unlink()  # the outputs of the stack just deleted, not of another one
    console.print(f"{name}: deleted, nothing left behind")


def physical_ids(resources: list[dict[str, Any]], resource_type: str) -> list[str]:
    return [
        r["PhysicalResourceId"]
        for r in resources
        if r["ResourceType"] == resource_type and r.get("PhysicalResourceId")
    ]


def stop_trail(target: Target, trail: str, console: Console) -> None:
    """A logging trail writes into its bucket until it is gone, the teardown's own calls too;
    digest files can still arrive after StopLogging, so the bucket's policy, the only grant
    CloudTrail has to write there, goes as well."""
    cloudtrail = target.client("cloudtrail")
    try:
        cloudtrail.stop_logging(Name=trail)
        listed = cloudtrail.describe_trails(trailNameList=[trail])["trailList"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "TrailNotFoundException":
            raise
        return
    console.print(f"stopped logging of trail {trail} (it would keep writing into its bucket)")
    bucket = next(
        (t.get("S3BucketName") for t in listed if trail in (t["Name"], t["TrailARN"])), None
    )
    if bucket:
        try:
            target.client("s3").delete_bucket_policy(Bucket=bucket)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("NoSuchBucket", "NoSuchBucketPolicy"):
                raise
        console.print(f"removed the policy of {bucket}: CloudTrail can no longer deliver there")


def prepare_removals(
    target: Target, name: str, changes: list[dict[str, Any]], console: Console
) -> list[str]:
    """An update that removes a trail and its bucket (EnableCloudTrail=false) meets the same
    race as a destroy: stop the trail, then empty the buckets the change set removes (the user
    approved their removal with the change set). Returns the trails stopped, to restart them
    should the update fail."""
    removed = {
        c["ResourceChange"]["LogicalResourceId"]
        for c in changes
        if c.get("ResourceChange", {}).get("Action") == "Remove"
    }
    if not removed:
        return []
    doomed = [r for r in stack_resources(target, name) if r["LogicalResourceId"] in removed]
    trails = physical_ids(doomed, "AWS::CloudTrail::Trail")
    for trail in trails:
        stop_trail(target, trail, console)
    for bucket in physical_ids(doomed, "AWS::S3::Bucket"):
        count = empty_bucket(target, bucket)
        console.print(f"emptied {bucket} before the update removes it: {count} removed")
    return trails


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
                reply = s3.delete_objects(
                    Bucket=bucket, Delete={"Objects": doomed[start : start + 1000], "Quiet": True}
                )
                if reply.get("Errors"):
                    first = reply["Errors"][0]
                    raise DeployError(
                        f"cannot empty {bucket}: {first.get('Key')}: {first.get('Message')} "
                        f"({len(reply['Errors'])} objects refused)"
                    )
            removed += len(doomed)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchBucket":
            raise
    return removed


def bucket_exists(target: Target, bucket: str) -> bool:
    """False only when S3 says the bucket is gone (403: it exists, we may not look)."""
    try:
        target.client("s3").head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchBucket", "NotFound"):
            return False
        raise
    return True


# --- try it ------------------------------------------------------------------------------------


def invoke_validation(target: Target, payload: Any) -> Any:
    """Lambda Invoke of the deployed validation function (the emulator runs it in process)."""
    function = output(
        read_outputs(target.outputs_file), "LoanValidationFunctionName", target.outputs_file
    )
    with aws_errors(target):
        reply = target.client("lambda").invoke(
            FunctionName=function, Payload=json.dumps(payload).encode()
        )
    body = json.loads(reply["Payload"].read() or b"null")
    if reply.get("FunctionError"):
        message = body.get("errorMessage") if isinstance(body, dict) else body
        raise DeployError(f"{function} failed: {message}")
    return body


# --- logs --------------------------------------------------------------------------------------

LOGGED = {"validate": "LoanValidationFunctionName", "rotation": "SecretRotationLambdaArn"}
SINCE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str) -> int:
    """`--since 10m` as FilterLogEvents' `startTime` (milliseconds since the epoch)."""
    number, unit = text[:-1], text[-1:]
    if not number.isdigit() or unit not in SINCE_UNITS:
        raise UsageError(f"--since takes a number and a unit (30s, 10m, 2h, 1d, 1w), got {text!r}")
    return int((time.time() - int(number) * SINCE_UNITS[unit]) * 1000)


def log_group(target: Target, outputs: dict[str, str], function: str) -> str:
    """The function's log group: its `LoggingConfig.LogGroup`, else Lambda's default name."""
    value = output(outputs, LOGGED[function])
    name = value.rpartition(":function:")[2] or value
    config = target.client("lambda").get_function_configuration(FunctionName=name)
    return str(config.get("LoggingConfig", {}).get("LogGroup") or f"/aws/lambda/{name}")


def log_records(target: Target, group: str, since: int, follow: bool) -> Iterator[str]:
    """Records of every stream of `group` from `since` on, oldest first; with `follow`, keep
    polling for new ones (FilterLogEvents, as `aws logs tail` reads them:
    https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_FilterLogEvents.html)."""
    paginator = target.client("logs").get_paginator("filter_log_events")
    seen: set[str] = set()
    start = since
    while True:
        fresh = []
        for page in paginator.paginate(logGroupName=group, startTime=start):
            fresh += [e for e in page.get("events", []) if e["eventId"] not in seen]
        for event in sorted(fresh, key=lambda e: (e["timestamp"], e["eventId"])):
            seen.add(event["eventId"])
            start = max(start, event["timestamp"])
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(event["timestamp"] / 1000))
            yield f"{stamp} {event['logStreamName']} {event['message'].rstrip()}"
        if not follow:
            return
        time.sleep(max(target.poll_seconds * 5, 1.0))


def rotate(target: Target, console: Console, timeout: float = 600) -> dict[str, Any]:
    """Recover an interrupted rotation first (Secrets Manager refuses a new one while it is
    left over), then rotate the database secret now and wait until the new version is
    AWSCURRENT; then prove the database takes it (a Data API call authenticates with it)."""
    outputs = read_outputs(target.outputs_file)
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
    age = pending_age(sm, secret, token)
    if age is not None and age < ROTATION_IN_FLIGHT_SECONDS:
        raise DeployError(
            f"a rotation started {age:.0f} s ago (version {token}) may still be running, or "
            "Secrets Manager may be retrying it: wait for it, then run `loanstack rotate` again "
            f"(a pending version older than {ROTATION_IN_FLIGHT_SECONDS} s counts as interrupted)"
        )
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


# Secrets Manager retries a failed rotation on its own; a pending version younger than two of
# the rotation function's timeouts (900 s) may belong to a rotation still running.
ROTATION_IN_FLIGHT_SECONDS = 1800


def pending_age(sm: Any, secret: str, token: str) -> float | None:
    """Seconds since the pending version was created (None when Secrets Manager does not say)."""
    request: dict[str, Any] = {"SecretId": secret, "IncludeDeprecated": True}
    while True:
        page = sm.list_secret_version_ids(**request)
        for version in page.get("Versions", []):
            created = version.get("CreatedDate")
            if version.get("VersionId") == token and created is not None:
                return time.time() - created.timestamp()
        if not page.get("NextToken"):
            return None
        request["NextToken"] = page["NextToken"]


def invoke_rotation_step(target: Target, function: str, secret: str, token: str, step: str) -> None:
    """One step, synchronously: setSecret may wait up to the function's 900 s, and a retried
    Invoke would run the step twice, so the client waits that long and never retries."""
    from botocore.config import Config

    lam = target.session.client(
        "lambda",
        endpoint_url=target.endpoint_url,
        config=Config(read_timeout=910, retries={"max_attempts": 1, "mode": "standard"}),
    )
    event = {"Step": step, "SecretId": secret, "ClientRequestToken": token}
    reply = lam.invoke(FunctionName=function, Payload=json.dumps(event).encode())
    if reply.get("FunctionError"):
        body = json.loads(reply["Payload"].read() or b"null")
        message = body.get("errorMessage") if isinstance(body, dict) else body
        raise DeployError(f"rotation function failed in {step}: {message}")


def database_takes_awscurrent(target: Target, outputs: dict[str, str]) -> bool:
    """A Data API call authenticates with the secret's AWSCURRENT: MySQL's 1045 means it no
    longer matches the database's password."""
    deadline = time.monotonic() + RESUME_SECONDS
    while True:
        try:
            target.client("rds-data").execute_statement(
                resourceArn=output(outputs, "DBClusterArn"),
                secretArn=output(outputs, "DBSecretArn"),
                database="loans",
                sql="SELECT 1",
            )
            return True
        except ClientError as exc:
            error = exc.response["Error"]
            if "Access denied for user" in str(error.get("Message", "")):
                return False
            if error.get("Code") == "DatabaseResumingException" and time.monotonic() < deadline:
                time.sleep(target.poll_seconds)  # a paused dev cluster (0 ACU) is waking up
                continue
            raise DeployError(f"the Data API failed: {error.get('Message')}") from exc


RESUME_SECONDS = 90  # a paused Serverless v2 cluster takes ~15 s to resume, more after long idle


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
