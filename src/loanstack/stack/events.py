"""Change sets and stack events: wait for a change set, show it, follow the events to the end."""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from loanstack import render as layout
from loanstack.aws.errors import is_missing_stack
from loanstack.aws.target import Target
from loanstack.errors import DeployError, Interrupted

SHOWN_VALUE_LIMIT = 120  # longer property values are summarised by length in the change set


TERMINAL = ("_COMPLETE", "_FAILED")


def stack_status(target: Target, name: str) -> dict[str, Any] | None:
    try:
        stacks = target.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if is_missing_stack(exc):
            return None
        raise
    return dict(stacks[0]) if stacks else None


def wait_for_change_set(target: Target, change_set_id: str) -> list[dict[str, Any]] | None:
    cfn = target.client("cloudformation")
    while True:
        described = cfn.describe_change_set(ChangeSetName=change_set_id, IncludePropertyValues=True)
        status = described.get("Status", "CREATE_COMPLETE")
        if status == "CREATE_COMPLETE":
            changes = list(described.get("Changes", []))
            if not changes:  # nothing to execute: not left behind (AWS fails such a change set)
                cfn.delete_change_set(ChangeSetName=change_set_id)
            return changes or None
        if status == "FAILED":
            reason = described.get("StatusReason", "")
            if "didn't contain changes" in reason or "No updates" in reason:
                cfn.delete_change_set(ChangeSetName=change_set_id)
                return None
            raise DeployError(f"change set failed: {reason}")
        time.sleep(target.poll_seconds)


# DescribeChangeSet's ResourceChange.Replacement is "True", "False" or "Conditional"
# https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ResourceChange.html
REPLACEMENT = {"True": "yes", "False": "no", "Conditional": "conditional"}


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
                REPLACEMENT.get(rc.get("Replacement", ""), rc.get("Replacement", "")),
                property_changes(rc),
            )
        )
    layout.records(
        console,
        f"{name}: change set ({kind.lower()}, {layout.plural(len(changes), 'change')})",
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
    if target.ephemeral:
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


def change_records(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The change set as `--output json` carries it (camelCase): per resource its action,
    logical id, type, replacement (True, Conditional, False) and the properties that change,
    with before and after values where DescribeChangeSet gives them (IncludePropertyValues)."""
    records = []
    for change in changes:
        rc = change.get("ResourceChange", {})
        properties = []
        for detail in rc.get("Details", []):
            t = detail.get("Target", {})
            if t.get("Attribute") != "Properties" or not t.get("Name"):
                continue
            entry = {
                "name": t["Name"],
                "requiresRecreation": t.get("RequiresRecreation", ""),
                "evaluation": detail.get("Evaluation", ""),
                "causingEntity": detail.get("CausingEntity"),
                "before": t.get("BeforeValue"),
                "after": t.get("AfterValue"),
            }
            properties.append({k: v for k, v in entry.items() if v is not None})
        records.append(
            {
                "action": rc.get("Action", ""),
                "logicalId": rc.get("LogicalResourceId", ""),
                "physicalId": rc.get("PhysicalResourceId"),
                "type": rc.get("ResourceType", ""),
                "replacement": rc.get("Replacement") or "False",
                "properties": properties,
            }
        )
    return records
