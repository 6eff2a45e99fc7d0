"""DeletionPolicy and UpdateReplacePolicy as CloudFormation applies them, for the emulator.

moto reads a resource's DeletionPolicy only as the literal "Retain" and knows nothing of the
`AWS::LanguageExtensions` transform, which lets the template write
`{"Fn::If": ["IsProduction", "Snapshot", "Delete"]}` there (R6 amended: prod keeps its data).
So, as the transform does before CloudFormation sees the template, `load_expanding_policies`
resolves such a function with the stack's own conditions; `on_delete` then does what the
resolved policy says when the stack deletes the resource:

- Retain: the resource stays (moto's own rule);
- RetainExceptOnCreate: the resource stays, unless the stack is rolling back its creation;
- Snapshot (an Aurora cluster): a final cluster snapshot is taken, then the cluster goes.

https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/function-refs-in-policy-attributes.html
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-deletionpolicy.html
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from moto.cloudformation import parsing
from moto.cloudformation.exceptions import ValidationError
from moto.rds.models import rds_backends

from loanstack.emulator import fence
from loanstack.template import POLICY_ATTRIBUTES

KEPT = ("Retain", "RetainExceptOnCreate")
ROLLING_BACK = "ROLLBACK_IN_PROGRESS"


def resolve_policy(node: Any, conditions: Mapping[str, Any]) -> str:
    """The plain option a policy attribute's Fn::If chooses (the only function the transform
    allows there that this template uses); anything else is the transform's validation error."""
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and set(node) == {"Fn::If"} and len(node["Fn::If"]) == 3:
        name, when_true, when_false = node["Fn::If"]
        if name not in conditions:
            raise ValidationError(message=f"Template error: unresolved condition {name}")
        return resolve_policy(when_true if conditions[name] else when_false, conditions)
    raise ValidationError(message=f"Template error: unsupported policy value {node!r}")


def load_expanding_policies(self: Any) -> None:
    """moto's ResourceMap.load, then every policy attribute resolved for this stack."""
    fence.original(parsing.ResourceMap, "load")(self)
    for raw in self._resource_json_map.values():
        for attr in POLICY_ATTRIBUTES:
            if isinstance(raw.get(attr), dict):
                raw[attr] = resolve_policy(raw[attr], self.lazy_condition_map)


def on_delete(resources_map: Any, logical_id: str, resource: Any, status: str) -> bool:
    """Apply the resource's DeletionPolicy before the stack deletes it; True when it stays.

    `status` is the stack's: a failed creation's rollback deletes RetainExceptOnCreate
    resources (there is nothing to keep), any other delete keeps them."""
    raw = resources_map._resource_json_map.get(logical_id, {})
    # an update swaps in the new template without `load`: resolve with the conditions in force
    policy = resolve_policy(raw.get("DeletionPolicy", "Delete"), resources_map.lazy_condition_map)
    if policy == "Retain" or (policy == "RetainExceptOnCreate" and status != ROLLING_BACK):
        return True
    if policy == "Snapshot" and raw.get("Type") == "AWS::RDS::DBCluster":
        final_snapshot(resources_map, logical_id, str(resource.physical_resource_id))
    return False


def final_snapshot(resources_map: Any, logical_id: str, cluster_id: str) -> str:
    """The snapshot CloudFormation leaves of a deleted cluster, named as it names them
    (stack name, logical id, a random part), tagged with where it came from."""
    stack_name = resources_map["AWS::StackName"]
    name = f"{stack_name}-{logical_id}-snapshot-{secrets.token_hex(6)}".lower()
    backend = rds_backends[resources_map._account_id][resources_map._region_name]
    backend.create_db_cluster_snapshot(
        cluster_id,
        name,
        tags=[
            {"Key": "aws:cloudformation:stack-name", "Value": stack_name},
            {"Key": "aws:cloudformation:logical-id", "Value": logical_id},
        ],
    )
    return name
