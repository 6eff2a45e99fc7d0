"""What several concerns read from one environment the same way: whether it is production,
which key a property names, the ARN a resource will have, the cluster's parameter groups. One
definition each, so two checks cannot disagree on, say, which environment is production."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from loanstack.names import ENVIRONMENT_TYPE
from loanstack.template import Environment, Resource, references


def is_production(env: Environment) -> bool:
    return env.parameters.get(ENVIRONMENT_TYPE) == "prod"


def key_of(env: Environment, node: Any) -> str | None:
    keys = {k.logical_id for k in env.of_type("AWS::KMS::Key")}
    found = references(node) & keys
    return found.pop() if found else None


def arn(env: Environment, service: str, resource: str, region: bool = True) -> str:
    c = env.context
    return f"arn:{c.partition}:{service}:{c.region if region else ''}:{c.account_id}:{resource}"


def cluster_parameters(env: Environment) -> Iterator[tuple[Resource, str, dict[str, Any]]]:
    """(cluster, its parameter group's logical id, the group's parameters) per Aurora cluster;
    the cluster itself when it names no group of this template (AWS's default group)."""
    for cluster in env.of_type("AWS::RDS::DBCluster"):
        named = references(cluster.properties.get("DBClusterParameterGroupName"))
        groups = [env.resources[g] for g in sorted(named) if g in env.resources]
        if not groups:
            yield cluster, cluster.logical_id, {}
        for group in groups:
            yield cluster, group.logical_id, dict(group.properties.get("Parameters") or {})
