"""The emulator's AWS::EC2::SecurityGroupEgress (moto models none): deployed alone, its `Ref`
is the rule id, the rule is in the group, and the stack deletes cleanly."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from loanstack.emulator import ACCOUNT_ID, install
from tests.support import backends
from tests.support.sessions import session as shared_session

REGION = "us-east-1"


@pytest.fixture
def aws() -> Iterator[boto3.Session]:
    install()
    with mock_aws():
        yield shared_session(region_name=REGION)


def test_security_group_egress_rule_to_another_group_is_created_and_deleted(
    aws: boto3.Session,
) -> None:
    group = {"Type": "AWS::EC2::SecurityGroup", "Properties": {"GroupDescription": "g", "VpcId": {"Ref": "VPC"}}}  # fmt: skip
    resources = {
        "VPC": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.9.0.0/16"}},
        "From": group,
        "To": group,
        "Rule": {
            "Type": "AWS::EC2::SecurityGroupEgress",
            "Properties": {
                "GroupId": {"Fn::GetAtt": ["From", "GroupId"]},
                "IpProtocol": "tcp",
                "FromPort": 3306,
                "ToPort": 3306,
                "DestinationSecurityGroupId": {"Fn::GetAtt": ["To", "GroupId"]},
            },
        },
    }
    cfn = aws.client("cloudformation")
    change = cfn.create_change_set(
        StackName="sgr", ChangeSetName="c", ChangeSetType="CREATE",
        TemplateBody=json.dumps({"Resources": resources}),
    )  # fmt: skip
    cfn.execute_change_set(ChangeSetName=change["Id"])
    listed = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cfn.list_stack_resources(StackName="sgr")["StackResourceSummaries"]
    }
    rule_id = listed["Rule"]
    assert rule_id.startswith("sgr-")
    assert backends.exists("AWS::EC2::SecurityGroupEgress", rule_id, ACCOUNT_ID, REGION)
    egress = aws.client("ec2").describe_security_groups(GroupIds=[listed["From"]])[
        "SecurityGroups"
    ][0]["IpPermissionsEgress"]
    assert any(
        p.get("FromPort") == 3306 and p["UserIdGroupPairs"][0]["GroupId"] == listed["To"]
        for p in egress
    )
    cfn.delete_stack(StackName="sgr")  # the rule goes first (reverse dependency order)
    stacks = cfn.list_stacks()["StackSummaries"]
    assert [s["StackStatus"] for s in stacks if s["StackName"] == "sgr"] == ["DELETE_COMPLETE"]
