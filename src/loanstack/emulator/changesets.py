"""Change sets as CloudFormation makes them: one stack per name, what changes (and what refers
to a replaced resource), property values on request, and carrying out exactly what is listed.

Split from the engine (cloudformation.py: stack lifecycle, events, deletion), which this module
builds on; protections (termination protection, stack policies) are in stackguard.py.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

from moto.cloudformation import models as cfn_models
from moto.cloudformation import parsing
from moto.cloudformation import responses as cfn_responses

from loanstack.emulator import fence, retention
from loanstack.emulator.cloudformation import creation_order, event, stack_of

_request = threading.local()  # DescribeChangeSet's IncludePropertyValues, while it answers


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
