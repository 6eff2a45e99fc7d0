"""What moto's CloudFormation engine needs to deploy this template faithfully.

- every resource type is modelled, by moto or by an extension here; an unknown type fails the
  deployment instead of being skipped with a warning (moto's default);
- `{{resolve:secretsmanager:…}}` dynamic references resolve against the emulated secret;
- each resource reports CREATE/DELETE events as CloudFormation does (moto reports the stack's);
- executing a change set builds the stack in dependency order and, when a resource fails,
  records the resource's failure and rolls the stack back instead of answering HTTP 500.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import re
import weakref
from typing import Any

from moto.cloudformation import models as cfn_models
from moto.cloudformation import parsing
from moto.secretsmanager.models import secretsmanager_backends

from loanstack.emulator import base, deletion, fence, retention, stackguard

DYNAMIC_REFERENCE = re.compile(
    r"\{\{resolve:secretsmanager:(?P<id>arn:[^:]+:secretsmanager:[^:]+:\d+:secret:[^:}]+|[^:}]+)"
    r"(?::SecretString:(?P<key>[^:}]*))?(?::(?P<stage>[^:}]*))?(?::(?P<version>[^:}]*))?\}\}"
)

_creation_orders: dict[int, list[str]] = {}  # per live ResourceMap (moto's, not ours to extend)


class UnsupportedResourceType(ValueError):
    pass


def model_list() -> list[type[Any]]:
    """moto's models, with each type an extension covers replaced by the extension."""
    ours = {ext.TYPE for ext in base.EXTENSIONS}
    moto_models = [
        m
        for m in fence.original(parsing, "get_model_list")()
        if m.cloudformation_type() not in ours
    ]
    return moto_models + list(base.EXTENSIONS)


def creation_order(resources_map: Any) -> list[str]:
    """The logical ids a stack's resource map created, in order; forgotten with the map."""
    key = id(resources_map)
    if key not in _creation_orders:
        _creation_orders[key] = []
        weakref.finalize(resources_map, _creation_orders.pop, key, None)
    return _creation_orders[key]


def modelled_types() -> set[str]:
    return set(parsing.get_model_map())


def resource_class_from_type(resource_type: str) -> Any:
    found = fence.original(parsing, "resource_class_from_type")(resource_type)
    if found is None and resource_type not in parsing.NULL_MODELS:
        raise UnsupportedResourceType(f"the emulator does not model {resource_type}")
    return found


# Fn::Sub's ${Resource.Attribute.Part} (an attribute with a dot, such as Endpoint.Address):
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/intrinsic-function-reference-sub.html
DOTTED_ATTRIBUTE = re.compile(r"\$\{([A-Za-z0-9]+)\.([A-Za-z0-9]+(?:\.[A-Za-z0-9]+)+)\}")


def sub_dotted(resource_json: dict[str, Any], resources_map: Any) -> dict[str, Any]:
    """moto splits `${DBCluster.Endpoint.Address}` at every dot and asks for `Endpoint` alone:
    such tokens are resolved here first, as one attribute."""
    value = resource_json["Fn::Sub"]
    template = value[0] if isinstance(value, list) else value
    if not isinstance(template, str) or not DOTTED_ATTRIBUTE.search(template):
        return resource_json
    replaced = DOTTED_ATTRIBUTE.sub(
        lambda m: str(clean_json({"Fn::GetAtt": [m[1], m[2]]}, resources_map)), template
    )
    return {"Fn::Sub": [replaced, value[1]] if isinstance(value, list) else replaced}


def clean_json(resource_json: Any, resources_map: Any) -> Any:
    if isinstance(resource_json, dict) and "Fn::Sub" in resource_json:
        resource_json = sub_dotted(resource_json, resources_map)
    if isinstance(resource_json, dict) and "Fn::Cidr" in resource_json:
        return cidr(*(clean_json(arg, resources_map) for arg in resource_json["Fn::Cidr"]))
    if isinstance(resource_json, dict) and "Fn::GetAZs" in resource_json:
        region = (
            clean_json(resource_json["Fn::GetAZs"], resources_map) or resources_map._region_name
        )
        return [f"{region}{zone}" for zone in "abc"]  # moto would answer us-east-1's zones anywhere
    cleaned = fence.original(parsing, "clean_json")(resource_json, resources_map)
    if isinstance(cleaned, str) and "{{resolve:" in cleaned:
        return DYNAMIC_REFERENCE.sub(lambda m: resolve(m, resources_map), cleaned)
    return cleaned


def cidr(block: str, count: Any, bits: Any) -> list[str]:
    """Fn::Cidr, which moto does not implement: `count` blocks of `bits` host bits."""
    network = ipaddress.ip_network(block)
    return [
        str(n)
        for n in itertools.islice(
            network.subnets(new_prefix=network.max_prefixlen - int(bits)), int(count)
        )
    ]


def resolve(match: re.Match[str], resources_map: Any) -> str:
    backend: Any = secretsmanager_backends[resources_map._account_id][resources_map._region_name]
    value = backend.get_secret_value(
        match["id"], match["version"] or None, match["stage"] or "AWSCURRENT"
    )
    text = str(value["SecretString"])
    return str(json.loads(text)[match["key"]]) if match["key"] else text


def stack_of(resources_map: Any) -> Any:
    backend = cfn_models.cloudformation_backends[resources_map._account_id][
        resources_map._region_name
    ]
    return backend.stacks.get(resources_map.stack_id)


def event(
    resources_map: Any,
    logical_id: str,
    rtype: str,
    status: str,
    physical: str = "",
    reason: str | None = None,
) -> None:
    stack = stack_of(resources_map)
    if stack is None:
        return
    stack.events.append(
        cfn_models.Event(
            stack_id=stack.stack_id,
            stack_name=stack.name,
            logical_resource_id=logical_id,
            physical_resource_id=physical,
            resource_type=rtype,
            resource_status=status,
            resource_status_reason=reason,
            resource_properties=None,
        )
    )


def with_events(
    action: str,
    logical_id: str,
    resource_json: dict[str, Any],
    resources_map: Any,
    account_id: str,
    region_name: str,
) -> Any:
    """moto's create or update of one resource, reported as CloudFormation reports it. A
    resource whose condition is false is left alone (moto would update it anyway)."""
    condition = resource_json.get("Condition")
    if condition and not resources_map.lazy_condition_map[condition]:
        return None
    rtype = resource_json["Type"]
    event(resources_map, logical_id, rtype, f"{action}_IN_PROGRESS")
    moto_step = fence.original(parsing, f"parse_and_{action.lower()}_resource")
    try:
        resource = moto_step(logical_id, resource_json, resources_map, account_id, region_name)
    except Exception as exc:
        if not getattr(exc, "reported", False):  # the innermost resource is the one that failed
            reason = f"{type(exc).__name__}: {exc}"
            event(resources_map, logical_id, rtype, f"{action}_FAILED", reason=reason)
            exc.reported = True  # type: ignore[attr-defined]
        raise
    physical = str(getattr(resource, "physical_resource_id", ""))
    event(resources_map, logical_id, rtype, f"{action}_COMPLETE", physical=physical)
    if action == "CREATE" and resource is not None:
        creation_order(resources_map).append(logical_id)
    return resource


def create_with_events(*args: Any, **kwargs: Any) -> Any:
    return with_events("CREATE", *args, **kwargs)


def update_with_events(*args: Any, **kwargs: Any) -> Any:
    return with_events("UPDATE", *args, **kwargs)


def delete_in_reverse_order(self: Any) -> None:
    """CloudFormation deletes dependents before what they depend on; moto deletes in set order
    and retries. Creation order is a dependency order, so deleting in reverse is faithful;
    moto's retrying delete then handles whatever is left (resources added by an update)."""
    for logical_id in reversed(creation_order(self)):
        resource = self._parsed_resources.get(logical_id)
        if (
            resource is None
            or isinstance(resource, str)
            or logical_id not in self._resource_json_map
        ):
            continue
        stack = stack_of(self)
        if retention.on_delete(self, logical_id, resource, stack.status if stack else ""):
            rtype = self._resource_json_map[logical_id]["Type"]
            physical = str(getattr(resource, "physical_resource_id", ""))
            event(self, logical_id, rtype, "DELETE_SKIPPED", physical)
            self._parsed_resources.pop(logical_id)  # kept: moto's delete must not reach it
            continue
        self._delete_resource(resource, self._resource_json_map[logical_id])
        self._parsed_resources.pop(logical_id)
    fence.original(parsing.ResourceMap, "delete")(self)


def delete_with_events(self: Any, parsed_resource: Any, resource_json: dict[str, Any]) -> None:
    logical_id, rtype = parsed_resource.logical_resource_id, resource_json["Type"]
    physical = str(getattr(parsed_resource, "physical_resource_id", ""))
    event(self, logical_id, rtype, "DELETE_IN_PROGRESS", physical)
    try:
        if not deletion.delete(rtype, parsed_resource, self._account_id, self._region_name):
            fence.original(parsing.ResourceMap, "_delete_resource")(
                self, parsed_resource, resource_json
            )
    except Exception as exc:
        event(
            self,
            logical_id,
            rtype,
            "DELETE_FAILED",
            physical,
            f"{type(exc).__name__}: {exc} (retried)",
        )
        raise
    event(self, logical_id, rtype, "DELETE_COMPLETE", physical)


def execute_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
    change_set = self.change_sets.get(change_set_name) or next(
        (c for c in self.change_sets.values() if c.change_set_name == change_set_name), None
    )
    if change_set is None:
        raise cfn_models.ValidationError(stack_name)
    stack = self.stacks[change_set.stack_id]
    stackguard.adopt(stack, change_set)
    if change_set.change_set_type == "CREATE":
        create(self, stack, change_set)
    else:
        update(stack, change_set)
    change_set.execution_status = "EXECUTE_COMPLETE"
    # "CloudFormation deletes all other change sets associated with the stack because they
    # aren't valid for the updated stack" (previews that were never executed, for one)
    # https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ExecuteChangeSet.html
    for key, other in list(self.change_sets.items()):
        if other.stack_id == stack.stack_id and other is not change_set:
            self.change_sets.pop(key)


def create(backend: Any, stack: Any, change_set: Any) -> None:
    stack.template, stack.parameters = change_set.template, change_set.parameters
    stack._parse_template()
    stack._add_stack_event("CREATE_IN_PROGRESS", resource_status_reason="User Initiated")
    try:
        stack.resource_map = stack._create_resource_map()
        stack.create_resources()
        stack.output_map = stack._create_output_map()
        for export in stack.exports:
            backend.exports[export.name] = export
    except Exception as exc:
        if stack.disable_rollback:  # ExecuteChangeSet DisableRollback: what was built stays
            stack.status = "CREATE_FAILED"
            stack._add_stack_event("CREATE_FAILED", resource_status_reason=str(exc))
            return
        roll_back(stack, f"{type(exc).__name__}: {exc}")


def roll_back(stack: Any, reason: str) -> None:
    stack.status = "ROLLBACK_IN_PROGRESS"
    stack._add_stack_event(
        "ROLLBACK_IN_PROGRESS", resource_status_reason=f"Resource creation failed: {reason}"
    )
    try:
        stack.resource_map.delete()
    except Exception as exc:  # what could not be removed stays listed, as in CloudFormation
        stack.status = "ROLLBACK_FAILED"
        stack._add_stack_event("ROLLBACK_FAILED", resource_status_reason=str(exc))
        return
    stack.resource_map._resource_json_map = {}  # moto's lazy map would recreate them on listing
    stack.status = "ROLLBACK_COMPLETE"
    stack._add_stack_event("ROLLBACK_COMPLETE")


def exports_of_existing_outputs(self: Any) -> list[Any]:
    """Exports of the outputs whose condition holds (moto evaluates every output's export, and
    one that names a resource the conditions left out breaks every DescribeStacks)."""
    conditions = self._resource_map.lazy_condition_map
    found = []
    for value in (self._output_json_map or {}).values():
        if value.get("Export") and conditions.get(value.get("Condition"), True) is not False:
            name = clean_json(value["Export"].get("Name"), self._resource_map)
            exported = clean_json(value.get("Value"), self._resource_map)
            found.append(parsing.Export(self._stack_id, name, exported))
    return found


def list_stack_resources(self: Any) -> Any:
    """The resources that exist, each with the status its last event gave it (moto lists
    condition-false resources as blanks and calls everything CREATE_COMPLETE)."""
    from moto.core.responses import ActionResult

    stack = self.cloudformation_backend.get_stack(self._get_param("StackName"))
    status = {e.logical_resource_id: e.resource_status for e in stack.events}
    summaries = [
        {
            "ResourceStatus": status.get(logical_id, "CREATE_COMPLETE"),
            "LogicalResourceId": logical_id,
            "LastUpdatedTimestamp": stack.creation_time,
            "PhysicalResourceId": str(getattr(resource, "physical_resource_id", "") or ""),
            "ResourceType": getattr(resource, "cf_resource_type", ""),
        }
        for logical_id, resource in stack.resource_map._parsed_resources.items()
        if logical_id in stack.resource_map._resource_json_map and resource is not None
    ]
    return ActionResult({"StackResourceSummaries": summaries})


def delete_stack(self: Any, name_or_stack_id: str) -> None:
    """Delete, or stop at DELETE_FAILED with the reason (moto answers HTTP 500), and leave
    nothing behind that moto's lazy resource map would re-create when the stack is described."""
    stack = self.stacks.get(name_or_stack_id) or next(
        (s for s in self.stacks.values() if s.name == name_or_stack_id), None
    )
    if stack is None:  # CloudFormation accepts deleting a stack that is not there
        return
    stackguard.refuse_protected_delete(stack, name_or_stack_id)
    exports = [export.name for export in stack.exports]
    stack.status = "DELETE_IN_PROGRESS"
    stack._add_stack_event("DELETE_IN_PROGRESS", resource_status_reason="User Initiated")
    try:
        stack.resource_map.delete()
    except Exception as exc:
        deletion.forget_deleted(stack, creation_order(stack.resource_map))
        stack.status = "DELETE_FAILED"
        stack._add_stack_event(
            "DELETE_FAILED", resource_status_reason=f"{type(exc).__name__}: {exc}"
        )
        return
    stack.resource_map._resource_json_map = {}
    stack.output_map = cfn_models.OutputMap(stack.resource_map, {"Outputs": {}}, stack.stack_id)
    stack.status = "DELETE_COMPLETE"
    stack._add_stack_event("DELETE_COMPLETE")
    self.stacks.pop(stack.stack_id, None)
    self.deleted_stacks[stack.stack_id] = stack
    for name in exports:
        self.exports.pop(name, None)


def update(stack: Any, change_set: Any) -> None:
    """Carry out the change set unless the stack policy denies one of its changes (then the
    stack rolls back untouched: stackguard.py)."""
    denied = stackguard.policy_denial(stack.policy, change_set.changes)
    if denied is not None:
        logical_id, reason = denied
        rtype = next(
            c.resource_type for c in change_set.changes if c.logical_resource_id == logical_id
        )
        stackguard.refuse_update(stack, logical_id, rtype, reason)
        return
    stack._add_stack_event("UPDATE_IN_PROGRESS", resource_status_reason="User Initiated")
    try:
        change_set.apply()
    except Exception as exc:
        failed = "UPDATE_FAILED" if stack.disable_rollback else "UPDATE_ROLLBACK_FAILED"
        stack.status = failed
        stack._add_stack_event(failed, resource_status_reason=f"{type(exc).__name__}: {exc}")
        return
    stack.template, stack.parameters = change_set.template, change_set.parameters
    stack._parse_template()
    stack.output_map = stack._create_output_map()
    stack.status = "UPDATE_COMPLETE"
    stack._add_stack_event("UPDATE_COMPLETE")
