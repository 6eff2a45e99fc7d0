"""What AWS would refuse late, refused before any change set: capacity, concurrency, stale values."""

from __future__ import annotations

from typing import Any, Protocol

from botocore.exceptions import ClientError

from loanstack import template
from loanstack.aws.target import Target
from loanstack.errors import DeployError, UsageError
from loanstack.names import (
    BACKUP_DAILY_RETENTION_DAYS,
    BACKUP_VAULT_LOCK_DAYS,
    ENVIRONMENT_TYPE,
    MAX_CAPACITY,
    MIN_CAPACITY_PROD,
    RESERVED_CONCURRENCY,
    VALIDATION_FUNCTION,
)

# Lambda keeps this much of an account's concurrency unreserved (or the whole limit, when the
# limit is below it, as on young accounts): "Configuring reserved concurrency".
# https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html
MIN_UNRESERVED_CONCURRENCY = 100


CONCURRENCY_QUOTA_CODE = "L-B99A9384"  # Service Quotas: Lambda "Concurrent executions"


class Deployment(Protocol):
    """What the checks read of a `stack.deploy.Deployment` (a protocol: no import cycle)."""

    target: Target
    suffix: str
    parameters: dict[str, str]
    template_doc: dict[str, Any]


def backup_problem(values: dict[str, str]) -> str | None:
    """What AWS Backup would refuse, every night, not at deploy: a recovery point kept shorter
    than the vault lock's minimum retention fails its job ("AWS Backup Vault Lock"). CloudFormation
    Rules cannot compare numbers, so the tool does.
    https://docs.aws.amazon.com/aws-backup/latest/devguide/vault-lock.html"""
    lock = int(values.get(BACKUP_VAULT_LOCK_DAYS, "0") or 0)
    daily = int(values.get(BACKUP_DAILY_RETENTION_DAYS, "35") or 35)
    if values.get(ENVIRONMENT_TYPE) == "prod" and lock > daily:
        return (
            f"BackupVaultLockDays={lock} is above BackupDailyRetentionDays={daily}: every daily "
            "backup job would fail; lower the lock or keep daily backups longer"
        )
    return None


def capacity_problem(values: dict[str, str]) -> str | None:
    """What RDS would refuse about the Serverless v2 range, late (after the VPC and NAT are
    built): ACUs come in steps of 0.5 and the floor may not exceed the ceiling. CloudFormation
    Rules cannot compare numbers, so the tool does. (ServerlessV2ScalingConfiguration, RDS API)"""
    floor = float(values.get(MIN_CAPACITY_PROD, "0.5"))
    ceiling = float(values.get(MAX_CAPACITY, "1"))
    for name, acu in ((MIN_CAPACITY_PROD, floor), (MAX_CAPACITY, ceiling)):
        if (acu * 2) != int(acu * 2):
            return f"{name}={acu:g}: Aurora capacity comes in steps of 0.5 ACU"
    if values.get(ENVIRONMENT_TYPE) == "prod" and floor > ceiling:
        return (
            f"{MIN_CAPACITY_PROD}={floor:g} is above {MAX_CAPACITY}={ceiling:g}: "
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
        f"--param {RESERVED_CONCURRENCY}={fits} (or 0 for no reservation)"
        if fits > 0
        else f"--param {RESERVED_CONCURRENCY}=0 (no reservation)"
    )
    return (
        f"reserving {requested} concurrent executions for the validation function would leave "
        f"{left} of the account's {limit} unreserved in {region}; Lambda keeps at least {floor}. "
        f"Deploy with {advice}, or raise the quota (Service Quotas, Lambda {CONCURRENCY_QUOTA_CODE})"
    )


def requested_reservation(d: Deployment, current: dict[str, Any] | None) -> int:
    """The ValidationReservedConcurrency this deployment asks for (given, kept, or default)."""
    if RESERVED_CONCURRENCY in d.parameters:
        return int(float(d.parameters[RESERVED_CONCURRENCY]))
    for p in (current or {}).get("Parameters", []):
        if p["ParameterKey"] == RESERVED_CONCURRENCY:
            return int(float(p["ParameterValue"]))
    return int(d.template_doc["Parameters"][RESERVED_CONCURRENCY]["Default"])


def validation_function_name(d: Deployment) -> str:
    """The validation function's name as the template gives it for these parameters."""
    env = template.instantiate(d.template_doc, d.parameters)
    return str(env.resources[VALIDATION_FUNCTION].properties["FunctionName"])


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
        reply = lam.get_function_concurrency(FunctionName=validation_function_name(d))
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
