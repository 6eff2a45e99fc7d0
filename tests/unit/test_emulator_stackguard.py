"""The emulator enforces what CloudFormation enforces on a stack (stackguard.py) and detects
drift (drift.py), on a small template through boto3."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from loanstack.emulator import CREDENTIALS, Emulator

REGION = "us-east-1"


@pytest.fixture(scope="module")
def clients() -> Iterator[dict[str, Any]]:
    emu = Emulator().start()
    kw = {"endpoint_url": emu.url, "region_name": REGION, **CREDENTIALS}
    yield {s: boto3.client(s, **kw) for s in ("cloudformation", "lambda", "iam", "ec2", "sns")}  # type: ignore[call-overload]
    emu.stop()


def body(clients: dict[str, Any], topic_name: str = "guarded") -> str:
    roles = clients["iam"].list_roles()["Roles"]
    role = (
        next((r["Arn"] for r in roles if r["RoleName"] == "fn"), None)
        or clients["iam"].create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    )
    return json.dumps(
        {
            "Resources": {
                "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": topic_name}},
                "Fn": {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "FunctionName": "guarded-fn",
                        "Runtime": "python3.12",
                        "Handler": "index.h",
                        "Role": role,
                        "MemorySize": 256,
                        "Code": {"ZipFile": "def h(e, c):\n    return 1\n"},
                    },
                },
                "Group": {
                    "Type": "AWS::EC2::SecurityGroup",
                    "Properties": {
                        "GroupDescription": "guarded",
                        "SecurityGroupIngress": [
                            {
                                "IpProtocol": "tcp",
                                "FromPort": 443,
                                "ToPort": 443,
                                "CidrIp": "10.0.0.0/16",
                            }
                        ],
                    },
                },
            }
        }
    )


def create(clients: dict[str, Any], name: str, **extra: Any) -> str:
    cfn = clients["cloudformation"]
    made = cfn.create_change_set(
        StackName=name, ChangeSetName="c1", ChangeSetType="CREATE", TemplateBody=body(clients),
        **extra,
    )  # fmt: skip
    cfn.execute_change_set(ChangeSetName=made["Id"])
    return str(made["StackId"])


def test_a_change_set_carries_tags_role_notifications_and_rollback_triggers(
    clients: dict[str, Any],
) -> None:
    topic = clients["sns"].create_topic(Name="events")["TopicArn"]
    rollback = {
        "RollbackTriggers": [
            {"Arn": f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:a", "Type": "AWS::CloudWatch::Alarm"}
        ],
        "MonitoringTimeInMinutes": 5,
    }  # fmt: skip
    create(
        clients, "carried", Tags=[{"Key": "Owner", "Value": "lending"}],
        RoleARN="arn:aws:iam::123456789012:role/cfn", NotificationARNs=[topic],
        RollbackConfiguration=rollback,
    )  # fmt: skip
    got = clients["cloudformation"].describe_stacks(StackName="carried")["Stacks"][0]
    assert got["StackStatus"] == "CREATE_COMPLETE"
    assert got["Tags"] == [{"Key": "Owner", "Value": "lending"}]
    assert got["RoleARN"] == "arn:aws:iam::123456789012:role/cfn"
    assert got["NotificationARNs"] == [topic]
    assert got["RollbackConfiguration"] == rollback
    clients["cloudformation"].delete_stack(StackName="carried")


def test_termination_protection_refuses_delete_as_aws_does(clients: dict[str, Any]) -> None:
    cfn = clients["cloudformation"]
    create(clients, "kept")
    cfn.update_termination_protection(StackName="kept", EnableTerminationProtection=True)
    with pytest.raises(ClientError) as refused:
        cfn.delete_stack(StackName="kept")
    assert refused.value.response["Error"]["Code"] == "ValidationError"
    assert "cannot be deleted while TerminationProtection is enabled" in str(refused.value)
    assert cfn.describe_stacks(StackName="kept")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    cfn.update_termination_protection(StackName="kept", EnableTerminationProtection=False)
    cfn.delete_stack(StackName="kept")


def test_a_stack_policy_denies_a_replacement_and_the_update_rolls_back(
    clients: dict[str, Any],
) -> None:
    cfn = clients["cloudformation"]
    create(clients, "policed")
    policy = {
        "Statement": [
            {"Effect": "Allow", "Action": "Update:*", "Principal": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": ["Update:Replace", "Update:Delete"], "Principal": "*",
             "Resource": ["LogicalResourceId/Topic"]},
        ]
    }  # fmt: skip
    cfn.set_stack_policy(StackName="policed", StackPolicyBody=json.dumps(policy))
    assert json.loads(cfn.get_stack_policy(StackName="policed")["StackPolicyBody"]) == policy
    made = cfn.create_change_set(
        StackName="policed", ChangeSetName="c2", ChangeSetType="UPDATE",
        TemplateBody=body(clients, "renamed"),
    )  # fmt: skip
    cfn.execute_change_set(ChangeSetName=made["Id"])
    got = cfn.describe_stacks(StackName="policed")["Stacks"][0]
    assert got["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    events = cfn.describe_stack_events(StackName="policed")["StackEvents"]
    failed = [e for e in events if e["ResourceStatus"] == "UPDATE_FAILED"]
    assert failed[0]["LogicalResourceId"] == "Topic"
    assert "Action denied by stack policy" in failed[0]["ResourceStatusReason"]
    assert "[Update:Replace]" in failed[0]["ResourceStatusReason"]
    topics = [t["TopicArn"] for t in clients["sns"].list_topics()["Topics"]]
    assert not any(t.endswith(":renamed") for t in topics), "nothing was changed"
    cfn.delete_stack(StackName="policed")


def test_drift_detection_finds_an_out_of_band_change(clients: dict[str, Any]) -> None:
    cfn = clients["cloudformation"]
    create(clients, "drifting")

    def detect() -> tuple[str, dict[str, Any]]:
        found = cfn.detect_stack_drift(StackName="drifting")["StackDriftDetectionId"]
        status = cfn.describe_stack_drift_detection_status(StackDriftDetectionId=found)
        drifts = cfn.describe_stack_resource_drifts(StackName="drifting")["StackResourceDrifts"]
        return status["StackDriftStatus"], {d["LogicalResourceId"]: d for d in drifts}

    status, drifts = detect()
    assert status == "IN_SYNC"
    assert drifts["Fn"]["StackResourceDriftStatus"] == "IN_SYNC"
    assert drifts["Group"]["StackResourceDriftStatus"] == "IN_SYNC"
    assert drifts["Topic"]["StackResourceDriftStatus"] == "NOT_CHECKED"

    clients["lambda"].update_function_configuration(FunctionName="guarded-fn", MemorySize=512)
    group = drifts["Group"]["PhysicalResourceId"]
    clients["ec2"].authorize_security_group_ingress(
        GroupId=group, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                                       "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )  # fmt: skip
    status, drifts = detect()
    assert status == "DRIFTED"
    assert drifts["Fn"]["PropertyDifferences"] == [
        {"PropertyPath": "/MemorySize", "ExpectedValue": "256", "ActualValue": "512",
         "DifferenceType": "NOT_EQUAL"}
    ]  # fmt: skip
    assert drifts["Group"]["StackResourceDriftStatus"] == "MODIFIED"
    assert "0.0.0.0/0" in drifts["Group"]["ActualProperties"]
    cfn.delete_stack(StackName="drifting")


def test_disable_rollback_keeps_what_a_failed_create_built(clients: dict[str, Any]) -> None:
    """ExecuteChangeSet DisableRollback: the stack stays CREATE_FAILED with the resources that
    were created (without it, the create rolls back to ROLLBACK_COMPLETE)."""
    cfn = clients["cloudformation"]
    broken = json.dumps(
        {
            "Resources": {
                "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "kept-topic"}},
                "Subnet": {
                    "Type": "AWS::EC2::Subnet",
                    "DependsOn": "Topic",
                    "Properties": {"VpcId": "vpc-00000000", "CidrBlock": "10.0.0.0/24"},
                },
            }
        }
    )
    for name, disable, status in (("rolled", False, "ROLLBACK_COMPLETE"),
                                  ("debugged", True, "CREATE_FAILED")):  # fmt: skip
        made = cfn.create_change_set(
            StackName=name, ChangeSetName="c1", ChangeSetType="CREATE", TemplateBody=broken
        )
        cfn.execute_change_set(ChangeSetName=made["Id"], DisableRollback=disable)
        got = cfn.describe_stacks(StackName=name)["Stacks"][0]
        assert got["StackStatus"] == status
        topics = [t["TopicArn"] for t in clients["sns"].list_topics()["Topics"]]
        assert any(t.endswith(":kept-topic") for t in topics) is disable
        cfn.delete_stack(StackName=name)
