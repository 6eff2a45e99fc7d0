"""`loanstack destroy` while the stack's function is still writing (SPEC R6).

Seen in CI after a migration with a killed invocation: destroy emptied the buckets three times
and still ended DELETE_FAILED, because Lambda kept running queued S3 events that wrote into
the documents bucket. On AWS the same happens (asynchronous events are retried for up to six
hours: https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html).
Destroy now stops the writers first: the bucket's notifications removed, the functions
throttled (reserved concurrency 0), so the queued events never run.

The race is made certain rather than left to timing: after each emptying of the documents
bucket the test holds destroy for LATE_WRITE_SECONDS, the worst case of what CI met, and notes
whether a write landed and whether the function ran meanwhile. Once the writers are stopped, only
the invocation already running when the throttle landed may still write (then destroy empties
again); the last emptying must find none running and nothing written.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from loanstack.aws.target import Target
from loanstack.emulator import ACCOUNT_ID, Emulator, awslambda_async
from loanstack.emulator.state import STATE
from loanstack.stack import destroy as destroy_module
from loanstack.stack.destroy import bucket_exists, destroy, stack_resources
from loanstack.stack.events import stack_status
from tests.support import backends
from tests.support.stacks import deploy_stack

REGION = "us-east-1"
SUFFIX = "dwr42"
EVENTS = 60  # one at a time, each writes validations/<id>.json: a write every second or so
LATE_WRITE_SECONDS = 5.0
APPLICATION = json.loads((Path(__file__).parents[2] / "examples" / "approved.json").read_text())


@pytest.fixture
def outputs(target: Target, emulator: Emulator, tmp_path: Path) -> Iterator[dict[str, str]]:
    # one invocation at a time, and a short Timeout: the bound destroy waits for a running one
    found = deploy_stack(
        target,
        "dev",
        SUFFIX,
        tmp_path,
        ValidationReservedConcurrency="1",
        ValidationTimeout="30",
    )
    yield found
    assert awslambda_async.wait_idle(60)


def holds_objects(target: Target, bucket: str) -> bool:
    reply = target.client("s3").list_object_versions(Bucket=bucket, MaxKeys=1)
    return bool(reply.get("Versions") or reply.get("DeleteMarkers"))


def invocations_running(suffix: str) -> int:
    """Invocations of the stack's validation function running now (the emulator's count)."""
    queue = STATE.invocations
    with queue.changed:
        return sum(n for arn, n in queue.running.items() if f"lambda-loanvalidator-{suffix}" in arn)


def test_r6_destroy_while_queued_events_keep_writing_ends_delete_complete_in_one_call(
    target: Target, outputs: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = outputs["LoanDocumentsBucketName"]
    s3 = target.client("s3")
    for i in range(EVENTS):
        body = json.dumps({**APPLICATION, "loanId": f"RACE-{i:03d}"}).encode()
        s3.put_object(Bucket=bucket, Key=f"incoming/race-{i:03d}.json", Body=body)
    assert not awslambda_async.wait_idle(0.1), "the events must still be queued or running"

    empty = destroy_module.empty_bucket
    windows: list[tuple[bool, int]] = []  # per emptying: a write landed, most invocations running

    def empty_then_let_a_late_write_land(target: Target, name: str) -> int:
        removed = empty(target, name)
        if name == bucket:
            deadline, running = time.monotonic() + LATE_WRITE_SECONDS, 0
            while time.monotonic() < deadline:
                running = max(running, invocations_running(SUFFIX))
                time.sleep(0.1)
            windows.append((holds_objects(target, name), running))
        return removed

    monkeypatch.setattr(destroy_module, "empty_bucket", empty_then_let_a_late_write_land)
    console = Console(record=True, width=200)
    destroy(target, SUFFIX, console)  # raises DeployError when it ends DELETE_FAILED

    said = console.export_text()
    assert stack_status(target, f"tapstack-{SUFFIX}") is None
    assert not bucket_exists(target, bucket)
    assert windows[-1] == (False, 0), f"the last emptying must find no writer left: {windows}"
    assert f"throttled function lambda-loanvalidator-{SUFFIX}" in said
    assert f"removed the event notifications of {bucket}" in said
    trail_bucket = f"s3-loantrail-{SUFFIX}-{ACCOUNT_ID}-{REGION}"
    assert f"stopped logging of trail trail-loanprocessing-{SUFFIX}-{REGION}" in said
    assert f"removed the policy of {trail_bucket}" in said
    assert not bucket_exists(target, trail_bucket)
    # the custom resource's function stays callable: CloudFormation invokes it to delete
    assert f"lambda-secretrotation-{SUFFIX}" not in said
    assert awslambda_async.wait_idle(10), "queued events of a deleted function never run"


def test_a_delete_that_failed_part_way_leaves_deleted_what_it_deleted(
    target: Target, tmp_path: Path
) -> None:
    """The emulator re-created a deleted resource whenever the DELETE_FAILED stack was
    described (moto's lazy resource map): the trail came back logging into a trail bucket that
    came back too, so every later round of destroy found them written again (CI's failure)."""
    suffix = "dwf42"
    found = deploy_stack(target, "dev", suffix, tmp_path)
    name = f"tapstack-{suffix}"
    cfn = target.client("cloudformation")
    stack_id = cfn.describe_stacks(StackName=name)["Stacks"][0]["StackId"]
    resources = {r["LogicalResourceId"]: r for r in stack_resources(target, name)}
    target.client("s3").put_object(  # not emptied: this bucket's delete fails
        Bucket=found["LoanDocumentsBucketName"], Key="validations/kept.json", Body=b"{}"
    )
    cfn.delete_stack(StackName=stack_id)
    events = cfn.describe_stack_events(StackName=stack_id)["StackEvents"]
    assert events[0]["ResourceStatus"] == "DELETE_FAILED"
    deleted = {e["LogicalResourceId"] for e in events if e["ResourceStatus"] == "DELETE_COMPLETE"}
    assert "Trail" in deleted  # what the test is about: it went before the failure
    for _ in range(2):  # describing the stack, as `destroy` follows it, brings nothing back
        cfn.describe_stacks(StackName=stack_id)
    back = [
        logical_id
        for logical_id in sorted(deleted)
        if backends.exists(
            resources[logical_id]["ResourceType"],
            resources[logical_id]["PhysicalResourceId"],
            ACCOUNT_ID,
            REGION,
        )
    ]
    assert back == [], f"deleted, then re-created by describing the stack: {back}"
    listed = {r["LogicalResourceId"] for r in stack_resources(target, name)}
    assert not listed & deleted

    destroy(target, suffix, Console(record=True, width=200))
    assert stack_status(target, name) is None
