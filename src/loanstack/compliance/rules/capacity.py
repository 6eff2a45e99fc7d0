"""R11 and R14: capacity. Reserved Lambda concurrency an account may not have (it must keep 100
unreserved), and the alarm that tells a Serverless v2 writer is near its maximum ACUs."""

from __future__ import annotations

from collections.abc import Iterator

from loanstack.compliance.rules.registry import Flag, check
from loanstack.template import Environment, references


@check(
    "LS011",
    "R11",
    "Reserved concurrency only where a parameter can switch it off (accounts keep 100 unreserved)",
    "https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html",
)
def switchable_reservations(env: Environment) -> Iterator[Flag]:
    for fn in env.of_type("AWS::Lambda::Function"):
        raw = fn.raw.get("Properties", {}).get("ReservedConcurrentExecutions")
        if raw is None:
            continue
        switch = raw.get("Fn::If") if isinstance(raw, dict) else None
        if not (switch and {"Ref": "AWS::NoValue"} in switch[1:]):
            yield Flag(
                fn.logical_id,
                "reserved concurrency cannot be switched off: CREATE fails on an account "
                "without the headroom",
            )


def alarmed_metrics(env: Environment, logical_id: str) -> set[str]:
    """Metric names of the alarms that watch one resource (through a dimension)."""
    return {
        str(a.properties.get("MetricName"))
        for a in env.of_type("AWS::CloudWatch::Alarm")
        if logical_id in references(a.properties.get("Dimensions", []))
    }


@check(
    "LS025",
    "R14",
    "A Serverless v2 writer is alarmed on ACUUtilization, not on FreeableMemory (relative to the "
    "maximum ACUs, it may never fall low)",
    "https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-serverless-v2.viewing.monitoring.html",
)
def serverless_alarms(env: Environment) -> Iterator[Flag]:
    for db in env.of_type("AWS::RDS::DBInstance"):
        if db.properties.get("DBInstanceClass") != "db.serverless":
            continue
        if db.properties.get("PromotionTier", 1) != 0:
            continue  # the writer; a reader follows it
        metrics = alarmed_metrics(env, db.logical_id)
        if "ACUUtilization" not in metrics:
            yield Flag(db.logical_id, "Serverless v2 writer without an ACUUtilization alarm")
        if "FreeableMemory" in metrics:
            yield Flag(
                db.logical_id,
                "FreeableMemory alarm on Serverless v2: measured against the maximum ACUs, "
                "a low threshold may never be crossed",
            )
