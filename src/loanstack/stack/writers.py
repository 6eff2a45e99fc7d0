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

import re
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
        found |= token_functions(token)
    return found


def token_functions(token: Any) -> set[str]:
    """The logical ids a ServiceToken may name: `Fn::GetAtt` in its list or its dotted string
    form, `Ref`, and any of these inside `Fn::If`/`Fn::Sub` (every branch: either may be live)."""
    if isinstance(token, list):
        return set().union(*(token_functions(t) for t in token)) if token else set()
    if not isinstance(token, dict):
        return set()
    if "Fn::GetAtt" in token:
        att = token["Fn::GetAtt"]
        return {str(att[0] if isinstance(att, list) else str(att).split(".", 1)[0])}
    if "Ref" in token:
        return {str(token["Ref"])}
    if "Fn::Sub" in token:
        sub = token["Fn::Sub"]
        text = sub[0] if isinstance(sub, list) else sub
        return {m.split(".", 1)[0] for m in re.findall(r"\$\{([^}!]+)\}", str(text))}
    return set().union(*(token_functions(v) for v in token.values()))


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
    seconds an invocation already running may still write), 0 when none is left. A refusal
    (access denied, a quota) is said in one line and destroy goes on: the throttle is a
    precaution, and destroy then waits out the function as if it had landed."""
    lam = target.client("lambda")
    longest = 0.0
    for name in functions:
        try:
            lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                continue
            console.print(
                f"could not throttle function {name} ({exc.response['Error']['Code']}: "
                f"{exc.response['Error'].get('Message', '')}); its queued events may still "
                "write, so destroy empties again after them"
            )
        else:
            console.print(
                f"throttled function {name} (reserved concurrency 0): its queued events no "
                "longer run"
            )
        longest = max(longest, function_timeout(lam, name))
    return longest


def function_timeout(lam: Any, name: str) -> float:
    """The function's Timeout; Lambda's largest (900 s) when it cannot be read, so that destroy
    never waits less than an invocation may run.
    https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html"""
    try:
        return float(lam.get_function_configuration(FunctionName=name)["Timeout"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return 0.0
        return 900.0


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
        code = exc.response["Error"]["Code"]
        if code != "NoSuchBucket":  # a precaution, as the throttle: said, and destroy goes on
            console.print(
                f"could not remove the event notifications of {bucket} ({code}); new objects "
                "may still start the function while it is throttled"
            )
        return
    console.print(f"removed the event notifications of {bucket}: new objects start nothing")
