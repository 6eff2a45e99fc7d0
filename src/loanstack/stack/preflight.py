"""What AWS would refuse late, refused before any change set: capacity, concurrency, stale values."""

from __future__ import annotations

from typing import Any, Protocol

from botocore.exceptions import ClientError

from loanstack import template
from loanstack.aws.target import Target
from loanstack.errors import DeployError, UsageError


class Deployment(Protocol):
    """What the checks read of a `stack.deploy.Deployment` (a protocol: no import cycle)."""

    target: Target
    suffix: str
    parameters: dict[str, str]
    template_doc: dict[str, Any]


# Lambda keeps this much of an account's concurrency unreserved (or the whole limit, when the
# limit is below it, as on young accounts): "Configuring reserved concurrency".
# https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html
MIN_UNRESERVED_CONCURRENCY = 100


CONCURRENCY_QUOTA_CODE = "L-B99A9384"  # Service Quotas: Lambda "Concurrent executions"


def capacity_problem(values: dict[str, str]) -> str | None:
    """What RDS would refuse about the Serverless v2 range, late (after the VPC and NAT are
    built): ACUs come in steps of 0.5 and the floor may not exceed the ceiling. CloudFormation
    Rules cannot compare numbers, so the tool does. (ServerlessV2ScalingConfiguration, RDS API)"""
    floor = float(values.get("DBServerlessMinCapacityProd", "0.5"))
    ceiling = float(values.get("DBServerlessMaxCapacity", "1"))
    for name, acu in (("DBServerlessMinCapacityProd", floor), ("DBServerlessMaxCapacity", ceiling)):
        if (acu * 2) != int(acu * 2):
            return f"{name}={acu:g}: Aurora capacity comes in steps of 0.5 ACU"
    if values.get("EnvironmentType") == "prod" and floor > ceiling:
        return (
            f"DBServerlessMinCapacityProd={floor:g} is above DBServerlessMaxCapacity={ceiling:g}: "
            "raise the maximum or lower the floor"
        )
    return None


def concurrency_shortfall(
    limit: int, unreserved: int, requested: int, held: int, region: str
) -> str | None:
    """Why reserving `requested` (the function holds `held` today) does not fit, or None."""
    floor = min(MIN_UNRESERVED_CONCURRENCY, limit)
    left = unreserved + held - requested
    if requested == 0 or left >= floor:
        return None
    fits = unreserved + held - floor
    advice = (
        f"--param ValidationReservedConcurrency={fits} (or 0 for no reservation)"
        if fits > 0
        else "--param ValidationReservedConcurrency=0 (no reservation)"
    )
    return (
        f"reserving {requested} concurrent executions for the validation function would leave "
        f"{left} of the account's {limit} unreserved in {region}; Lambda keeps at least {floor}. "
        f"Deploy with {advice}, or raise the quota (Service Quotas, Lambda {CONCURRENCY_QUOTA_CODE})"
    )


def requested_reservation(d: Deployment, current: dict[str, Any] | None) -> int:
    """The ValidationReservedConcurrency this deployment asks for (given, kept, or default)."""
    if "ValidationReservedConcurrency" in d.parameters:
        return int(float(d.parameters["ValidationReservedConcurrency"]))
    for p in (current or {}).get("Parameters", []):
        if p["ParameterKey"] == "ValidationReservedConcurrency":
            return int(float(p["ParameterValue"]))
    return int(d.template_doc["Parameters"]["ValidationReservedConcurrency"]["Default"])


def check_concurrency(d: Deployment, current: dict[str, Any] | None) -> None:
    """Refuse, before any change set, a reservation the account cannot give (CREATE would fail
    with "...decreases account's UnreservedConcurrentExecution below its minimum value")."""
    requested = requested_reservation(d, current)
    if requested == 0:
        return
    lam = d.target.client("lambda")
    limits = lam.get_account_settings()["AccountLimit"]
    held = 0
    try:
        reply = lam.get_function_concurrency(FunctionName=f"lambda-loanvalidator-{d.suffix}")
        held = int(reply.get("ReservedConcurrentExecutions", 0))
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
    problem = concurrency_shortfall(
        int(limits["ConcurrentExecutions"]),
        int(limits["UnreservedConcurrentExecutions"]),
        requested,
        held,
        d.target.region,
    )
    if problem:
        raise DeployError(problem)


def refuse_stale_previous_values(d: Deployment, current: dict[str, Any] | None) -> None:
    """A value kept from the last deploy that this template no longer allows (the old default
    db.t4g.medium, an engine before 3.08) would fail CreateChangeSet: say which and what to pass."""
    declared = d.template_doc.get("Parameters", {})
    for p in (current or {}).get("Parameters", []):
        key, value = p["ParameterKey"], str(p.get("ParameterValue", ""))
        if key in d.parameters or key not in declared:
            continue
        problem = template.constraint_violation(declared[key], value)
        if problem:
            default = declared[key].get("Default")
            fix = f"--param {key}={default}" if default is not None else f"--param {key}=<value>"
            raise UsageError(
                f"the stack's {key}={value!r} is no longer allowed ({problem}): deploy with {fix}"
            )
