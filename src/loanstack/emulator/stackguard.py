"""Stack-level settings CloudFormation enforces and moto only stores (or lacks): termination
protection, stack policies, and the tags, service role, notification ARNs, rollback triggers and
DisableRollback a change set carries to its stack.

- Termination protection: "If a user attempts to delete a stack with termination protection
  enabled, the deletion fails and the stack, including its status, remains unchanged."
  https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-protect-stacks.html
  (UpdateTerminationProtection, which moto has no handler for:
  https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_UpdateTerminationProtection.html)
- Stack policies: once one is set, "all update actions on all resources are denied" unless a
  statement allows them; an explicit Deny wins over an Allow; a denied update fails and the stack
  rolls back. https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/protect-stack-resources.html
"""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from typing import Any

from moto.cloudformation import models as cfn_models
from moto.cloudformation import responses as cfn_responses
from moto.core.responses import ActionResult

from loanstack.emulator import fence

TERMINATION_PROTECTED = "Stack [{name}] cannot be deleted while TerminationProtection is enabled"


def update_termination_protection(self: Any) -> Any:
    """UpdateTerminationProtection: the flag DescribeStacks already reports (moto stores the
    CreateStack value and has no handler to change it)."""
    stack = self.cloudformation_backend.get_stack(self._get_param("StackName"))
    stack.enable_termination_protection = self._get_bool_param("EnableTerminationProtection", False)
    return ActionResult({"StackId": stack.stack_id})


def refuse_protected_delete(stack: Any, given: str) -> None:
    """DeleteStack of a protected stack fails as a ValidationError, the stack left as it was."""
    if getattr(stack, "enable_termination_protection", False):
        raise cfn_models.ValidationError(message=TERMINATION_PROTECTED.format(name=given))


def create_change_set(self: Any) -> Any:
    """CreateChangeSet keeps its RollbackConfiguration (moto drops it) on the change set, for
    DescribeChangeSet and for the stack once executed.
    https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_RollbackConfiguration.html
    """
    answer = fence.original(cfn_responses.CloudFormationResponse, "create_change_set")(self)
    config = self._get_param("RollbackConfiguration")
    change_set = self.cloudformation_backend.change_sets.get(answer.result["Id"])
    if change_set is not None and config:
        change_set.rollback_configuration = config
    return answer


def execute_change_set(self: Any) -> Any:
    """ExecuteChangeSet's DisableRollback (moto reads only the names): a failure then leaves
    the stack *_FAILED with what was built, for debugging, instead of rolling back.
    https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ExecuteChangeSet.html
    """
    backend = self.cloudformation_backend
    name = self._get_param("ChangeSetName")
    change_set = backend.change_sets.get(name) or next(
        (c for c in backend.change_sets.values() if c.change_set_name == name), None
    )
    if change_set is not None:
        change_set.disable_rollback = self._get_bool_param("DisableRollback", False)
    return fence.original(cfn_responses.CloudFormationResponse, "execute_change_set")(self)


def adopt(stack: Any, change_set: Any) -> None:
    """What the executed change set sets on its stack: tags, service role, notification ARNs
    (each when given, as CreateChangeSet documents), rollback triggers, DisableRollback."""
    if change_set.tags:
        stack.tags = dict(change_set.tags)
    if change_set.role_arn:
        stack.role_arn = change_set.role_arn
    if change_set.notification_arns:
        stack.notification_arns = list(change_set.notification_arns)
    config = getattr(change_set, "rollback_configuration", None)
    if config:
        stack.rollback_configuration = config
    stack.disable_rollback = bool(getattr(change_set, "disable_rollback", False))


def update_action(change: Any) -> str | None:
    """The stack policy action a change is: Update:Replace for a replacement (Conditional ones
    too: CloudFormation cannot promise they will not replace), Update:Delete for a removal,
    Update:Modify otherwise; None for an addition (a policy covers existing resources)."""
    if change.action == "Remove":
        return "Update:Delete"
    if change.action != "Modify":
        return None
    return "Update:Modify" if change.replacement == "False" else "Update:Replace"


def policy_denial(policy_text: str, changes: list[Any]) -> tuple[str, str] | None:
    """(logical id, reason) of the first change the stack policy denies, None when all pass."""
    if not policy_text:
        return None
    statements = json.loads(policy_text).get("Statement", [])
    for change in changes:
        action = update_action(change)
        if action is None:
            continue
        reason = judged(statements, action, change.logical_resource_id, change.resource_type)
        if reason:
            return change.logical_resource_id, reason
    return None


def judged(statements: list[dict[str, Any]], action: str, logical_id: str, rtype: str) -> str:
    """Why the policy denies `action` on the resource ('' when it allows it)."""
    allowed = False
    for number, statement in enumerate(statements, start=1):
        if not applies(statement, action, logical_id, rtype):
            continue
        if statement.get("Effect") == "Deny":
            return (
                f"Action denied by stack policy: Statement [#{number}] does not allow "
                f"[{action}] for resource [LogicalResourceId/{logical_id}]"
            )
        allowed = True
    if allowed:
        return ""
    return (
        f"Action denied by stack policy: no statement allows [{action}] for resource "
        f"[LogicalResourceId/{logical_id}]"
    )


def applies(statement: dict[str, Any], action: str, logical_id: str, rtype: str) -> bool:
    """Whether a statement's Action/NotAction, Resource/NotResource and ResourceType condition
    cover this update of this resource."""
    resource = f"LogicalResourceId/{logical_id}"
    if "Action" in statement and not matches(statement["Action"], action):
        return False
    if "NotAction" in statement and matches(statement["NotAction"], action):
        return False
    if "Resource" in statement and not matches(statement["Resource"], resource):
        return False
    if "NotResource" in statement and matches(statement["NotResource"], resource):
        return False
    for operator, test in statement.get("Condition", {}).items():
        wanted = test.get("ResourceType", [])
        hit = matches(wanted, rtype) if "Like" in operator else rtype in as_list(wanted)
        if operator.startswith("StringNot") == hit:
            return False
    return True


def matches(patterns: Any, value: str) -> bool:
    return any(fnmatchcase(value, p) for p in as_list(patterns))


def as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def refuse_update(stack: Any, logical_id: str, rtype: str, reason: str) -> None:
    """A denied update as CloudFormation reports it: the resource fails, the stack rolls back
    to where it was (nothing was changed, so the rollback has nothing to undo)."""
    stack._add_stack_event("UPDATE_IN_PROGRESS", resource_status_reason="User Initiated")
    stack.events.append(
        cfn_models.Event(
            stack_id=stack.stack_id,
            stack_name=stack.name,
            logical_resource_id=logical_id,
            physical_resource_id="",
            resource_type=rtype,
            resource_status="UPDATE_FAILED",
            resource_status_reason=reason,
            resource_properties=None,
        )
    )
    stack._add_stack_event(
        "UPDATE_ROLLBACK_IN_PROGRESS",
        resource_status_reason=f"The following resource(s) failed to update: [{logical_id}].",
    )
    stack._add_stack_event("UPDATE_ROLLBACK_COMPLETE")
    stack.status = "UPDATE_ROLLBACK_COMPLETE"
