"""Aurora: the cluster, its parameter group, and instances that join their cluster (moto's own
DBInstance model ignores `DBClusterIdentifier`).

A master password change takes time, as on Aurora: after ModifyDBCluster the cluster reports
`resetting-master-credentials` with `PendingModifiedValues.MasterUserPassword` for
LOANSTACK_EMULATOR_PASSWORD_APPLY_SECONDS (default 1 s); then the new password applies at once
everywhere (moto's cluster, the Data API's check, the MariaDB login endpoint) and the cluster is
`available` again. Meanwhile a second ModifyDBCluster is refused (InvalidDBClusterStateFault).
moto applies the change instantly and never reports it pending.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from moto.rds.models import DBCluster as MotoCluster
from moto.rds.models import RDSBackend, rds_backends

from loanstack.emulator import fence
from loanstack.emulator.base import Extension, tags
from loanstack.emulator.state import STATE

APPLY_SECONDS_VARIABLE = "LOANSTACK_EMULATOR_PASSWORD_APPLY_SECONDS"
_lock = threading.RLock()


def rds(account_id: str, region: str) -> Any:
    return rds_backends[account_id][region]


def master_password(account_id: str, region: str, cluster_id: str) -> str:
    """The password the emulated cluster accepts (moto's public property refuses to tell)."""
    cluster = rds(account_id, region).clusters[cluster_id]
    settle(cluster)
    return str(cluster._master_user_password)


def apply_seconds() -> float:
    return float(os.environ.get(APPLY_SECONDS_VARIABLE, "1.0"))


def endpoint(cluster: Any) -> str:
    """Where the emulator's cluster takes MySQL logins (its MariaDB), else moto's name."""
    host: str = getattr(cluster, "emulated_host", None) or fence.original(
        MotoCluster, "endpoint"
    ).fget(cluster)
    return host


def describe_db_clusters(self: Any, *args: Any, **kwargs: Any) -> Any:
    clusters = fence.original(RDSBackend, "describe_db_clusters")(self, *args, **kwargs)
    for cluster in clusters:
        settle(cluster)
    return clusters


def modify_db_cluster(self: Any, kwargs: dict[str, Any]) -> Any:
    """ModifyDBCluster with a pending (not instant) MasterUserPassword.

    RDS refuses a modification while the cluster is not available:
    https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_ModifyDBCluster.html (Errors)
    """
    from moto.rds.exceptions import InvalidDBClusterStateFault, InvalidParameterValue

    password = kwargs.pop("master_user_password", None)
    cluster = self.clusters.get(kwargs.get("db_cluster_identifier"))
    if password is not None and cluster is not None:
        settle(cluster)
        if getattr(cluster, "password_change", None):
            raise InvalidDBClusterStateFault(
                f"DB cluster {cluster.db_cluster_identifier} is not available "
                "(status resetting-master-credentials)"
            )
        if len(password) < 8 or len(password) > 41:
            raise InvalidParameterValue("The parameter MasterUserPassword is not a valid password.")
    result = fence.original(RDSBackend, "modify_db_cluster")(self, kwargs)
    if password is not None and cluster is not None:
        with _lock:
            due = time.monotonic() + apply_seconds()
            cluster.password_change = (due, password)
            cluster.status = result.status = "resetting-master-credentials"
            cluster.pending_modified_values = {"MasterUserPassword": "****"}
            result.pending_modified_values = dict(cluster.pending_modified_values)
        timer = threading.Timer(max(0.0, due - time.monotonic()), settle, (cluster,))
        timer.daemon = True
        timer.start()
    return result


def settle(cluster: Any) -> None:
    """Apply a pending password change whose time has come (idempotent, any thread)."""
    with _lock:
        change = getattr(cluster, "password_change", None)
        if not change or time.monotonic() < change[0]:
            return
        cluster.password_change = None
        cluster._master_user_password = change[1]
        cluster.pending_modified_values = {}
        cluster.status = "available"
        try:
            sync_login_account(cluster)
        except Exception:  # a timer firing after the emulator stopped: nothing to serve
            logging.getLogger(__name__).warning("no login endpoint to update", exc_info=True)


def sync_login_account(cluster: Any) -> None:
    """The MariaDB login endpoint's account follows the cluster's master credentials."""
    server = STATE.mariadb
    if server is not None and server.tls and getattr(cluster, "emulated_host", None):
        server.set_account(cluster.master_username, cluster._master_user_password)


class DBClusterParameterGroup(Extension):
    TYPE = "AWS::RDS::DBClusterParameterGroup"
    NAME_PROPERTY = "DBClusterParameterGroupName"

    @classmethod
    def create(
        cls, name: str, props: dict[str, Any], account_id: str, region: str, **request: Any
    ) -> Extension:
        backend = rds(account_id, region)
        backend.create_db_cluster_parameter_group(
            db_cluster_parameter_group_name=name,
            db_parameter_group_family=props["Family"],
            description=props["Description"],
            tags=tags(props),
        )
        params = [
            {"ParameterName": k, "ParameterValue": str(v), "ApplyMethod": "pending-reboot"}
            for k, v in (props.get("Parameters") or {}).items()
        ]
        if params:
            backend.modify_db_cluster_parameter_group(name, params)
        return cls(name, account_id, region)

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        rds(self.account_id, self.region).delete_db_cluster_parameter_group(self.physical_id)


class DBCluster(Extension):
    TYPE = "AWS::RDS::DBCluster"
    NAME_PROPERTY = "DBClusterIdentifier"
    ATTRIBUTES = (
        "DBClusterArn",
        "DBClusterResourceId",
        "Endpoint.Address",
        "Endpoint.Port",
        "ReadEndpoint.Address",
    )

    @classmethod
    def create(
        cls, name: str, props: dict[str, Any], account_id: str, region: str, **request: Any
    ) -> Extension:
        cluster = rds(account_id, region).create_db_cluster(
            {
                "db_cluster_identifier": name,
                "engine": props["Engine"],
                "engine_version": props.get("EngineVersion"),
                "engine_mode": props.get(
                    "EngineMode"
                ),  # serverless (v1) changes the Data API's errors
                "database_name": props.get("DatabaseName"),
                "port": props.get("Port"),
                "master_username": props.get("MasterUsername"),
                "master_user_password": props.get("MasterUserPassword"),
                "db_subnet_group_name": props.get("DBSubnetGroupName"),
                "vpc_security_group_ids": props.get("VpcSecurityGroupIds"),
                "db_cluster_parameter_group_name": props.get("DBClusterParameterGroupName"),
                "storage_encrypted": bool(props.get("StorageEncrypted")),
                "kms_key_id": props.get("KmsKeyId"),
                "backup_retention_period": props.get("BackupRetentionPeriod", 1),
                "deletion_protection": bool(props.get("DeletionProtection")),
                "enable_cloudwatch_logs_exports": props.get("EnableCloudwatchLogsExports"),
                "copy_tags_to_snapshot": bool(props.get("CopyTagsToSnapshot")),
                "serverless_v2_scaling_configuration": props.get(
                    "ServerlessV2ScalingConfiguration"
                ),
                "tags": tags(props),
            }
        )
        # moto only allows the Data API on Aurora Serverless v1 versions; AWS has offered it on
        # provisioned Aurora MySQL since 3.07 (SPEC R9), so the flag is kept as the template asks.
        cluster._enable_http_endpoint = bool(props.get("EnableHttpEndpoint"))
        serve_logins(cluster)
        return cls(
            name,
            account_id,
            region,
            DBClusterArn=cluster.db_cluster_arn,
            DBClusterResourceId=cluster.db_cluster_resource_id,
            **{
                "Endpoint.Address": cluster.endpoint,
                "Endpoint.Port": str(cluster.port),
                "ReadEndpoint.Address": cluster.reader_endpoint,
            },
        )

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        rds(self.account_id, self.region).delete_db_cluster(self.physical_id)


def serve_logins(cluster: Any) -> None:
    """With the emulator's MariaDB listening on TLS, the cluster's endpoint is that listener and
    its master user an account there, so a MySQL login (testSecret) meets a real server."""
    server = STATE.mariadb
    if server is None or not server.tls:
        return
    cluster.emulated_host, cluster.port = server.host, server.port
    sync_login_account(cluster)


class DBInstance(Extension):
    """Replaces moto's model: instances of a cluster join it (writer by promotion tier)."""

    TYPE = "AWS::RDS::DBInstance"
    NAME_PROPERTY = "DBInstanceIdentifier"
    ATTRIBUTES = ("DBInstanceArn", "Endpoint.Address", "Endpoint.Port")

    @classmethod
    def create(
        cls, name: str, props: dict[str, Any], account_id: str, region: str, **request: Any
    ) -> Extension:
        instance = rds(account_id, region).create_db_instance(
            {
                "db_instance_identifier": name,
                "db_cluster_identifier": props.get("DBClusterIdentifier"),
                "engine": props["Engine"],
                "db_instance_class": props["DBInstanceClass"],
                "availability_zone": props.get("AvailabilityZone"),
                "publicly_accessible": bool(props.get("PubliclyAccessible")),
                "auto_minor_version_upgrade": bool(props.get("AutoMinorVersionUpgrade", True)),
                "promotion_tier": int(props.get("PromotionTier", 1)),
                "db_subnet_group_name": props.get("DBSubnetGroupName"),
                "tags": tags(props),
            }
        )
        return cls(
            name,
            account_id,
            region,
            DBInstanceArn=instance.db_instance_arn,
            **{"Endpoint.Address": instance.address, "Endpoint.Port": str(instance.port)},
        )

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        rds(self.account_id, self.region).delete_db_instance(self.physical_id)


class DBSubnetGroup(Extension):
    """Replaces moto's model, whose `Ref` yields the model object instead of the group's name."""

    TYPE = "AWS::RDS::DBSubnetGroup"
    NAME_PROPERTY = "DBSubnetGroupName"

    @classmethod
    def create(
        cls, name: str, props: dict[str, Any], account_id: str, region: str, **request: Any
    ) -> Extension:
        from moto.ec2.models import ec2_backends

        subnets = [ec2_backends[account_id][region].get_subnet(s) for s in props["SubnetIds"]]
        group = rds(account_id, region).create_subnet_group(
            name, props["DBSubnetGroupDescription"], subnets, tags(props)
        )
        return cls(group.name, account_id, region)

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        rds(self.account_id, self.region).delete_subnet_group(self.physical_id)
