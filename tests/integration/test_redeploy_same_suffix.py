"""One stack suffix deployed, destroyed and deployed again within a minute on the emulator.

RDS names a cluster's automated snapshots `rds:<cluster>-<yyyy-mm-dd-hh-mm>` and, unless
DeleteDBCluster is told otherwise (DeleteAutomatedBackups, default true), removes them when it
deletes the cluster. moto kept them, so the same cluster created again within that minute failed
on its own automated snapshot (DBClusterSnapshotAlreadyExistsFault): a dev stack redeployed
straight after `loanstack destroy` rolled back. The emulator now deletes them, as RDS does.
https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DeleteDBCluster.html
https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/USER_WorkingWithAutomatedBackups.html
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from loanstack.aws.target import Target
from loanstack.stack import deploy
from loanstack.stack.destroy import destroy
from loanstack.stack.events import stack_status

MINUTE = datetime.datetime(2026, 11, 30, 15, 9, 10)  # every automated snapshot in one minute


@pytest.fixture
def one_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's clock for RDS stopped inside one minute: the test does not depend on how fast this
    machine deploys (the collision needs both creations in the same minute)."""
    monkeypatch.setattr("moto.rds.models.utcnow", lambda: MINUTE)


def snapshots(target: Target, cluster: str, kind: str) -> list[str]:
    listed = target.client("rds").describe_db_cluster_snapshots(
        DBClusterIdentifier=cluster, SnapshotType=kind
    )["DBClusterSnapshots"]
    return [s["DBClusterSnapshotIdentifier"] for s in listed]


def cluster_args(name: str) -> dict[str, Any]:
    return {
        "DBClusterIdentifier": name,
        "Engine": "aurora-mysql",
        "MasterUsername": "admin",
        "MasterUserPassword": "a-long-password-1",
        "BackupRetentionPeriod": 7,
    }


def test_deleting_a_cluster_deletes_its_automated_snapshots_not_its_final_one(
    target: Target, one_minute: None
) -> None:
    rds = target.client("rds")
    rds.create_db_cluster(**cluster_args("auto-snap"))
    automated = snapshots(target, "auto-snap", "automated")
    assert automated == ["rds:auto-snap-2026-11-30-15-09"]
    rds.delete_db_cluster(DBClusterIdentifier="auto-snap", FinalDBSnapshotIdentifier="auto-final")
    assert snapshots(target, "auto-snap", "automated") == []
    assert snapshots(target, "auto-snap", "manual") == ["auto-final"], "the final one stays"
    rds.create_db_cluster(**cluster_args("auto-snap"))  # the same minute: no collision
    assert snapshots(target, "auto-snap", "automated") == automated
    rds.delete_db_cluster(DBClusterIdentifier="auto-snap", SkipFinalSnapshot=True)
    rds.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="auto-final")


def test_one_suffix_deployed_and_destroyed_twice_in_one_minute(
    target: Target, one_minute: None, tmp_path: Path
) -> None:
    target.outputs_file = tmp_path / "outputs.json"
    for attempt in (1, 2):
        console = Console(record=True, width=200)
        d = deploy.Deployment(
            target, "dev", "twice1", deploy.parameters_for("dev", "twice1", {}), console
        )
        deploy.deploy(d, confirm=lambda: True)  # the second rolled back on the snapshot's name
        assert (stack_status(target, "tapstack-twice1") or {})["StackStatus"] == "CREATE_COMPLETE"
        destroy(target, "twice1", Console(record=True, width=200))
        assert stack_status(target, "tapstack-twice1") is None, attempt
