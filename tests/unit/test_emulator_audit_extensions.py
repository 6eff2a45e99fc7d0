"""The emulator's metric filters, RDS event subscriptions (prod's alarms) and AWS Backup vaults,
plans and selections (prod's backups): created from a template through a change set, refused
where the service refuses, deleted with the stack.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from loanstack.emulator import install
from tests.support.sessions import session as shared_session

REGION = "us-east-1"
GROUP = {"Group": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/trail"}}}
FILTER = {
    "Filter": {
        "Type": "AWS::Logs::MetricFilter",
        "Properties": {
            "FilterName": "filter-trailchanges-dev42",
            "LogGroupName": "/trail",
            "FilterPattern": "{($.eventName=StopLogging)}",
            "MetricTransformations": [
                {
                    "MetricNamespace": "LoanAudit/dev42",
                    "MetricName": "TrailChanges",
                    "MetricValue": "1",
                }
            ],
        },
    }
}
TOPIC = {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "alarms"}}}


@pytest.fixture
def aws() -> Iterator[boto3.Session]:
    install()
    with mock_aws():
        yield shared_session(region_name=REGION)


def deploy(session: boto3.Session, resources: dict[str, Any], name: str = "audit") -> str:
    cfn = session.client("cloudformation")
    change_set = cfn.create_change_set(
        StackName=name,
        ChangeSetName="c",
        ChangeSetType="CREATE",
        TemplateBody=json.dumps({"Resources": resources}),
    )
    cfn.execute_change_set(ChangeSetName=change_set["Id"])
    return str(cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"])


def test_a_metric_filter_is_created_on_its_group_and_deleted_with_the_stack(
    aws: boto3.Session,
) -> None:
    # the filter depends on the group only through the name: order it as the template would
    resources = {**GROUP, **{"Filter": {**FILTER["Filter"], "DependsOn": "Group"}}}
    assert deploy(aws, resources) == "CREATE_COMPLETE"
    logs = aws.client("logs")
    (found,) = logs.describe_metric_filters(logGroupName="/trail")["metricFilters"]
    assert found["filterName"] == "filter-trailchanges-dev42"
    assert found["metricTransformations"][0]["metricName"] == "TrailChanges"
    aws.client("cloudformation").delete_stack(StackName="audit")
    assert logs.describe_metric_filters(logGroupName="/trail")["metricFilters"] == []


def test_a_metric_filter_on_a_missing_group_fails_the_deployment(aws: boto3.Session) -> None:
    assert deploy(aws, FILTER) == "ROLLBACK_COMPLETE"


def test_an_event_subscription_needs_its_topic_and_its_source(aws: boto3.Session) -> None:
    subscription: dict[str, Any] = {
        "Type": "AWS::RDS::EventSubscription",
        "DependsOn": "Topic",
        "Properties": {
            "SubscriptionName": "rdsevents-loanprocessing-dev42",
            "SnsTopicArn": {"Ref": "Topic"},
            "SourceType": "db-cluster",
            "SourceIds": ["aurora-missing"],
            "EventCategories": ["failover", "failure", "maintenance"],
        },
    }
    assert deploy(aws, {**TOPIC, "Sub": subscription}, "missing") == "ROLLBACK_COMPLETE"
    subscription["Properties"]["SourceIds"] = []
    assert deploy(aws, {**TOPIC, "Sub": subscription}) == "CREATE_COMPLETE"
    rds = aws.client("rds")
    (found,) = rds.describe_event_subscriptions()["EventSubscriptionsList"]
    assert found["CustSubscriptionId"] == "rdsevents-loanprocessing-dev42"
    assert found["EventCategoriesList"] == ["failover", "failure", "maintenance"]
    aws.client("cloudformation").delete_stack(StackName="audit")
    assert rds.describe_event_subscriptions()["EventSubscriptionsList"] == []


VAULT = {
    "Vault": {
        "Type": "AWS::Backup::BackupVault",
        "Properties": {
            "BackupVaultName": "backupvault-loanprocessing-prod42",
            "LockConfiguration": {"MinRetentionDays": 35},
        },
    }
}


def plan(vault: Any) -> dict[str, Any]:
    return {
        "Type": "AWS::Backup::BackupPlan",
        "Properties": {
            "BackupPlan": {
                "BackupPlanName": "backupplan-loanprocessing-prod42",
                "BackupPlanRule": [
                    {
                        "RuleName": "daily",
                        "TargetBackupVault": vault,
                        "ScheduleExpression": "cron(0 5 * * ? *)",
                        "Lifecycle": {"DeleteAfterDays": 35},
                    }
                ],
            }
        },
    }


def test_a_backup_plan_into_a_missing_vault_fails_the_deployment(aws: boto3.Session) -> None:
    assert deploy(aws, {"Plan": plan("no-such-vault")}) == "ROLLBACK_COMPLETE"


def test_a_locked_vault_and_its_plan_are_created_and_the_plan_goes_with_the_stack(
    aws: boto3.Session,
) -> None:
    resources = {**VAULT, "Plan": plan({"Ref": "Vault"})}
    assert deploy(aws, resources) == "CREATE_COMPLETE"
    backup = aws.client("backup")
    vault = backup.describe_backup_vault(BackupVaultName="backupvault-loanprocessing-prod42")
    assert vault["Locked"] is True and vault["MinRetentionDays"] == 35
    assert [p["BackupPlanName"] for p in backup.list_backup_plans()["BackupPlansList"]] == [
        "backupplan-loanprocessing-prod42"
    ]
    aws.client("cloudformation").delete_stack(StackName="audit")
    assert backup.list_backup_plans()["BackupPlansList"] == []


def test_a_selection_needs_its_plan_and_its_role(aws: boto3.Session) -> None:
    selection = {
        "Type": "AWS::Backup::BackupSelection",
        "Properties": {
            "BackupPlanId": "no-such-plan",
            "BackupSelection": {
                "SelectionName": "s",
                "IamRoleArn": "arn:aws:iam::123456789012:role/missing",
                "Resources": [],
            },
        },
    }
    assert deploy(aws, {"Selection": selection}) == "ROLLBACK_COMPLETE"
