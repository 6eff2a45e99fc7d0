"""AWS Backup vaults, plans and selections (prod's backups), on moto's backup backend.

moto's CloudFormation models none of the three and moto has no backup selections at all. Each
refuses what AWS Backup refuses: a plan rule whose target vault does not exist, a selection
for a plan that does not exist or with a role that does not exist; a vault lock is applied
with the minimum retention the template asks.
https://docs.aws.amazon.com/aws-backup/latest/devguide/API_CreateBackupPlan.html
https://docs.aws.amazon.com/aws-backup/latest/devguide/API_CreateBackupSelection.html
"""

from __future__ import annotations

import uuid
from typing import Any

from moto.backup.models import backup_backends
from moto.iam.models import iam_backends

from loanstack.emulator.base import Extension
from loanstack.emulator.state import STATE


def backend(account_id: str, region: str) -> Any:
    return backup_backends[account_id][region]


class BackupVault(Extension):
    TYPE = "AWS::Backup::BackupVault"
    NAME_PROPERTY = "BackupVaultName"
    ATTRIBUTES = ("BackupVaultArn", "BackupVaultName")

    @classmethod
    def create(
        cls, name: str, props: dict[str, Any], account_id: str, region: str, **request: Any
    ) -> Extension:
        vaults = backend(account_id, region)
        vault = vaults.create_backup_vault(
            name, dict(props.get("BackupVaultTags") or {}), props.get("EncryptionKeyArn"), None
        )
        lock = props.get("LockConfiguration")
        if lock:
            vaults.put_backup_vault_lock_configuration(
                name,
                int(lock["MinRetentionDays"]),
                int(lock["MaxRetentionDays"]) if "MaxRetentionDays" in lock else None,
                int(lock["ChangeableForDays"]) if "ChangeableForDays" in lock else None,
            )
        return cls(
            name, account_id, region, BackupVaultArn=vault.backup_vault_arn, BackupVaultName=name
        )

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        backend(self.account_id, self.region).delete_backup_vault(self.physical_id)


class BackupPlan(Extension):
    TYPE = "AWS::Backup::BackupPlan"
    ATTRIBUTES = ("BackupPlanArn", "BackupPlanId", "VersionId")

    @classmethod
    def create(
        cls, name: str, props: dict[str, Any], account_id: str, region: str, **request: Any
    ) -> Extension:
        plans = backend(account_id, region)
        document = props["BackupPlan"]
        rules = []
        for rule in document.get("BackupPlanRule", []):
            vault = rule["TargetBackupVault"]
            if vault not in plans.vaults:
                raise RuntimeError(f"InvalidParameterValueException: no backup vault {vault}")
            rules.append(
                {
                    "RuleName": rule["RuleName"],
                    "TargetBackupVaultName": vault,
                    **{
                        k: rule[k]
                        for k in ("ScheduleExpression", "Lifecycle", "CopyActions")
                        if k in rule
                    },
                }
            )
        plan = plans.create_backup_plan(
            {"BackupPlanName": document["BackupPlanName"], "Rules": rules},
            dict(props.get("BackupPlanTags") or {}),
            None,
        )
        return cls(
            plan.backup_plan_id,
            account_id,
            region,
            BackupPlanArn=plan.backup_plan_arn,
            BackupPlanId=plan.backup_plan_id,
            VersionId=plan.version_id,
        )

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        backend(self.account_id, self.region).delete_backup_plan(self.physical_id)


class BackupSelection(Extension):
    TYPE = "AWS::Backup::BackupSelection"
    ATTRIBUTES = ("BackupPlanId", "SelectionId")

    @classmethod
    def create(
        cls, name: str, props: dict[str, Any], account_id: str, region: str, **request: Any
    ) -> Extension:
        plan_id = props["BackupPlanId"]
        if plan_id not in backend(account_id, region).plans:
            raise RuntimeError(f"ResourceNotFoundException: no backup plan {plan_id}")
        selection = props["BackupSelection"]
        role = str(selection["IamRoleArn"]).rsplit("/", 1)[-1]
        iam: Any = iam_backends[account_id]["global"]
        iam.get_role(role)  # NoSuchEntity, as AWS Backup refuses a role it cannot find
        selection_id = str(uuid.uuid4())
        STATE.backup_selections[selection_id] = {"plan": plan_id, "selection": selection}
        return cls(selection_id, account_id, region, BackupPlanId=plan_id, SelectionId=selection_id)

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        STATE.backup_selections.pop(self.physical_id, None)
