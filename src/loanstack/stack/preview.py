"""`loanstack diff`: what a deploy would change, without changing anything (issue 21 item 6).

The change set is made exactly as `deploy` makes it (same parameters, tags, role, rollback
triggers), described with IncludePropertyValues so each property shows its before and after
value, then deleted; for a new stack, the empty REVIEW_IN_PROGRESS stack CreateChangeSet made
is deleted too, so a preview leaves nothing behind.
https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CreateChangeSet.html
https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeChangeSet.html
"""

from __future__ import annotations

from typing import Any

from loanstack.stack.deploy import Deployment, plan
from loanstack.stack.events import show_change_set, stack_status


def preview(d: Deployment) -> list[dict[str, Any]]:
    """The changes a deploy would make (shown on the console); nothing is left behind."""
    cfn = d.target.client("cloudformation")
    existed = stack_status(d.target, d.name) is not None
    try:
        p = plan(d)
    except BaseException:  # a failed change set of a new stack leaves its review stack
        if not existed:
            remove_review_stack(d)
        raise
    try:
        if p.change_set is None:
            d.console.print(f"{d.name}: no changes")
        else:
            show_change_set(d.console, d.name, p.kind, p.changes)
    finally:
        if p.change_set is not None:
            cfn.delete_change_set(ChangeSetName=p.change_set)
        if not p.existed:
            remove_review_stack(d)
    return p.changes


def remove_review_stack(d: Deployment) -> None:
    """Delete the stack the preview's CREATE change set made, while it is still only in review
    (no template, no resources): never a stack that holds anything."""
    stack = stack_status(d.target, d.name)
    if stack is not None and stack["StackStatus"] == "REVIEW_IN_PROGRESS":
        d.target.client("cloudformation").delete_stack(StackName=stack["StackId"])
