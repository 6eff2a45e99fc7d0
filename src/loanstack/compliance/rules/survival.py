"""R6: what a delete leaves behind. Dev is fully destroyable; prod keeps a final cluster
snapshot, its key (a scheduled deletion waits 30 days) and its buckets, and a backup plan keeps
its recovery points in a vault of the stack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from loanstack.cfnlint_data import stateful_types
from loanstack.compliance.rules.registry import Flag, check
from loanstack.compliance.rules.shared import is_production, key_of
from loanstack.template import POLICY_ATTRIBUTES, Environment, references

KEEPING_POLICIES = {"Retain", "RetainExceptOnCreate", "Snapshot"}


KEPT = ("Retain", "RetainExceptOnCreate")  # DeletionPolicy options that leave the resource


def protection_flags(node: Any, path: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key.startswith("DeletionProtection") and value in (True, "true", "ACTIVE"):
                yield f"{path}{key}"
            yield from protection_flags(value, f"{path}{key}.")
    elif isinstance(node, list):
        for item in node:
            yield from protection_flags(item, path)


def survivors(env: Environment) -> dict[str, dict[str, tuple[str, ...]]]:
    """Prod's profile (R6 amended): logical id -> policy attribute -> the options it may have.

    The cluster leaves a final snapshot on delete and on a replacing update; what that snapshot
    and the documents need survives a delete: the key that encrypts the cluster, every bucket
    (documents, trail archive, access logs) and every backup vault. A replacing update cannot lose the buckets
    (CloudFormation refuses to replace a custom-named resource) and a replaced key only enters
    its 30-day deletion window, so their UpdateReplacePolicy is not constrained here.
    """
    keep: dict[str, dict[str, tuple[str, ...]]] = {}
    for cluster in env.of_type("AWS::RDS::DBCluster"):
        keep[cluster.logical_id] = {
            "DeletionPolicy": ("Snapshot",),
            "UpdateReplacePolicy": ("Snapshot",),
        }
        key = key_of(env, cluster.properties.get("KmsKeyId"))
        if key is not None:
            keep[key] = {"DeletionPolicy": KEPT}
    for kept in env.of_type("AWS::S3::Bucket", "AWS::Backup::BackupVault"):
        keep[kept.logical_id] = {"DeletionPolicy": KEPT}  # a vault holds the recovery points
    return keep


@check(
    "LS006",
    "R6",
    "Dev fully destroyable (no Retain/Snapshot, no deletion protection, stateful types say "
    "Delete); prod keeps a final cluster snapshot, its key and the buckets",
    "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-deletionpolicy.html",
)
def destroyable(env: Environment) -> Iterator[Flag]:
    profile = survivors(env) if is_production(env) else {}
    for r in env.resources.values():
        wanted = profile.get(r.logical_id, {})
        for attr in POLICY_ATTRIBUTES:
            value = r.raw.get(attr)
            shown = value if isinstance(value, str) else json.dumps(value)
            if attr in wanted:
                if value not in wanted[attr]:
                    yield Flag(
                        r.logical_id,
                        f"{attr} {shown}: prod must keep it ({' or '.join(wanted[attr])})",
                    )
            elif shown in KEEPING_POLICIES:
                yield Flag(r.logical_id, f"{attr} {shown} keeps data after delete")
            elif r.type in stateful_types() and value != "Delete":
                yield Flag(r.logical_id, f"stateful resource must state {attr} Delete")
        for flag in protection_flags(r.properties):
            yield Flag(r.logical_id, f"{flag} is on")


DELETION_WINDOW = {"prod": 30, "dev": 7}  # days; KMS allows 7-30


@check(
    "LS028",
    "R6",
    "A scheduled key deletion waits 30 days in prod (time to cancel it), 7 in dev",
    "https://docs.aws.amazon.com/kms/latest/developerguide/deleting-keys.html",
)
def key_deletion_window(env: Environment) -> Iterator[Flag]:
    wanted = DELETION_WINDOW["prod" if is_production(env) else "dev"]
    for key in env.of_type("AWS::KMS::Key"):
        days = key.properties.get("PendingWindowInDays", 30)
        if days != wanted:
            yield Flag(key.logical_id, f"PendingWindowInDays {days}, not {wanted}")


BACKUP_DAYS = {"daily": 35, "monthly": 365}  # issue 22 item 6 (the bank's profile)


@check(
    "LS032",
    "R6",
    "A backup plan keeps daily recovery points 35+ days and monthly ones 365+, in a vault of the "
    "stack encrypted with the stack's key, and selects the cluster; only prod has one",
    "https://docs.aws.amazon.com/aws-backup/latest/devguide/creating-a-backup-plan.html",
)
def backup_plans(env: Environment) -> Iterator[Flag]:
    vaults = {v.logical_id: v for v in env.of_type("AWS::Backup::BackupVault")}
    plans = list(env.of_type("AWS::Backup::BackupPlan"))
    if not plans and is_production(env) and any(env.of_type("AWS::RDS::DBCluster")):
        yield Flag("template", "prod without an AWS Backup plan for the cluster")
    if plans and not is_production(env):
        for plan in plans:
            yield Flag(plan.logical_id, "a backup plan in dev: its vault would stop destroy")
    for vault in vaults.values():
        if key_of(env, vault.properties.get("EncryptionKeyArn")) is None:
            yield Flag(vault.logical_id, "not encrypted with the stack's key")
    clusters = {c.logical_id for c in env.of_type("AWS::RDS::DBCluster")}
    for plan in plans:
        rules = plan.properties.get("BackupPlan", {}).get("BackupPlanRule", [])
        for rule in rules:
            name = str(rule.get("RuleName"))
            days = rule.get("Lifecycle", {}).get("DeleteAfterDays")
            if name in BACKUP_DAYS and (not isinstance(days, int) or days < BACKUP_DAYS[name]):
                yield Flag(plan.logical_id, f"{name} recovery points kept {days} days")
            if not references(rule.get("TargetBackupVault")) & set(vaults):
                yield Flag(plan.logical_id, f"rule {name} does not back up into the stack's vault")
        missing = set(BACKUP_DAYS) - {str(r.get("RuleName")) for r in rules}
        if missing:
            yield Flag(plan.logical_id, f"no {' and no '.join(sorted(missing))} rule")
        selected: set[str] = set()
        for selection in env.of_type("AWS::Backup::BackupSelection"):
            if plan.logical_id in references(selection.properties.get("BackupPlanId")):
                chosen = selection.properties.get("BackupSelection", {}).get("Resources", [])
                selected |= references(chosen)
        if not clusters <= selected:
            yield Flag(plan.logical_id, "does not select the cluster")
