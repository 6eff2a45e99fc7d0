"""R6 amended on the emulator: destroying prod leaves the final cluster snapshot, the key and
the buckets (with their objects); destroying dev leaves nothing. Through the same deploy and
destroy code the `loanstack` command uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from moto.kms.models import kms_backends
from moto.rds.models import rds_backends
from rich.console import Console

from loanstack.aws.target import Target
from loanstack.emulator import ACCOUNT_ID
from loanstack.stack import deploy
from loanstack.stack.destroy import destroy, stack_resources
from loanstack.stack.events import stack_status
from loanstack.stack.protection import StackOptions
from tests.support import backends

REGION = "us-east-1"
KEPT_IN_PROD = {"KMSKey", "LoanDocumentsBucket", "TrailBucket", "AccessLogsBucket", "BackupVault"}


def deploy_and_destroy(
    target: Target,
    env: str,
    suffix: str,
    out: Path,
    look: Callable[[dict[str, str]], None] = lambda outputs: None,
    **params: str,
) -> tuple[list[dict[str, str]], dict[str, str], str]:
    """Deploy, `look` at the stack, put an object in its documents bucket, destroy: the stack's
    resources as listed before the destroy, its outputs, and what the destroy printed."""
    target.outputs_file = out / f"{suffix}.json"
    console = Console(record=True, width=200)
    outputs = deploy.deploy(
        deploy.Deployment(
            target,
            env,
            suffix,
            deploy.parameters_for(env, suffix, params),
            console,
            options=DESTROYABLE,
        ),
        confirm=lambda: True,
    )
    s3 = target.client("s3")
    s3.put_object(Bucket=outputs["LoanDocumentsBucketName"], Key="validations/a.json", Body=b"{}")
    look(outputs)
    resources = list(stack_resources(target, f"tapstack-{suffix}"))
    console = Console(record=True, width=200)
    destroy(target, suffix, console)
    return resources, outputs, console.export_text()


# these tests destroy prod: its termination protection (on by default) is turned off, as an
# operator turns it off first (the protection itself: tests/integration/test_stack_options.py)
DESTROYABLE = StackOptions(termination_protection=False)


def left_behind(resources: list[dict[str, str]]) -> set[str]:
    return {
        r["LogicalResourceId"]
        for r in resources
        if backends.exists(r["ResourceType"], r["PhysicalResourceId"], ACCOUNT_ID, REGION)
    }


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("cfn-outputs"))


@dataclass
class ProdDestroyed:
    """One prod stack deployed, then destroyed, through the code `loanstack deploy` and
    `destroy` run."""

    resources: list[dict[str, str]]
    outputs: dict[str, str]
    said: str  # what destroy printed
    metric_filters: set[str]  # on the trail's log group, while the stack was there
    subscriptions: list[dict[str, Any]]  # RDS event subscriptions named for the stack
    plans: list[str]  # its backup plans, while the stack was there


def backup_plans(target: Target, suffix: str) -> list[str]:
    """This stack's backup plans: an earlier module on the same worker may have left its own."""
    listed = target.client("backup").list_backup_plans()["BackupPlansList"]
    return [p["BackupPlanName"] for p in listed if p["BackupPlanName"].endswith(f"-{suffix}")]


@pytest.fixture(scope="module")
def prod43(target: Target, out: Path) -> ProdDestroyed:
    """The prod stack both prod tests read: what it deployed (alarms, backups), then what its
    destroy kept. One deploy and destroy of prod (about 5 s of CPU) instead of one per test;
    each test asserts its own subject on it."""
    seen: dict[str, Any] = {}

    def look(outputs: dict[str, str]) -> None:
        group = f"/aws/cloudtrail/trail-loanprocessing-prod43-{target.region}"
        filters = target.client("logs").describe_metric_filters(logGroupName=group)
        seen["filters"] = {
            f["metricTransformations"][0]["metricName"] for f in filters["metricFilters"]
        }
        seen["subscriptions"] = target.client("rds").describe_event_subscriptions(
            SubscriptionName="rdsevents-loanprocessing-prod43"
        )["EventSubscriptionsList"]
        seen["plans"] = backup_plans(target, "prod43")

    resources, outputs, said = deploy_and_destroy(
        target, "prod", "prod43", out, look, AlarmEmail="ops@example.com"
    )
    return ProdDestroyed(
        resources, outputs, said, seen["filters"], seen["subscriptions"], seen["plans"]
    )


def test_r6_prod_destroy_keeps_snapshot_key_and_buckets(
    target: Target, prod43: ProdDestroyed
) -> None:
    resources, outputs, said = prod43.resources, prod43.outputs, prod43.said
    assert stack_status(target, "tapstack-prod43") is None
    assert left_behind(resources) == KEPT_IN_PROD
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}
    key = kms_backends[ACCOUNT_ID][REGION].keys[physical["KMSKey"]]
    assert key.key_state == "Enabled", "a kept key is not scheduled for deletion"
    objects = target.client("s3").list_objects_v2(Bucket=outputs["LoanDocumentsBucketName"])
    assert [o["Key"] for o in objects["Contents"]] == ["validations/a.json"], "not emptied"
    snapshots = [
        s
        for s in rds_backends[ACCOUNT_ID][REGION].cluster_snapshots.values()
        if s.cluster.db_cluster_identifier == physical["DBCluster"] and s.snapshot_type == "manual"
    ]
    assert len(snapshots) == 1, "exactly one final snapshot"
    snapshot_id = snapshots[0].db_cluster_snapshot_identifier
    assert snapshot_id.startswith("tapstack-prod43-dbcluster-")
    assert snapshot_id in said and physical["KMSKey"] in said
    assert "stopped logging" not in said, "a prod trail is never stopped by the tool"
    lock = target.client("s3").get_object_lock_configuration(Bucket=physical["TrailBucket"])
    rule = lock["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert (rule["Mode"], rule["Days"]) == ("GOVERNANCE", 365)


def test_r6_dev_destroy_leaves_nothing(target: Target, out: Path) -> None:
    resources, _, said = deploy_and_destroy(target, "dev", "dev43", out)
    assert left_behind(resources) == set()
    assert "nothing left behind" in said
    assert not [
        s
        for s in rds_backends[ACCOUNT_ID][REGION].cluster_snapshots.values()
        if s.cluster.db_cluster_identifier == "aurora-loanprocessing-dev43"
        and s.snapshot_type == "manual"
    ]


def test_r14_r6_prod_alarms_and_backups_deploy_on_the_emulator(
    target: Target, prod43: ProdDestroyed
) -> None:
    """Prod's audit alarms and backups deploy: metric filters on the trail's log group, alarms,
    the RDS event subscription of the cluster, the backup vault (kept by destroy), plan and
    selection."""
    assert prod43.metric_filters == {"TrailChanges", "KeyChanges", "NetworkChanges", "RootUse"}
    (sub,) = prod43.subscriptions
    assert sub["SourceIdsList"] == ["aurora-loanprocessing-prod43"]
    assert prod43.plans == ["backupplan-loanprocessing-prod43"]
    said = prod43.said
    assert "kept: AWS::Backup::BackupVault BackupVault backupvault-loanprocessing-prod43" in said
    backup = target.client("backup")
    vaults = [v["BackupVaultName"] for v in backup.list_backup_vaults()["BackupVaultList"]]
    assert "backupvault-loanprocessing-prod43" in vaults
    assert backup_plans(target, "prod43") == []
