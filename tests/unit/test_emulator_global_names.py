"""The emulator refuses what AWS refuses at a first deploy (SPEC D7): a CloudWatch Logs role
whose trust needs a key CloudTrail never sends, and an account-wide name (IAM role, S3 bucket,
multi-region trail) taken by the same stack in another region of the account."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from loanstack.emulator import ACCOUNT_ID, install

TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
SOURCE_ARN = {
    "StringEquals": {"aws:SourceArn": f"arn:aws:cloudtrail:us-east-1:{ACCOUNT_ID}:trail/t"}
}


@pytest.fixture
def aws() -> Iterator[None]:
    install()
    with mock_aws():
        yield


def trail_stack(
    trust: dict[str, Any], suffix: str = "x", region: str = "us-east-1"
) -> dict[str, Any]:
    """A trail with its bucket, log group and role, names as the template builds them."""
    name = f"{suffix}-{region}" if region else suffix
    return {
        "Resources": {
            "Bucket": {
                "Type": "AWS::S3::Bucket",
                "Properties": {"BucketName": f"s3-trail-{name}-{ACCOUNT_ID}"},
            },
            "Group": {
                "Type": "AWS::Logs::LogGroup",
                "Properties": {"LogGroupName": f"/aws/cloudtrail/{suffix}"},
            },
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {"RoleName": f"role-trail-{name}", "AssumeRolePolicyDocument": trust},
            },
            "Trail": {
                "Type": "AWS::CloudTrail::Trail",
                "Properties": {
                    "TrailName": f"trail-loans-{name}",
                    "IsLogging": True,
                    "IsMultiRegionTrail": True,
                    "S3BucketName": {"Ref": "Bucket"},
                    "CloudWatchLogsLogGroupArn": {"Fn::GetAtt": ["Group", "Arn"]},
                    "CloudWatchLogsRoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                },
            },
        }
    }


def deploy(body: dict[str, Any], region: str, name: str = "s") -> tuple[str, list[str]]:
    """Through a change set, as `loanstack deploy` does: status and failure reasons."""
    cfn = boto3.client("cloudformation", region_name=region)
    change_set = cfn.create_change_set(
        StackName=name, ChangeSetName="c", ChangeSetType="CREATE", TemplateBody=json.dumps(body)
    )
    cfn.execute_change_set(ChangeSetName=change_set["Id"])
    status = cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    events = cfn.describe_stack_events(StackName=name)["StackEvents"]
    reasons = [
        f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
        for e in events
        if e["ResourceStatus"].endswith("FAILED")
    ]
    return status, reasons


def test_a_trust_condition_cloudtrail_does_not_send_fails_the_trail(aws: None) -> None:
    """The blocker of the first-deploy review: aws:SourceArn on the trail's log role."""
    trust = copy.deepcopy(TRUST)
    trust["Statement"][0]["Condition"] = SOURCE_ARN
    status, reasons = deploy(trail_stack(trust), "us-east-1")
    assert status == "ROLLBACK_COMPLETE"
    assert any(r.startswith("Trail: InvalidCloudWatchLogsRoleArnException") for r in reasons)


def test_a_trust_without_conditions_lets_cloudtrail_in(aws: None) -> None:
    status, reasons = deploy(trail_stack(TRUST), "us-east-1")
    assert (status, reasons) == ("CREATE_COMPLETE", [])


def test_the_api_refuses_the_role_too(aws: None) -> None:
    trust = copy.deepcopy(TRUST)
    trust["Statement"][0]["Condition"] = SOURCE_ARN
    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="b-trail")
    with pytest.raises(ClientError) as refused:
        boto3.client("cloudtrail", region_name="us-east-1").create_trail(
            Name="trail-api",
            S3BucketName="b-trail",
            CloudWatchLogsLogGroupArn=f"arn:aws:logs:us-east-1:{ACCOUNT_ID}:log-group:g:*",
            CloudWatchLogsRoleArn=role["Arn"],
        )
    assert refused.value.response["Error"]["Code"] == "InvalidCloudWatchLogsRoleArnException"


@pytest.mark.parametrize("taken", ["Bucket", "Role", "Trail"])
def test_a_global_name_without_the_region_fails_in_the_second_region(aws: None, taken: str) -> None:
    """Names as they were (suffix only): the second region fails on the resource whose name
    is shared; each kind of name on its own."""
    first = trail_stack(TRUST, region="")
    assert deploy(first, "us-east-1")[0] == "CREATE_COMPLETE"
    second = trail_stack(TRUST, suffix="y", region="")
    prop = {"Bucket": "BucketName", "Role": "RoleName", "Trail": "TrailName"}[taken]
    same = first["Resources"][taken]["Properties"][prop]
    second["Resources"][taken]["Properties"][prop] = same
    status, reasons = deploy(second, "eu-west-1")
    assert status == "ROLLBACK_COMPLETE", reasons
    assert any(r.startswith(f"{taken}: ") for r in reasons), reasons


def test_names_with_the_region_deploy_in_two_regions(aws: None) -> None:
    for region in ("us-east-1", "eu-west-1"):
        status, reasons = deploy(trail_stack(TRUST, region=region), region)
        assert (status, reasons) == ("CREATE_COMPLETE", []), region


def test_a_role_that_does_not_exist_is_refused_as_aws_does(aws: None) -> None:
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="b-trail")
    with pytest.raises(ClientError) as refused:
        boto3.client("cloudtrail", region_name="us-east-1").create_trail(
            Name="trail-api",
            S3BucketName="b-trail",
            CloudWatchLogsLogGroupArn=f"arn:aws:logs:us-east-1:{ACCOUNT_ID}:log-group:g:*",
            CloudWatchLogsRoleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/nobody",
        )
    assert refused.value.response["Error"]["Code"] == "InvalidCloudWatchLogsRoleArnException"
