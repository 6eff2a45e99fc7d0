"""Aurora snapshots and restores that carry the data (moto copies only the cluster's settings),
and refuse what RDS refuses.

- CreateDBCluster refuses an identifier in use (DBClusterAlreadyExistsFault; moto replaced the
  cluster) and creates its DatabaseName, empty, in the cluster's own schema (clusterdata.py).
  https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBCluster.html
- CreateDBClusterSnapshot (also the final snapshot of DeleteDBCluster and of a stack's
  `DeletionPolicy: Snapshot`) copies the cluster's schemas; DeleteDBClusterSnapshot drops the
  copy; DeleteDBCluster drops the cluster's schemas (after its final snapshot, if asked) and its
  automated snapshots, as RDS does by default (DeleteAutomatedBackups), so the same cluster can
  be created again at once (their names, `rds:<cluster>-<minute>`, would collide).
  https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/USER_CreateSnapshotCluster.html
  https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DeleteDBCluster.html
- RestoreDBClusterFromSnapshot and RestoreDBClusterToPointInTime create a NEW cluster with the
  data: refused for an identifier in use, a DB subnet group that does not exist, a snapshot or
  source cluster that does not exist, a time outside [EarliestRestorableTime,
  LatestRestorableTime], neither or both of RestoreToTime and UseLatestRestorableTime.
  https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_RestoreDBClusterFromSnapshot.html
  https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_RestoreDBClusterToPointInTime.html
  The emulator keeps no transaction log: it copies the data at the moment of the restore, so it
  restores to a RestoreToTime only when nothing was written to the source since (InnoDB's table
  UPDATE_TIME, to the second) and refuses other times with InvalidRestoreFault saying so; on
  Aurora any time in the window works. A restored cluster has no instances and no Data API
  until they are added (CreateDBInstance, EnableHttpEndpoint), as on Aurora.
- EnableHttpEndpoint (moto has no such action) turns the cluster's Data API on.
  https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_EnableHttpEndpoint.html
- DescribeDBClusters shows moto's EarliestRestorableTime (the creation) and
  LatestRestorableTime (now); a restore's window is the later of the creation and now minus the
  backup retention period, to now.
  https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-pitr.html
"""

from __future__ import annotations

import datetime
from typing import Any

from moto.rds.exceptions import (
    DBClusterNotFoundError,
    DBClusterSnapshotNotFoundError,
    DBSubnetGroupNotFoundError,
    InvalidParameterCombination,
    RDSClientError,
)
from moto.rds.models import RDSBackend

from loanstack.emulator import clusterdata, fence


def refused(code: str, message: str) -> RDSClientError:
    return RDSClientError(code, message)


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def aware(moment: Any) -> datetime.datetime:
    """A datetime moto or the request gave, as UTC (naive ones are UTC)."""
    if isinstance(moment, str):
        moment = datetime.datetime.fromisoformat(moment.replace("Z", "+00:00"))
    when: datetime.datetime = moment
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)


def earliest_restorable_time(cluster: Any) -> datetime.datetime:
    retention = datetime.timedelta(days=int(getattr(cluster, "backup_retention_period", 1) or 1))
    return max(aware(cluster.created), now() - retention)


def check_new_cluster(backend: Any, cluster_id: str, subnet_group: str | None) -> None:
    """What both restores and CreateDBCluster refuse before creating anything."""
    if cluster_id in backend.clusters:
        raise refused("DBClusterAlreadyExistsFault", f"DB cluster {cluster_id} already exists")
    if subnet_group and subnet_group not in backend.subnet_groups:
        raise DBSubnetGroupNotFoundError(subnet_group)


def create_db_cluster(self: Any, kwargs: dict[str, Any]) -> Any:
    check_new_cluster(self, kwargs["db_cluster_identifier"], None)
    cluster = fence.original(RDSBackend, "create_db_cluster")(self, kwargs)
    clusterdata.create_database(cluster, kwargs.get("database_name"))
    return cluster


def delete_db_cluster(self: Any, cluster_identifier: str, snapshot_name: str | None = None) -> Any:
    """moto's delete, then what RDS removes with the cluster: its data and its automated
    snapshots (DeleteAutomatedBackups defaults to true; moto kept them, so the same cluster
    created again within the minute of their `rds:<cluster>-<yyyy-mm-dd-hh-mm>` name failed)."""
    cluster = self.clusters.get(cluster_identifier)
    deleted = fence.original(RDSBackend, "delete_db_cluster")(
        self, cluster_identifier, snapshot_name
    )
    if cluster is not None:
        clusterdata.drop(clusterdata.cluster_prefix(cluster))
    automated = [
        name
        for name, snapshot in self.cluster_snapshots.items()
        if snapshot.snapshot_type == "automated"
        and snapshot.db_cluster_identifier == cluster_identifier
    ]
    for name in automated:
        delete_db_cluster_snapshot(self, name)
    return deleted


def create_db_cluster_snapshot(
    self: Any,
    db_cluster_identifier: str,
    db_cluster_snapshot_identifier: str,
    snapshot_type: str = "manual",
    tags: list[dict[str, str]] | None = None,
) -> Any:
    snapshot = fence.original(RDSBackend, "create_db_cluster_snapshot")(
        self, db_cluster_identifier, db_cluster_snapshot_identifier, snapshot_type, tags
    )
    cluster = self.clusters[db_cluster_identifier]
    clusterdata.copy(clusterdata.cluster_prefix(cluster), clusterdata.snapshot_prefix(snapshot))
    return snapshot


def delete_db_cluster_snapshot(self: Any, db_snapshot_identifier: str) -> Any:
    snapshot = fence.original(RDSBackend, "delete_db_cluster_snapshot")(
        self, db_snapshot_identifier
    )
    clusterdata.drop(clusterdata.snapshot_prefix(snapshot))
    return snapshot


def restore_db_cluster_from_snapshot(
    self: Any, from_snapshot_id: str, overrides: dict[str, Any]
) -> Any:
    snapshot = self.cluster_snapshots.get(from_snapshot_id)
    if snapshot is None:
        raise DBClusterSnapshotNotFoundError(from_snapshot_id)
    check_new_cluster(
        self, overrides["db_cluster_identifier"], overrides.get("db_subnet_group_name")
    )
    cluster = fence.original(RDSBackend, "restore_db_cluster_from_snapshot")(
        self, from_snapshot_id, overrides
    )
    restored(cluster, clusterdata.snapshot_prefix(snapshot))
    return cluster


def restore_db_cluster_to_point_in_time(
    self: Any,
    db_cluster_identifier: str,
    source_db_cluster_identifier: str,
    restore_type: str = "full-copy",
    restore_to_time: Any = None,
    use_latest_restorable_time: bool = False,
    **overrides: Any,
) -> Any:
    source = self.clusters.get(source_db_cluster_identifier)
    if source is None:
        raise DBClusterNotFoundError(source_db_cluster_identifier)
    check_new_cluster(self, db_cluster_identifier, overrides.get("db_subnet_group_name"))
    if restore_to_time is None and not use_latest_restorable_time:
        raise InvalidParameterCombination(
            "RestoreToTime must be specified if UseLatestRestorableTime isn't provided"
        )
    if restore_to_time is not None:
        check_restore_time(source, aware(restore_to_time))
    cluster = fence.original(RDSBackend, "restore_db_cluster_to_point_in_time")(
        self,
        db_cluster_identifier,
        source_db_cluster_identifier,
        restore_type,
        restore_to_time,
        use_latest_restorable_time,
        **overrides,
    )
    restored(cluster, clusterdata.cluster_prefix(source))
    return cluster


def check_restore_time(source: Any, moment: datetime.datetime) -> None:
    """Inside the window, and (the emulator's limit) not before a write it cannot undo."""
    earliest, latest = earliest_restorable_time(source), now()
    if not earliest <= moment <= latest:
        raise refused(
            "InvalidRestoreFault",
            f"RestoreToTime {moment.isoformat()} is outside the restorable window of "
            f"{source.db_cluster_identifier}: {earliest.isoformat()} to {latest.isoformat()}",
        )
    written = clusterdata.last_write(clusterdata.cluster_prefix(source))
    if written is not None and written >= moment.replace(microsecond=0):
        raise refused(
            "InvalidRestoreFault",
            f"the emulator keeps no history: {source.db_cluster_identifier} was written at "
            f"{written.isoformat()}, not before RestoreToTime {moment.isoformat()}; restore "
            "with UseLatestRestorableTime (AWS restores any time in the window)",
        )


def restored(cluster: Any, source_prefix: str) -> None:
    """A restored cluster: the data copied, no Data API until EnableHttpEndpoint (moto copies the
    flag from the snapshot's settings), available at once."""
    cluster._enable_http_endpoint = False
    clusterdata.copy(source_prefix, clusterdata.cluster_prefix(cluster))


def enable_http_endpoint(self: Any) -> Any:
    """EnableHttpEndpoint: the RDS query API's action moto does not route."""
    from moto.core.responses import ActionResult

    arn = str(self._get_param("ResourceArn"))
    cluster_id = arn.rsplit(":", 1)[-1]
    cluster = self.backend.clusters.get(cluster_id)
    if cluster is None or cluster.db_cluster_arn != arn:
        raise DBClusterNotFoundError(cluster_id)
    cluster._enable_http_endpoint = True
    return ActionResult({"ResourceArn": arn, "HttpEndpointEnabled": True})
