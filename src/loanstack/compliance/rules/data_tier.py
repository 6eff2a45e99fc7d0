"""R9: the data tier. What the Data API refuses to run on (T instance classes) and the strict
sql_mode that makes Aurora MySQL refuse a value rather than clip it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from loanstack.compliance.rules.registry import Flag, check
from loanstack.compliance.rules.shared import cluster_parameters
from loanstack.template import Environment, references


def burstable(instance_class: Any) -> bool:
    return isinstance(instance_class, str) and instance_class.startswith("db.t")


@check(
    "LS009",
    "R9",
    "No T instance class reachable on a cluster with the Data API (AWS does not run it there)",
    "https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.html#data-api.limitations",
)
def data_api_instance_class(env: Environment) -> Iterator[Flag]:
    clusters = {
        c.logical_id
        for c in env.of_type("AWS::RDS::DBCluster")
        if c.properties.get("EnableHttpEndpoint") is True
    }
    for db in env.of_type("AWS::RDS::DBInstance"):
        if not references(db.properties.get("DBClusterIdentifier")) & clusters:
            continue
        raw = db.raw.get("Properties", {}).get("DBInstanceClass")
        offered = [db.properties.get("DBInstanceClass")]
        for parameter in references(raw) & set(env.template.get("Parameters", {})):
            spec = env.template["Parameters"][parameter]
            offered += [spec.get("Default"), *spec.get("AllowedValues", [])]
        for cls in sorted({str(c) for c in offered if burstable(c)}):
            yield Flag(db.logical_id, f"{cls} offered: the Data API refuses T classes")


STRICT_MODES = {"STRICT_TRANS_TABLES", "STRICT_ALL_TABLES"}


@check(
    "LS023",
    "R9",
    "The cluster's parameter group sets a strict sql_mode (Aurora's default clips, not refuses)",
    "https://dev.mysql.com/doc/refman/8.0/en/out-of-range-and-overflow.html",
)
def strict_sql_mode(env: Environment) -> Iterator[Flag]:
    for cluster, owner, parameters in cluster_parameters(env):
        modes = {m.strip().upper() for m in str(parameters.get("sql_mode", "")).split(",")}
        if not modes & STRICT_MODES:
            yield Flag(
                owner,
                f"sql_mode of {cluster.logical_id} is not strict: an out-of-range or over-long "
                "value is clipped with a warning instead of refused",
            )
