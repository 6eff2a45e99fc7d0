"""Tear the stack down: stop what writes into its buckets, empty them, delete it, report what is
left."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console

from loanstack import template
from loanstack.aws.outputs import read_record, read_stack, record_file
from loanstack.aws.target import Target
from loanstack.errors import DeployError
from loanstack.names import ENVIRONMENT_TYPE, VPC_ID, stack_name
from loanstack.stack import survival, writers
from loanstack.stack.events import event_ids, first_failure, follow, stack_status


def destroy(target: Target, suffix: str, console: Console, attempts: int = 3) -> None:
    """Stop what writes into the stack's buckets (its functions, their notifications, its
    trails, access logging), empty the buckets, delete; when a bucket delete fails because late
    writes arrived, empty again and retry: at least `attempts` times (late log deliveries), and
    for as long as a function that was running when it was throttled may still write."""
    name = stack_name(suffix)
    stack = stack_status(target, name)
    if stack is None:
        raise DeployError(f"no stack {name} to destroy")
    resources = list(stack_resources(target, name))
    # prod keeps its data (R6): kept buckets are neither emptied nor waited for, and a trail
    # whose archive is kept is never stopped (that would break its digest chain)
    cfn = target.client("cloudformation")
    try:
        doc, given = survival.deployed_template(cfn, stack)
        kept = survival.survivors(doc, given)
        functions = writers.writer_functions(resources, doc, given)
    except template.ParameterError as exc:
        raise DeployError(str(survival.unknown(stack, exc))) from exc
    keeps = {r["PhysicalResourceId"] for r in resources if r["LogicalResourceId"] in kept}
    buckets = [b for b in physical_ids(resources, "AWS::S3::Bucket") if b not in keeps]
    for bucket in buckets:  # no new events first, then none of the queued ones runs
        writers.remove_notifications(target, bucket, console)
    settle = writers.throttle(target, functions, console)
    writes_until = time.monotonic() + settle
    if not any(kept[k].kept for k in kept if kept[k].type == "AWS::S3::Bucket"):
        for trail in physical_ids(resources, "AWS::CloudTrail::Trail"):
            stop_trail(target, trail, console)
    for bucket in buckets:  # emptying a logged bucket writes access logs into the log bucket
        stop_access_logging(target, bucket)
    attempt = 0
    while True:
        attempt += 1
        if attempt > 1:
            time.sleep(target.poll_seconds * 6)  # late deliveries: give them time to land
        for bucket in buckets:
            removed = empty_bucket(target, bucket)
            console.print(f"emptied {bucket}: {removed} object versions and delete markers removed")
        before = event_ids(target, stack["StackId"])
        cfn.delete_stack(StackName=stack["StackId"])
        final = follow(target, stack["StackId"], console, len(resources), before)
        left = [b for b in buckets if bucket_exists(target, b)]
        if final == "DELETE_COMPLETE" and not left:
            break
        late = attempt < attempts or time.monotonic() < writes_until
        if not left or not late:
            reason = first_failure(target, stack["StackId"], before)
            raise DeployError(f"{name} ended {final}; left behind: {', '.join(left) or reason}")
        console.print(f"{', '.join(left)} not empty yet (late deliveries): emptying again")
    forget(target, name, vpc_of(stack))
    if not kept:
        console.print(f"{name}: deleted, nothing left behind")
        return
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}
    console.print(f"{name}: deleted; what survives, to restore from:")
    for line in survival.summary(kept, physical, final_snapshots(target, kept, physical)):
        console.print(f"  {line}")


def forget(target: Target, name: str, vpc: str | None) -> None:
    """Remove the outputs of the stack just deleted (its own record, and the flat file when it
    holds them), never those of another stack: the same name in another region or target keeps
    its record."""
    own = record_file(name, target.outputs_file)
    record = read_record(name, target.outputs_file)
    if record and (record.region, record.target) == (target.region, target.name):
        own.unlink()
    path = target.outputs_file
    if path.exists() and read_stack(path).vpc_id == vpc:
        path.unlink()


def stop_access_logging(target: Target, bucket: str) -> None:
    """S3 server access logging off (PutBucketLogging with an empty status), so that emptying
    the stack's buckets does not refill its log bucket."""
    try:
        target.client("s3").put_bucket_logging(Bucket=bucket, BucketLoggingStatus={})
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchBucket":
            raise


def final_snapshots(
    target: Target, kept: dict[str, survival.Survivor], physical: dict[str, str]
) -> dict[str, list[str]]:
    """Cluster id -> the manual snapshots of it (the final one CloudFormation took among them)."""
    rds = target.client("rds")
    found: dict[str, list[str]] = {}
    for logical_id, survivor in kept.items():
        if survivor.type == "AWS::RDS::DBCluster" and logical_id in physical:
            cluster = physical[logical_id]
            listed = rds.describe_db_cluster_snapshots(
                DBClusterIdentifier=cluster, SnapshotType="manual"
            )["DBClusterSnapshots"]
            found[cluster] = [s["DBClusterSnapshotIdentifier"] for s in listed]
    return found


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
    stack = stack_status(target, name)
    kept = survival.deployed_survivors(target.client("cloudformation"), stack) if stack else {}
    if any(kept.get(r["LogicalResourceId"]) for r in doomed):  # prod (R6): kept, never emptied
        doomed = [r for r in doomed if r["LogicalResourceId"] not in kept]
        trails: list[str] = []  # and its trail is never stopped (the digest chain)
    else:
        trails = physical_ids(doomed, "AWS::CloudTrail::Trail")
    for trail in trails:
        stop_trail(target, trail, console)
    for bucket in physical_ids(doomed, "AWS::S3::Bucket"):
        count = empty_bucket(target, bucket)
        console.print(f"emptied {bucket} before the update removes it: {count} removed")
    return trails


def vpc_of(stack: dict[str, Any]) -> str | None:
    return next(
        (o["OutputValue"] for o in stack.get("Outputs", []) if o["OutputKey"] == VPC_ID), None
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


def what_survives(target: Target, stack: dict[str, Any]) -> list[str]:
    """What a delete of this stack leaves (R6 amended), said before the delete is confirmed."""
    try:
        kept = survival.deployed_survivors(target.client("cloudformation"), stack)
    except survival.SurvivalUnknown as exc:
        raise DeployError(str(exc)) from exc
    if not kept:
        return ["nothing survives: every resource of the stack and its data is deleted"]
    physical = {
        r["LogicalResourceId"]: r.get("PhysicalResourceId", "?")
        for r in stack_resources(target, stack["StackName"])
    }
    lines = []
    for logical_id, survivor in sorted(kept.items()):
        name = physical.get(logical_id, "?")
        if survivor.kept:
            lines.append(f"survives: {survivor.type} {logical_id} {name}")
        else:
            lines.append(f"a final snapshot is taken of {survivor.type} {logical_id} {name}")
    return lines


def environment_of(stack: dict[str, Any]) -> str:
    """The stack's EnvironmentType parameter as deployed (dev when absent)."""
    given = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}
    return str(given.get(ENVIRONMENT_TYPE) or "dev")


def regions_holding(target: Target, name: str) -> list[str]:
    """The other regions of the partition where a stack of this name exists, for a destroy that
    did not find it where it looked; regions that refuse the call (not enabled) are skipped."""
    found = []
    for region in target.session.get_available_regions("cloudformation"):
        if region == target.region:
            continue
        cfn = target.session.client(
            "cloudformation",
            region_name=region,
            endpoint_url=target.endpoint_url,
            config=Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 1}),
        )
        try:
            stacks = cfn.describe_stacks(StackName=name)["Stacks"]
        except (ClientError, BotoCoreError):
            continue  # no such stack there, or a region the account has not enabled
        if any(s["StackStatus"] != "DELETE_COMPLETE" for s in stacks):
            found.append(region)
    return found
