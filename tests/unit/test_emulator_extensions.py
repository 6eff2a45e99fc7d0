"""Each emulator extension on its own (SPEC D4): a minimal template per resource type, deployed
through a change set on moto with the extensions installed, checked in moto's backends, then
deleted and checked gone."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from loanstack import template
from loanstack.emulator import ACCOUNT_ID, awslambda, deletion, install, modelled_types
from loanstack.emulator.rds import master_password
from loanstack.emulator.rdsdata import check_access
from loanstack.emulator.rdsdata_errors import DataApiError
from tests.support.sessions import session as shared_session

REGION = "us-east-1"
VPC = {"VPC": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.9.0.0/16"}}}
SUBNET = {
    "Subnet": {
        "Type": "AWS::EC2::Subnet",
        "Properties": {"VpcId": {"Ref": "VPC"}, "CidrBlock": "10.9.1.0/24"},
    }
}


@pytest.fixture
def aws() -> Iterator[boto3.Session]:
    install()
    with mock_aws():
        yield shared_session(region_name=REGION)


def deploy(
    session: boto3.Session, resources: dict[str, Any], name: str = "ext", **extra: Any
) -> dict[str, Any]:
    cfn = session.client("cloudformation")
    body = json.dumps({"Resources": resources, **extra})
    change_set = cfn.create_change_set(
        StackName=name, ChangeSetName="c", ChangeSetType="CREATE", TemplateBody=body
    )
    cfn.execute_change_set(ChangeSetName=change_set["Id"])
    return dict(cfn.describe_stacks(StackName=name)["Stacks"][0])


def physical(session: boto3.Session, name: str = "ext") -> dict[str, str]:
    summaries = session.client("cloudformation").list_stack_resources(StackName=name)
    return {
        r["LogicalResourceId"]: r["PhysicalResourceId"] for r in summaries["StackResourceSummaries"]
    }


def failures(session: boto3.Session, name: str = "ext") -> list[str]:
    events = session.client("cloudformation").describe_stack_events(StackName=name)["StackEvents"]
    return [
        f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
        for e in events
        if "FAILED" in e["ResourceStatus"]
    ]


def delete(session: boto3.Session, name: str = "ext") -> str:
    cfn = session.client("cloudformation")
    stack_id = cfn.describe_stacks(StackName=name)["Stacks"][0]["StackId"]
    cfn.delete_stack(StackName=stack_id)
    return str(cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"])


def test_d4_every_type_in_the_template_is_modelled_and_deletable() -> None:
    install()
    from moto.cloudformation import parsing

    models = parsing.get_model_map()
    for rtype in sorted({r["Type"] for r in template.load()["Resources"].values()}):
        assert rtype in modelled_types(), f"neither moto nor an extension models {rtype}"
        model = models[rtype]
        deletable = (
            callable(getattr(model, "delete", None))
            or not hasattr(model.delete_from_cloudformation_json, "__isabstractmethod__")
            or rtype in deletion.DELETERS
        )
        assert deletable, f"the emulator could create {rtype} but never delete it"


def test_d4_an_unmodelled_type_fails_the_deployment_instead_of_being_skipped(
    aws: boto3.Session,
) -> None:
    stack = deploy(aws, {**VPC, "Thing": {"Type": "AWS::Made::Up", "Properties": {}}})
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    assert failures(aws) == [
        "Thing: UnsupportedResourceType: the emulator does not model AWS::Made::Up"
    ]
    assert (
        aws.client("ec2").describe_vpcs(Filters=[{"Name": "cidr", "Values": ["10.9.0.0/16"]}])[
            "Vpcs"
        ]
        == []
    )


def test_network_acl_entries_and_association_move_the_subnet_and_give_it_back(
    aws: boto3.Session,
) -> None:
    from moto.ec2.models import ec2_backends

    assert deploy(aws, {**VPC, **SUBNET}, name="net")["StackStatus"] == "CREATE_COMPLETE"
    net = physical(aws, "net")
    resources = {
        "Acl": {"Type": "AWS::EC2::NetworkAcl", "Properties": {"VpcId": net["VPC"]}},
        "In443": {
            "Type": "AWS::EC2::NetworkAclEntry",
            "Properties": {
                "NetworkAclId": {"Ref": "Acl"},
                "RuleNumber": 100,
                "Protocol": 6,
                "RuleAction": "allow",
                "Egress": False,
                "CidrBlock": "10.9.0.0/16",
                "PortRange": {"From": 443, "To": 443},
            },
        },
        "Assoc": {
            "Type": "AWS::EC2::SubnetNetworkAclAssociation",
            "Properties": {"SubnetId": net["Subnet"], "NetworkAclId": {"Ref": "Acl"}},
        },
    }
    assert deploy(aws, resources)["StackStatus"] == "CREATE_COMPLETE", failures(aws)
    backend = ec2_backends[ACCOUNT_ID][REGION]
    acl = backend.network_acls[physical(aws)["Acl"]]
    assert [a.subnet_id for a in acl._associations.values()] == [net["Subnet"]]
    assert [
        (e.rule_number, e.port_range_from, e.port_range_to)
        for e in acl.network_acl_entries
        if not e.egress
    ] == [(100, 443, 443)]
    assert delete(aws) == "DELETE_COMPLETE"
    assert acl.id not in backend.network_acls
    default = next(a for a in backend.network_acls.values() if a.vpc_id == net["VPC"] and a.default)
    assert net["Subnet"] in [a.subnet_id for a in default._associations.values()]


def secret_and_cluster() -> dict[str, Any]:
    return {
        "Secret": {
            "Type": "AWS::SecretsManager::Secret",
            "Properties": {
                "Name": "secret-ext",
                "GenerateSecretString": {
                    "SecretStringTemplate": '{"username":"admin"}',
                    "GenerateStringKey": "password",
                    "PasswordLength": 24,
                    "ExcludeCharacters": "\"@/\\'",
                },
            },
        },
        "Params": {
            "Type": "AWS::RDS::DBClusterParameterGroup",
            "Properties": {
                "DBClusterParameterGroupName": "dbcpg-ext",
                "Family": "aurora-mysql8.0",
                "Description": "d",
                "Parameters": {"require_secure_transport": "ON"},
            },
        },
        "Cluster": {
            "Type": "AWS::RDS::DBCluster",
            "Properties": {
                "DBClusterIdentifier": "aurora-ext",
                "Engine": "aurora-mysql",
                "EnableHttpEndpoint": True,
                "EngineVersion": "8.0.mysql_aurora.3.10.3",
                "DBClusterParameterGroupName": {"Ref": "Params"},
                "MasterUsername": {
                    "Fn::Sub": "{{resolve:secretsmanager:${Secret}:SecretString:username}}"
                },
                "MasterUserPassword": {
                    "Fn::Sub": "{{resolve:secretsmanager:${Secret}:SecretString:password}}"
                },
            },
        },
        "Writer": {
            "Type": "AWS::RDS::DBInstance",
            "Properties": {
                "DBInstanceIdentifier": "aurora-ext-writer",
                "DBClusterIdentifier": {"Ref": "Cluster"},
                "Engine": "aurora-mysql",
                "DBInstanceClass": "db.serverless",
                "PromotionTier": 0,
            },
        },
        "Attachment": {
            "Type": "AWS::SecretsManager::SecretTargetAttachment",
            "Properties": {
                "SecretId": {"Ref": "Secret"},
                "TargetId": {"Ref": "Cluster"},
                "TargetType": "AWS::RDS::DBCluster",
            },
        },
    }


def test_data_tier_cluster_takes_its_password_from_the_secret_and_the_writer_joins(
    aws: boto3.Session,
) -> None:
    outputs = {"Endpoint": {"Value": {"Fn::GetAtt": ["Cluster", "Endpoint.Address"]}}}
    stack = deploy(aws, secret_and_cluster(), Outputs=outputs)
    assert stack["StackStatus"] == "CREATE_COMPLETE", failures(aws)
    from moto.rds.models import rds_backends

    cluster = rds_backends[ACCOUNT_ID][REGION].clusters["aurora-ext"]
    value = json.loads(
        aws.client("secretsmanager").get_secret_value(
            SecretId="secret-ext", VersionStage="AWSCURRENT"
        )["SecretString"]
    )
    assert master_password(ACCOUNT_ID, REGION, "aurora-ext") == value["password"]
    assert cluster.master_username == "admin"
    assert len(value["password"]) == 24 and not set(value["password"]) & set("\"@/\\'")
    assert value["host"] == stack["Outputs"][0]["OutputValue"] == cluster.endpoint  # the attachment
    described = aws.client("rds").describe_db_clusters(DBClusterIdentifier="aurora-ext")[
        "DBClusters"
    ][0]
    assert described["HttpEndpointEnabled"] is True
    assert [
        (m["DBInstanceIdentifier"], m["IsClusterWriter"]) for m in described["DBClusterMembers"]
    ] == [("aurora-ext-writer", True)]
    params = aws.client("rds").describe_db_cluster_parameters(
        DBClusterParameterGroupName="dbcpg-ext"
    )["Parameters"]
    assert {"ParameterName": "require_secure_transport", "ParameterValue": "ON"}.items() <= params[
        0
    ].items()
    assert delete(aws) == "DELETE_COMPLETE"
    assert rds_backends[ACCOUNT_ID][REGION].clusters == {}


def test_data_api_refuses_a_secret_the_cluster_does_not_accept(aws: boto3.Session) -> None:
    deploy(aws, secret_and_cluster())
    arn = aws.client("rds").describe_db_clusters(DBClusterIdentifier="aurora-ext")["DBClusters"][0][
        "DBClusterArn"
    ]
    secret_arn = aws.client("secretsmanager").describe_secret(SecretId="secret-ext")["ARN"]
    check_access(ACCOUNT_ID, REGION, {"resourceArn": arn, "secretArn": secret_arn})  # accepted
    aws.client("secretsmanager").put_secret_value(
        SecretId="secret-ext", SecretString='{"username":"admin","password":"wrong-password"}'
    )
    with pytest.raises(DataApiError, match="Access denied for user 'admin'") as denied:
        check_access(ACCOUNT_ID, REGION, {"resourceArn": arn, "secretArn": secret_arn})
    # a provisioned / Serverless v2 cluster: DatabaseErrorException with MySQL's 1045
    assert denied.value.code == "DatabaseErrorException"
    assert str(denied.value).startswith("Database error code: 1045. Message: Access denied")


def test_data_api_errors_before_the_sql_are_the_documented_ones(aws: boto3.Session) -> None:
    """NotFoundException, HttpEndpointNotEnabledException, SecretsErrorException and
    InvalidSecretException, as the ExecuteStatement API reference lists them (the emulator
    answered BadRequestException, a Serverless v1 error, for all of them)."""
    deploy(aws, secret_and_cluster())
    arn = aws.client("rds").describe_db_clusters(DBClusterIdentifier="aurora-ext")["DBClusters"][0][
        "DBClusterArn"
    ]
    secret_arn = aws.client("secretsmanager").describe_secret(SecretId="secret-ext")["ARN"]

    def code(params: dict[str, str]) -> tuple[str, int]:
        with pytest.raises(DataApiError) as failed:
            check_access(ACCOUNT_ID, REGION, params)
        return failed.value.code, failed.value.status

    assert code({"resourceArn": arn + "-gone", "secretArn": secret_arn}) == (
        "NotFoundException",
        404,
    )
    assert code({"resourceArn": arn, "secretArn": secret_arn + "-gone"}) == (
        "SecretsErrorException",
        400,
    )
    aws.client("secretsmanager").put_secret_value(SecretId="secret-ext", SecretString="not json")
    assert code({"resourceArn": arn, "secretArn": secret_arn}) == ("InvalidSecretException", 400)
    from moto.rds.models import rds_backends

    rds_backends[ACCOUNT_ID][REGION].clusters["aurora-ext"]._enable_http_endpoint = False
    assert code({"resourceArn": arn, "secretArn": secret_arn}) == (
        "HttpEndpointNotEnabledException",
        400,
    )


def test_the_data_api_applies_the_cluster_parameter_groups_sql_mode(aws: boto3.Session) -> None:
    """Aurora's default sql_mode is not strict; a cluster parameter group's value applies to the
    cluster's statements (cluster_settings feeds it to the pooled connections)."""
    from loanstack.emulator.rdsdata import cluster_settings
    from loanstack.emulator.rdsdata_errors import PROVISIONED, SERVERLESS_V1

    template = secret_and_cluster()
    deploy(aws, template)
    arn = aws.client("rds").describe_db_clusters(DBClusterIdentifier="aurora-ext")["DBClusters"][0][
        "DBClusterArn"
    ]
    assert cluster_settings(ACCOUNT_ID, REGION, {"resourceArn": arn}) == (PROVISIONED, None)
    aws.client("rds").modify_db_cluster_parameter_group(
        DBClusterParameterGroupName="dbcpg-ext",
        Parameters=[{"ParameterName": "sql_mode", "ParameterValue": "STRICT_ALL_TABLES",
                     "ApplyMethod": "immediate"}],
    )  # fmt: skip
    assert cluster_settings(ACCOUNT_ID, REGION, {"resourceArn": arn}) == (
        PROVISIONED,
        "STRICT_ALL_TABLES",
    )
    from moto.rds.models import rds_backends

    rds_backends[ACCOUNT_ID][REGION].clusters["aurora-ext"].engine_mode = "serverless"
    assert cluster_settings(ACCOUNT_ID, REGION, {"resourceArn": arn})[0] == SERVERLESS_V1


def failing_function(session: boto3.Session) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "index.py",
            "def handler(event, context):\n    raise RuntimeError('no database today')\n",
        )
    role = session.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"][
        "Arn"
    ]
    fn = session.client("lambda").create_function(
        FunctionName="rotate-ext",
        Runtime="python3.13",
        Role=role,
        Handler="index.handler",
        Code={"ZipFile": buffer.getvalue()},
    )
    return str(fn["FunctionArn"])


def test_rotation_schedule_enables_rotation_and_a_failing_step_leaves_awscurrent_alone(
    aws: boto3.Session,
) -> None:
    awslambda.install("http://127.0.0.1:9")  # the function makes no AWS call
    function_arn = failing_function(aws)
    resources = {
        "Secret": {
            "Type": "AWS::SecretsManager::Secret",
            "Properties": {"Name": "secret-rot", "SecretString": '{"password":"old-password"}'},
        },
        "Schedule": {
            "Type": "AWS::SecretsManager::RotationSchedule",
            "Properties": {
                "SecretId": {"Ref": "Secret"},
                "RotationLambdaARN": function_arn,
                "RotationRules": {"AutomaticallyAfterDays": 30},
            },
        },
    }
    assert deploy(aws, resources)["StackStatus"] == "CREATE_COMPLETE"
    sm = aws.client("secretsmanager")
    described = sm.describe_secret(SecretId="secret-rot")
    assert (
        described["RotationEnabled"] is True
        and described["RotationRules"]["AutomaticallyAfterDays"] == 30
    )
    with pytest.raises(
        sm.exceptions.InvalidRequestException, match="failed in createSecret: no database today"
    ):
        sm.rotate_secret(SecretId="secret-rot")
    assert json.loads(
        sm.get_secret_value(SecretId="secret-rot", VersionStage="AWSCURRENT")["SecretString"]
    ) == {"password": "old-password"}


def test_storage_bucket_gets_every_setting_and_its_tls_only_policy_lets_tls_requests_in(
    aws: boto3.Session,
) -> None:
    deny_plain_http = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [{"Fn::GetAtt": ["Bucket", "Arn"]}, {"Fn::Sub": "${Bucket.Arn}/*"}],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    resources = {
        "Bucket": {
            "Type": "AWS::S3::Bucket",
            "Properties": {
                "BucketName": "s3-ext",
                "VersioningConfiguration": {"Status": "Enabled"},
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True,
                    "BlockPublicPolicy": True,
                    "IgnorePublicAcls": True,
                    "RestrictPublicBuckets": True,
                },
                "LifecycleConfiguration": {
                    "Rules": [
                        {
                            "Id": "r",
                            "Status": "Enabled",
                            "ExpirationInDays": 90,
                            "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
                        }
                    ]
                },
            },
        },
        "Policy": {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": {"Ref": "Bucket"},
                "PolicyDocument": {"Version": "2012-10-17", "Statement": [deny_plain_http]},
            },
        },
    }
    assert deploy(aws, resources)["StackStatus"] == "CREATE_COMPLETE", failures(aws)
    s3 = aws.client("s3")
    assert s3.get_bucket_versioning(Bucket="s3-ext")["Status"] == "Enabled"
    assert (
        s3.get_public_access_block(Bucket="s3-ext")["PublicAccessBlockConfiguration"][
            "BlockPublicPolicy"
        ]
        is True
    )
    assert (
        s3.get_bucket_lifecycle_configuration(Bucket="s3-ext")["Rules"][0]["Expiration"]["Days"]
        == 90
    )
    s3.put_object(Bucket="s3-ext", Key="k", Body=b"x")  # TLS-only does not shut out TLS requests
    assert delete(aws) == "DELETE_FAILED", "a bucket with objects cannot be deleted"
    s3.put_bucket_policy(
        Bucket="s3-ext",
        Policy=json.dumps(
            {
                "Statement": [
                    {
                        **deny_plain_http,
                        "Resource": "arn:aws:s3:::s3-ext/*",
                        "Condition": {"Bool": {"aws:SecureTransport": "true"}},
                    }
                ]
            }
        ),
    )
    with pytest.raises(s3.exceptions.ClientError, match=r"Forbidden|AccessDenied"):
        s3.put_object(
            Bucket="s3-ext", Key="k2", Body=b"x"
        )  # a Deny whose condition holds still denies


def test_monitoring_alarm_subscription_and_trail(aws: boto3.Session) -> None:
    resources = {
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "sns-ext"}},
        "Sub": {
            "Type": "AWS::SNS::Subscription",
            "Properties": {
                "TopicArn": {"Ref": "Topic"},
                "Protocol": "email",
                "Endpoint": "ops@example.com",
            },
        },
        "Alarm": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmName": "alarm-ext",
                "Namespace": "AWS/Lambda",
                "MetricName": "Errors",
                "Statistic": "Sum",
                "Period": 300,
                "EvaluationPeriods": 1,
                "Threshold": 1,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "AlarmActions": [{"Ref": "Topic"}],
                "TreatMissingData": "notBreaching",
            },
        },
        "TrailBucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "s3-trail-ext"}},
        "Trail": {
            "Type": "AWS::CloudTrail::Trail",
            "Properties": {
                "TrailName": "trail-ext",
                "S3BucketName": {"Ref": "TrailBucket"},
                "IsLogging": True,
                "EnableLogFileValidation": True,
                "EventSelectors": [
                    {
                        "ReadWriteType": "All",
                        "DataResources": [
                            {"Type": "AWS::S3::Object", "Values": ["arn:aws:s3:::s3-trail-ext/"]}
                        ],
                    }
                ],
            },
        },
    }
    assert deploy(aws, resources)["StackStatus"] == "CREATE_COMPLETE", failures(aws)
    alarm = aws.client("cloudwatch").describe_alarms(AlarmNames=["alarm-ext"])["MetricAlarms"][0]
    assert (
        alarm["AlarmActions"] == [physical(aws)["Topic"]]
        and alarm["TreatMissingData"] == "notBreaching"
    )
    assert (
        aws.client("sns").list_subscriptions()["Subscriptions"][0]["Endpoint"] == "ops@example.com"
    )
    trail = aws.client("cloudtrail")
    assert trail.get_trail_status(Name="trail-ext")["IsLogging"] is True
    assert (
        trail.get_event_selectors(TrailName="trail-ext")["EventSelectors"][0]["DataResources"][0][
            "Type"
        ]
        == "AWS::S3::Object"
    )
    logged = aws.client("s3").list_objects_v2(Bucket="s3-trail-ext")["Contents"]
    assert logged and all(o["Key"].startswith(f"AWSLogs/{ACCOUNT_ID}/CloudTrail/") for o in logged)
    assert delete(aws) == "DELETE_FAILED"  # the trail logged DeleteStack into its own bucket
    assert trail.describe_trails()["trailList"] == []  # the trail went first; the bucket stays
    s3 = aws.client("s3")
    for o in s3.list_objects_v2(Bucket="s3-trail-ext")["Contents"]:
        s3.delete_object(Bucket="s3-trail-ext", Key=o["Key"])
    assert delete(aws) == "DELETE_COMPLETE"
    assert aws.client("cloudwatch").describe_alarms()["MetricAlarms"] == []
    assert trail.describe_trails()["trailList"] == []


def test_kms_key_keeps_its_policy_rotation_and_tags_and_is_scheduled_for_deletion(
    aws: boto3.Session,
) -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }
    resources = {
        "Key": {
            "Type": "AWS::KMS::Key",
            "Properties": {
                "KeyPolicy": policy,
                "EnableKeyRotation": True,
                "PendingWindowInDays": 7,
                "Tags": [{"Key": "CostCenter", "Value": "loans"}],
            },
        }
    }
    assert deploy(aws, resources)["StackStatus"] == "CREATE_COMPLETE", failures(aws)
    kms, key_id = aws.client("kms"), physical(aws)["Key"]
    assert json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]) == policy
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [
        {"TagKey": "CostCenter", "TagValue": "loans"}
    ]
    assert delete(aws) == "DELETE_COMPLETE"
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"


def test_intrinsics_moto_lacks_cidr_and_getazs_in_the_stack_region() -> None:
    install()
    with mock_aws():
        session = shared_session(region_name="eu-west-1")
        resources = {
            **VPC,
            "Subnet": {
                "Type": "AWS::EC2::Subnet",
                "Properties": {
                    "VpcId": {"Ref": "VPC"},
                    "CidrBlock": {"Fn::Select": [2, {"Fn::Cidr": ["10.9.0.0/16", 4, 12]}]},
                    "AvailabilityZone": {"Fn::Select": [1, {"Fn::GetAZs": ""}]},
                },
            },
        }
        assert deploy(session, resources)["StackStatus"] == "CREATE_COMPLETE", failures(session)
        subnet = session.client("ec2").describe_subnets(SubnetIds=[physical(session)["Subnet"]])[
            "Subnets"
        ][0]
        assert (subnet["CidrBlock"], subnet["AvailabilityZone"]) == ("10.9.32.0/20", "eu-west-1b")


def test_one_extension_per_type_and_it_wins_over_motos_model() -> None:
    install()
    from moto.cloudformation import parsing

    from loanstack.emulator.base import EXTENSIONS

    types = [ext.TYPE for ext in EXTENSIONS]
    assert len(set(types)) == len(types)
    assert all(parsing.get_model_map()[ext.TYPE] is ext for ext in EXTENSIONS)
