"""Stop what writes into the stack's buckets before `destroy` empties them (SPEC R6).

Emptying a bucket that is still written to races the writer: the delete fails on a bucket that
filled again. The stack's writers are its own functions, driven by the documents bucket's S3
event notifications; Lambda keeps an asynchronous event, and retries it, for up to six hours
(https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html), so the
events already queued keep writing long after the uploads stopped. Removing the notifications
stops new events; a reserved concurrency of 0 throttles the function, so that none of the queued
events runs: throttled asynchronous events go back to the queue, then to the dead-letter queue
or expiry (https://docs.aws.amazon.com/lambda/latest/dg/API_PutFunctionConcurrency.html). An
invocation already running when the throttle lands still ends within the function's Timeout:
that is the bound `destroy` waits for its last writes.

A function that serves one of the stack's custom resources is left running: CloudFormation
invokes it (asynchronously) to delete that resource, and a throttled one would leave the delete
waiting for the resource's ServiceTimeout, then failing.
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-requesttypes-delete.html
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError
from rich.console import Console

from loanstack import template
from loanstack.aws.target import Target

FUNCTION = "AWS::Lambda::Function"
CUSTOM_RESOURCE = "AWS::CloudFormation::CustomResource"


def service_functions(doc: dict[str, Any], parameters: dict[str, str]) -> set[str]:
    """Logical ids of the functions the stack's custom resources call (their ServiceToken)."""
    resources = template.instantiate(doc, parameters).resources
    found = set()
    for resource in resources.values():
        if resource.type != CUSTOM_RESOURCE and not resource.type.startswith("Custom::"):
            continue
        token = resource.raw.get("Properties", {}).get("ServiceToken")
        if isinstance(token, dict) and "Fn::GetAtt" in token:
            found.add(str(token["Fn::GetAtt"][0]))
        elif isinstance(token, dict) and "Ref" in token:
            found.add(str(token["Ref"]))
    return found


def writer_functions(
    resources: list[dict[str, Any]], doc: dict[str, Any], parameters: dict[str, str]
) -> list[str]:
    """Physical names of the stack's functions that may write into its buckets: all but those
    serving its custom resources."""
    spared = service_functions(doc, parameters)
    return [
        r["PhysicalResourceId"]
        for r in resources
        if r["ResourceType"] == FUNCTION
        and r.get("PhysicalResourceId")
        and r["LogicalResourceId"] not in spared
    ]


def throttle(target: Target, functions: list[str], console: Console) -> float:
    """Reserved concurrency 0 on each function; returns the longest Timeout among them (the
    seconds an invocation already running may still write), 0 when none is left."""
    lam = target.client("lambda")
    longest = 0.0
    for name in functions:
        timeout = 0.0
        try:
            timeout = float(lam.get_function_configuration(FunctionName=name)["Timeout"])
            lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code == "ResourceNotFoundException":
                continue
            # An account at its minimum unreserved concurrency (a new account's 10) refuses any
            # reservation: the throttle is a precaution, so destroy goes on, waiting as long.
            console.print(
                f"could not throttle function {name} ({code}: "
                f"{exc.response['Error'].get('Message', '')}); its queued events may still "
                "write, so destroy empties again after them"
            )
            longest = max(longest, float(timeout or 0))
            continue
        longest = max(longest, timeout)
        console.print(
            f"throttled function {name} (reserved concurrency 0): its queued events no longer run"
        )
    return longest


def remove_notifications(target: Target, bucket: str, console: Console) -> None:
    """The bucket's event notifications removed (an empty configuration), so that no new
    object starts a function while the bucket is emptied."""
    s3 = target.client("s3")
    try:
        current = s3.get_bucket_notification_configuration(Bucket=bucket)
        listed = [v for k, v in current.items() if k.endswith("Configurations")]
        if not any(listed) and "EventBridgeConfiguration" not in current:
            return
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchBucket":
            raise
        return
    console.print(f"removed the event notifications of {bucket}: new objects start nothing")
