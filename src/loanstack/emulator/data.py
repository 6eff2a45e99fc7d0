"""Aurora: the cluster, its parameter group, and instances that join their cluster (moto's own
DBInstance model ignores `DBClusterIdentifier`)."""

from __future__ import annotations

from typing import Any

from moto.rds.models import rds_backends

from loanstack.emulator.base import Extension, tags


def rds(account_id: str, region: str) -> Any:
    return rds_backends[account_id][region]


def master_password(account_id: str, region: str, cluster_id: str) -> str:
    """The password the emulated cluster accepts (moto's public property refuses to tell)."""
    return str(rds(account_id, region).clusters[cluster_id]._master_user_password)


class DBClusterParameterGroup(Extension):
    TYPE = "AWS::RDS::DBClusterParameterGroup"
    NAME_PROPERTY = "DBClusterParameterGroupName"

    @classmethod
    def create(cls, name: str, props: dict[str, Any], account_id: str, region: str) -> Extension:
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
    def create(cls, name: str, props: dict[str, Any], account_id: str, region: str) -> Extension:
        cluster = rds(account_id, region).create_db_cluster(
            {
                "db_cluster_identifier": name,
                "engine": props["Engine"],
                "engine_version": props.get("EngineVersion"),
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


class DBInstance(Extension):
    """Replaces moto's model: instances of a cluster join it (writer by promotion tier)."""

    TYPE = "AWS::RDS::DBInstance"
    NAME_PROPERTY = "DBInstanceIdentifier"
    ATTRIBUTES = ("DBInstanceArn", "Endpoint.Address", "Endpoint.Port")

    @classmethod
    def create(cls, name: str, props: dict[str, Any], account_id: str, region: str) -> Extension:
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
    def create(cls, name: str, props: dict[str, Any], account_id: str, region: str) -> Extension:
        from moto.ec2.models import ec2_backends

        subnets = [ec2_backends[account_id][region].get_subnet(s) for s in props["SubnetIds"]]
        group = rds(account_id, region).create_subnet_group(
            name, props["DBSubnetGroupDescription"], subnets, tags(props)
        )
        return cls(group.name, account_id, region)

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        rds(self.account_id, self.region).delete_subnet_group(self.physical_id)
