"""Does a stack resource exist in the emulator's own service backends (not only in the stack's
resource list)? One check per resource type the template uses; a type without a check fails
the test that asks, so a new type cannot be waved through."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from moto.awslambda.utils import get_backend as lambda_backend
from moto.backup.models import backup_backends
from moto.cloudtrail.models import cloudtrail_backends
from moto.cloudwatch.models import cloudwatch_backends
from moto.ec2.models import ec2_backends
from moto.iam.models import iam_backends
from moto.kms.models import kms_backends
from moto.logs.models import logs_backends
from moto.rds.models import rds_backends
from moto.s3.models import s3_backends
from moto.secretsmanager.models import secretsmanager_backends
from moto.sns.models import sns_backends
from moto.sqs.models import sqs_backends

from loanstack.emulator.state import STATE

Check = Callable[[str, str, str], bool]  # (account, region, physical id) -> exists


def ec2(a: str, r: str) -> Any:
    return ec2_backends[a][r]


def rds(a: str, r: str) -> Any:
    return rds_backends[a][r]


def secret(a: str, r: str, p: str) -> Any:
    found = secretsmanager_backends[a][r].secrets.get(p)
    return None if found is None or found.is_deleted() else found


def route(a: str, r: str, p: str) -> bool:
    table_id, _, cidr = p.partition("~")
    table = ec2(a, r).route_tables.get(table_id)
    return table is not None and any(x.destination_cidr_block == cidr for x in table.routes)


def acl_entry(a: str, r: str, p: str) -> bool:
    acl_id, rule, direction = p.split("|")
    acl = ec2(a, r).network_acls.get(acl_id)
    return acl is not None and any(
        e.rule_number == int(rule) and bool(e.egress) == (direction == "egress")
        for e in acl.network_acl_entries
    )


def kms_key(a: str, r: str, p: str) -> bool:
    key = kms_backends[a][r].keys.get(p)
    return key is not None and key.key_state != "PendingDeletion"


def lambda_function(a: str, r: str, p: str) -> bool:
    try:
        lambda_backend(a, r).get_function(p)
    except Exception:
        return False
    return True


def lambda_permission(a: str, r: str, p: str) -> bool:
    functions = lambda_backend(a, r).list_functions()
    return any(s.get("Sid") == p for fn in functions for s in fn.policy.statements)


def iam_role(a: str, r: str, p: str) -> bool:
    try:
        iam_backends[a]["global"].get_role(p)
    except Exception:
        return False
    return True


CHECKS: dict[str, Check] = {
    "AWS::EC2::VPC": lambda a, r, p: p in ec2(a, r).vpcs,
    "AWS::EC2::Subnet": lambda a, r, p: any(p in z for z in ec2(a, r).subnets.values()),
    "AWS::EC2::InternetGateway": lambda a, r, p: p in ec2(a, r).internet_gateways,
    "AWS::EC2::VPCGatewayAttachment": lambda a, r, p: any(
        g.vpc is not None and g.vpc.id == p for g in ec2(a, r).internet_gateways.values()
    ),
    "AWS::EC2::RouteTable": lambda a, r, p: p in ec2(a, r).route_tables,
    "AWS::EC2::Route": route,
    "AWS::EC2::SubnetRouteTableAssociation": lambda a, r, p: any(
        k.startswith(f"{p}:") for k in ec2(a, r).subnet_associations
    ),
    "AWS::EC2::EIP": lambda a, r, p: any(x.public_ip == p for x in ec2(a, r).addresses),
    "AWS::EC2::NatGateway": lambda a, r, p: p in ec2(a, r).nat_gateways,
    "AWS::EC2::NetworkAcl": lambda a, r, p: p in ec2(a, r).network_acls,
    "AWS::EC2::NetworkAclEntry": acl_entry,
    "AWS::EC2::SubnetNetworkAclAssociation": lambda a, r, p: any(
        p in acl._associations for acl in ec2(a, r).network_acls.values()
    ),
    "AWS::EC2::SecurityGroup": lambda a, r, p: ec2(a, r).get_security_group_from_id(p) is not None,
    "AWS::EC2::SecurityGroupEgress": lambda a, r, p: any(
        rule.id == p
        for groups in ec2(a, r).groups.values()
        for group in groups.values()
        for rule in group.egress_rules
    ),
    "AWS::EC2::VPCEndpoint": lambda a, r, p: p in ec2(a, r).vpc_end_points,
    "AWS::EC2::FlowLog": lambda a, r, p: p in ec2(a, r).flow_logs,
    "AWS::IAM::Role": iam_role,
    "AWS::KMS::Key": kms_key,
    "AWS::KMS::Alias": lambda a, r, p: kms_backends[a][r].alias_exists(p),
    "AWS::Lambda::Function": lambda_function,
    "AWS::Lambda::Permission": lambda_permission,
    "AWS::Logs::LogGroup": lambda a, r, p: p in logs_backends[a][r].groups,
    "AWS::RDS::DBCluster": lambda a, r, p: p in rds(a, r).clusters,
    "AWS::RDS::DBInstance": lambda a, r, p: p in rds(a, r).databases,
    "AWS::RDS::DBSubnetGroup": lambda a, r, p: p in rds(a, r).subnet_groups,
    "AWS::RDS::DBClusterParameterGroup": lambda a, r, p: p in rds(a, r).db_cluster_parameter_groups,
    "AWS::S3::Bucket": lambda a, r, p: p in s3_backends[a]["aws"].buckets,
    "AWS::S3::BucketPolicy": lambda a, r, p: (
        p in s3_backends[a]["aws"].buckets and s3_backends[a]["aws"].buckets[p].policy is not None
    ),
    "AWS::SNS::Topic": lambda a, r, p: p in sns_backends[a][r].topics,
    "AWS::SNS::Subscription": lambda a, r, p: p in sns_backends[a][r].subscriptions,
    "AWS::SQS::Queue": lambda a, r, p: p.rsplit("/", 1)[-1] in sqs_backends[a][r].queues,
    "AWS::SecretsManager::Secret": lambda a, r, p: secret(a, r, p) is not None,
    "AWS::SecretsManager::SecretTargetAttachment": lambda a, r, p: (
        secret(a, r, p) is not None
        and "host"
        in json.loads(
            secretsmanager_backends[a][r].get_secret_value(p, None, "AWSCURRENT")["SecretString"]
        )
    ),
    "AWS::SecretsManager::RotationSchedule": lambda a, r, p: (
        secret(a, r, p) is not None and bool(secret(a, r, p).rotation_enabled)
    ),
    "AWS::CloudWatch::Alarm": lambda a, r, p: p in cloudwatch_backends[a][r].alarms,
    "AWS::CloudTrail::Trail": lambda a, r, p: p in cloudtrail_backends[a][r].trails,
    "AWS::Logs::MetricFilter": lambda a, r, p: any(
        f["filterName"] == p for f in logs_backends[a][r].filters.metric_filters
    ),
    "AWS::RDS::EventSubscription": lambda a, r, p: p in rds(a, r).event_subscriptions,
    "AWS::Backup::BackupVault": lambda a, r, p: p in backup_backends[a][r].vaults,
    "AWS::Backup::BackupPlan": lambda a, r, p: (  # moto marks a deleted plan, keeps it listed
        p in backup_backends[a][r].plans and backup_backends[a][r].plans[p].deletion_date is None
    ),
    "AWS::Backup::BackupSelection": lambda a, r, p: p in STATE.backup_selections,
    # answered SUCCESS by its function on Create, and not yet deleted
    "AWS::CloudFormation::CustomResource": lambda a, r, p: p in STATE.custom_resources,
}


def exists(resource_type: str, physical_id: str, account: str, region: str) -> bool:
    if resource_type not in CHECKS:
        raise AssertionError(
            f"tests/support/backends.py has no existence check for {resource_type}"
        )
    return bool(CHECKS[resource_type](account, region, physical_id))
