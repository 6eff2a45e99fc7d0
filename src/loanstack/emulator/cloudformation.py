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
import threading
import weakref
from typing import Any

from moto.cloudformation import models as cfn_models
from moto.cloudformation import parsing
from moto.cloudformation import responses as cfn_responses
from moto.secretsmanager.models import secretsmanager_backends

from loanstack.emulator import base, deletion, fence, retention

DYNAMIC_REFERENCE = re.compile(
    r"\{\{resolve:secretsmanager:(?P<id>arn:[^:]+:secretsmanager:[^:]+:\d+:secret:[^:}]+|[^:}]+)"
    r"(?::SecretString:(?P<key>[^:}]*))?(?::(?P<stage>[^:}]*))?(?::(?P<version>[^:}]*))?\}\}"
)

_creation_orders: dict[int, list[str]] = {}  # per live ResourceMap (moto's, not ours to extend)
_request = threading.local()  # DescribeChangeSet's IncludePropertyValues, while it answers


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


def environment(template_dict: dict[str, Any], parameters: dict[str, Any], stack: Any) -> Any:
    from loanstack import template

    context = template.Context(region=stack.region_name, account_id=stack.account_id)
    params = {k: str(v) for k, v in parameters.items() if v is not None}
    return template.instantiate(template_dict, params, context)


def diff_with_parameters(self: Any) -> list[Any]:
    """The changes CloudFormation would list: resources that come or go with the template or
    its conditions, and those whose properties resolve differently under the new parameters
    (moto marks every resource that mentions any parameter it was not given at creation)."""
    new = environment(self.template_dict, self.parameters or {}, self.stack)
    rm = self.stack.resource_map
    existing = [k for k in rm._resource_json_map if rm._parsed_resources.get(k) is not None]
    old = None
    if existing:
        old = environment(rm._template, dict(rm.resolved_parameters), self.stack).resources
    changes = [Change("Add", n, r.type) for n, r in new.resources.items() if n not in existing]
    for name in existing:
        if name not in new.resources:
            changes.append(Change("Remove", name, rm._resource_json_map[name]["Type"]))
        elif old is not None and old[name].properties != new.resources[name].properties:
            before, after = old[name].properties, new.resources[name].properties
            changes.append(Change("Modify", name, new.resources[name].type, before, after))
    return follow_references(changes, new.resources, existing)


def describe_change_set(self: Any) -> Any:
    """moto's DescribeChangeSet; whether the caller asked for property values holds for this
    request's thread until the answer is serialised (set again by every request)."""
    _request.include_values = self._get_bool_param("IncludePropertyValues", False)
    return fence.original(cfn_responses.CloudFormationResponse, "describe_change_set")(self)


class Change(cfn_models.Change):
    """A change as DescribeChangeSet reports it: for a modification, one `Details` entry per
    top-level property that changes, `RequiresRecreation` Always for the registry schema's
    createOnlyProperties (cfn-lint ships the schemas) else Never, and `Replacement` True when
    any of them is Always. Before and after values only when DescribeChangeSet is called with
    IncludePropertyValues, as AWS does:
    https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ResourceTargetDefinition.html
    """

    def __init__(
        self,
        action: str,
        logical_id: str,
        resource_type: str,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(action=action, logical_resource_id=logical_id, resource_type=resource_type)
        self._details: list[dict[str, Any]] = []
        self._values: list[dict[str, str]] = []
        if action != "Modify":
            return
        from loanstack import template

        create_only = set(template.resource_schema(resource_type).get("createOnlyProperties", []))
        old, new = before or {}, after or {}
        for prop in sorted(set(old) | set(new)):
            if old.get(prop) == new.get(prop):
                continue
            kind = "Add" if prop not in old else ("Remove" if prop not in new else "Modify")
            recreate = "Always" if f"/properties/{prop}" in create_only else "Never"
            target = {
                "Attribute": "Properties",
                "Name": prop,
                "Path": f"/Properties/{prop}",
                "RequiresRecreation": recreate,
                "AttributeChangeType": kind,
            }
            self._details.append(
                {"Target": target, "Evaluation": "Static", "ChangeSource": "DirectModification"}
            )
            self._values.append({k: shown(v) for k, v in (("BeforeValue", old.get(prop)),
                                 ("AfterValue", new.get(prop))) if v is not None})  # fmt: skip
        self.settle()

    def settle(self) -> None:
        """Replacement from the details, as ResourceChange defines it: True when a static change
        requires recreation, Conditional when only a dynamic one (a reference to a resource
        that is itself replaced) does, else False."""
        recreate = {(d["Evaluation"], d["Target"]["RequiresRecreation"]) for d in self._details}
        replaced = ("Static", "Always") in recreate
        conditional = ("Dynamic", "Always") in recreate
        self.replacement = "True" if replaced else ("Conditional" if conditional else "False")
        self.scope = ["Properties"] if self._details else []

    def add_reference(self, prop: str, source: str, causing: str) -> None:
        """A detail for a property whose value follows a replaced resource (Ref or GetAtt):
        Dynamic, as CloudFormation cannot know the new value before it replaces the target.
        https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_ResourceChangeDetail.html
        """
        from loanstack import template

        schema = template.resource_schema(self.resource_type)
        create_only = set(schema.get("createOnlyProperties", []))
        path = f"/properties/{prop}"
        nested = any(c == path or c.startswith(path + "/") for c in create_only)
        target = {
            "Attribute": "Properties",
            "Name": prop,
            "Path": f"/Properties/{prop}",
            "RequiresRecreation": "Always" if nested else "Never",
            "AttributeChangeType": "Modify",
        }
        detail = {"Target": target, "Evaluation": "Dynamic", "ChangeSource": source,
                  "CausingEntity": causing}  # fmt: skip
        if detail not in self._details:
            self._details.append(detail)
            self._values.append({})
        self.settle()

    @property
    def details(self) -> list[dict[str, Any]]:
        if not getattr(_request, "include_values", False):
            return self._details
        return [
            {**d, "Target": {**d["Target"], **values}}
            for d, values in zip(self._details, self._values, strict=True)
        ]


def shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def apply_change_set(self: Any) -> None:
    """Carry out exactly the listed changes: removals in reverse creation order, additions,
    then modifications, with the new template, parameters and conditions in force."""
    rm = self.stack.resource_map
    wanted = {
        a: [c.logical_resource_id for c in self.changes if c.action == a]
        for a in ("Add", "Modify", "Remove")
    }
    order = creation_order(rm)
    stack = stack_of(rm)
    for name in sorted(wanted["Remove"], key=lambda n: -order.index(n) if n in order else 0):
        resource = rm._parsed_resources[name]
        # a resource an update removes obeys its DeletionPolicy too (the old template's)
        if retention.on_delete(rm, name, resource, stack.status if stack else ""):
            kept = str(getattr(resource, "physical_resource_id", ""))
            event(rm, name, rm._resource_json_map[name]["Type"], "DELETE_SKIPPED", kept)
        else:
            rm._delete_resource(resource, rm._resource_json_map[name])
        rm._parsed_resources.pop(name)
    rm._template, rm.input_parameters = self.template_dict, self.parameters
    rm.load_mapping()
    rm.load_parameters()
    rm.load_conditions()
    rm._resource_json_map = self.template_dict["Resources"]
    for name in wanted["Add"]:
        _ = rm[name]
    physical = {n: physical_id(r) for n, r in rm._parsed_resources.items()}
    for change in (c for c in self.changes if c.action == "Modify"):
        name = change.logical_resource_id
        if only_follows(change) and not moved(change, rm, physical):
            continue  # what it refers to kept its id (moto updated it in place): nothing to do
        updated = parsing.parse_and_update_resource(
            name, rm._resource_json_map[name], rm, rm._account_id, rm._region_name
        )
        if updated is not None:  # None: moto cannot update the type; the resource stays listed
            rm._parsed_resources[name] = updated


def execute_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
    change_set = self.change_sets.get(change_set_name) or next(
        (c for c in self.change_sets.values() if c.change_set_name == change_set_name), None
    )
    if change_set is None:
        raise cfn_models.ValidationError(stack_name)
    stack = self.stacks[change_set.stack_id]
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
    exports = [export.name for export in stack.exports]
    stack.status = "DELETE_IN_PROGRESS"
    stack._add_stack_event("DELETE_IN_PROGRESS", resource_status_reason="User Initiated")
    try:
        stack.resource_map.delete()
    except Exception as exc:
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
    stack._add_stack_event("UPDATE_IN_PROGRESS", resource_status_reason="User Initiated")
    try:
        change_set.apply()
    except Exception as exc:
        stack.status = "UPDATE_ROLLBACK_FAILED"
        stack._add_stack_event(
            "UPDATE_ROLLBACK_FAILED", resource_status_reason=f"{type(exc).__name__}: {exc}"
        )
        return
    stack.template, stack.parameters = change_set.template, change_set.parameters
    stack._parse_template()
    stack.output_map = stack._create_output_map()
    stack.status = "UPDATE_COMPLETE"
    stack._add_stack_event("UPDATE_COMPLETE")


# --- one stack per name ---------------------------------------------------------------------


def create_change_set(
    self: Any,
    stack_name: str,
    change_set_name: str,
    template: str,
    parameters: dict[str, str],
    description: str,
    change_set_type: str,
    notification_arns: list[str] | None = None,
    tags: dict[str, str] | None = None,
    role_arn: str | None = None,
) -> tuple[str, str]:
    """One stack per name, as CloudFormation keeps it: a CREATE change set for a name whose
    stack is REVIEW_IN_PROGRESS (created by an earlier CREATE change set, no resources yet) is
    another change set of that stack; for a name whose stack exists otherwise it is refused, and
    so is an UPDATE of a stack still in review. moto made a second stack of the same name each
    time, and a deploy after a preview then followed the empty twin forever.
    https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CreateChangeSet.html
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/view-stack-events.html
    (REVIEW_IN_PROGRESS: "the stack has an expected StackId, but no template or resources")
    """
    existing = next((s for s in self.stacks.values() if stack_name in (s.name, s.stack_id)), None)
    reviewing = existing is not None and existing.status == "REVIEW_IN_PROGRESS"
    if existing is not None and change_set_type == "CREATE" and not reviewing:
        raise cfn_models.ValidationError(
            message=f"Stack [{stack_name}] already exists and cannot be created again with the "
            f"changeSet [{change_set_name}]."
        )
    if existing is not None and change_set_type == "UPDATE" and reviewing:
        raise cfn_models.ValidationError(
            message=f"Stack:{existing.stack_id} is in REVIEW_IN_PROGRESS state and can not be "
            "updated."
        )
    if existing is None or not (reviewing and change_set_type == "CREATE"):
        moto_create = fence.original(cfn_models.CloudFormationBackend, "create_change_set")
        return moto_create(  # type: ignore[no-any-return]
            self, stack_name, change_set_name, template, parameters, description,
            change_set_type, notification_arns, tags, role_arn,
        )  # fmt: skip
    from moto.cloudformation.utils import generate_changeset_id, validate_create_change_set

    validate_create_change_set(change_set_name)
    change_set_id = generate_changeset_id(change_set_name, self.region_name, self.account_id)
    change_set = cfn_models.ChangeSet(
        change_set_type=change_set_type,
        change_set_id=change_set_id,
        change_set_name=change_set_name,
        stack=existing,
        template=template,
        parameters=parameters,
        description=description,
        notification_arns=notification_arns,
        tags=tags,
        role_arn=role_arn,
    )
    change_set.status, change_set.execution_status = "CREATE_COMPLETE", "AVAILABLE"
    self.change_sets[change_set_id] = change_set
    return change_set_id, str(existing.stack_id)


# --- change sets follow references to replaced resources ----------------------------------------


def follow_references(
    changes: list[Any], resources: dict[str, Any], existing: list[str]
) -> list[Any]:
    """CloudFormation lists, besides what the template changes directly, every resource whose
    properties refer (Ref, Fn::GetAtt, ${...} in Fn::Sub) to a resource that is replaced, since
    the reference's value (the physical id, an attribute) changes with it: Evaluation Dynamic,
    ChangeSource ResourceReference or ResourceAttribute, CausingEntity the target. A referring
    property that is create-only makes the referrer a Conditional replacement, whose own
    referrers are listed in turn.
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-updating-stacks-changesets-samples.html
    """
    by_name = {c.logical_resource_id: c for c in changes}
    replaced = {n for n, c in by_name.items() if c.action == "Modify" and c.replacement == "True"}
    pending = set(replaced)
    while pending:
        target = pending.pop()
        for name in existing:
            if name not in resources or name == target:
                continue
            known = by_name.get(name)
            if known is not None and known.action != "Modify":
                continue
            for prop, value in sorted(resources[name].properties.items()):
                for source, causing in sorted(referring(value, target)):
                    if known is None:
                        known = by_name[name] = Change("Modify", name, resources[name].type)
                        changes.append(known)
                    known.add_reference(prop, source, causing)
            if known is not None and known.replacement != "False" and name not in replaced:
                replaced.add(name)
                pending.add(name)
    return changes


def referring(node: Any, target: str) -> set[tuple[str, str]]:
    """How `node` refers to the resource `target`: (ChangeSource, CausingEntity) pairs."""
    found: set[tuple[str, str]] = set()
    if isinstance(node, list):
        for item in node:
            found |= referring(item, target)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and value == target:
                found.add(("ResourceReference", target))
            elif key == "Fn::GetAtt":
                name, attribute = value if isinstance(value, list) else value.split(".", 1)
                if name == target:
                    found.add(("ResourceAttribute", f"{target}.{attribute}"))
            elif key == "Fn::Sub":
                text, variables = (value, {}) if isinstance(value, str) else value
                for found_name in SUB_VARIABLE.findall(text):
                    head, _, attribute = found_name.partition(".")
                    if head == target and head not in variables:
                        kind = "ResourceAttribute" if attribute else "ResourceReference"
                        found.add((kind, found_name))
                found |= referring(variables, target)
            else:
                found |= referring(value, target)
    return found


SUB_VARIABLE = re.compile(r"\$\{([^!}][^}]*)\}")


def physical_id(resource: Any) -> str:
    return str(getattr(resource, "physical_resource_id", "") or "")


def only_follows(change: Any) -> bool:
    """Listed only because it refers to a resource that may be replaced (no change of its own)."""
    details = getattr(change, "_details", [])
    return bool(details) and all(d["Evaluation"] == "Dynamic" for d in details)


def moved(change: Any, rm: Any, physical: dict[str, str]) -> bool:
    """Whether a resource this change follows got a new physical id during this update."""
    causes = {d["CausingEntity"].split(".")[0] for d in getattr(change, "_details", [])}
    return any(physical_id(rm._parsed_resources.get(c)) != physical.get(c, "") for c in causes)
