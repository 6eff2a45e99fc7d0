"""Each compliance check reports a deliberately broken copy of the template.

A check that passes the pristine template proves nothing until it is shown to fail a bad one.
"""

from __future__ import annotations

from typing import Any

import pytest

from loanstack import template
from loanstack.compliance import rules
from tests.helpers import build, ids


def report(doc: dict[str, Any], env: str = "dev") -> set[tuple[str, str]]:
    return ids(rules.run_checks(build(doc, env)))


def tags_of(doc: dict[str, Any], logical_id: str) -> list[dict[str, Any]]:
    return doc["Resources"][logical_id]["Properties"]["Tags"]


@pytest.mark.parametrize("check", rules.CHECKS, ids=lambda c: c.id)
def test_pristine_template_passes_each_check(
    pristine: dict[str, Any], env: str, check: rules.Check
) -> None:
    assert list(check.run(build(pristine, env))) == []


def test_r1_size_budget_bites(doc: dict[str, Any]) -> None:
    room = template.SIZE_BUDGET - len(template.minified(doc).encode())
    doc["Resources"]["VPC"]["Metadata"] = {"P": "x" * (room - len('"Metadata":{"P":""},'))}
    assert len(template.minified(doc).encode()) == template.SIZE_BUDGET
    assert ("LS001", "template") not in report(doc)
    doc["Resources"]["VPC"]["Metadata"]["P"] += "x"
    assert ("LS001", "template") in report(doc)


def test_r4_naming_bites_on_a_bad_name(doc: dict[str, Any]) -> None:
    doc["Resources"]["FlowLogsRole"]["Properties"]["RoleName"] = {
        "Fn::Sub": "flowlogs-${EnvironmentSuffix}"
    }
    assert ("LS004", "FlowLogsRole") in report(doc)


def test_r4_naming_bites_on_a_missing_name(doc: dict[str, Any]) -> None:
    del doc["Resources"]["DBSecurityGroup"]["Properties"]["GroupName"]
    assert ("LS004", "DBSecurityGroup") in report(doc)


def test_r4_naming_bites_on_a_name_without_the_suffix(doc: dict[str, Any]) -> None:
    tags_of(doc, "VPC")[0]["Value"] = "vpc-loanprocessing-prod"
    assert ("LS004", "VPC") in report(doc)


def test_r5_tagging_bites_on_a_removed_tag(doc: dict[str, Any]) -> None:
    tags = tags_of(doc, "KMSKey")
    tags[:] = [t for t in tags if t["Key"] != "CostCenter"]
    assert ("LS005", "KMSKey") in report(doc)


def test_r5_tagging_bites_on_a_hard_coded_value(doc: dict[str, Any]) -> None:
    for tag in tags_of(doc, "PrivateSubnet2"):
        if tag["Key"] == "Environment":
            tag["Value"] = "dev"
    assert ("LS005", "PrivateSubnet2") in report(doc, "prod")


def test_r5_tagging_bites_on_an_ec2_resource_without_name(doc: dict[str, Any]) -> None:
    tags = tags_of(doc, "PublicRouteTable")
    tags[:] = [t for t in tags if t["Key"] != "Name"]
    assert ("LS005", "PublicRouteTable") in report(doc)


def test_r6_destroyable_bites_on_retain(doc: dict[str, Any]) -> None:
    doc["Resources"]["FlowLogsLogGroup"]["DeletionPolicy"] = "Retain"
    assert ("LS006", "FlowLogsLogGroup") in report(doc)


def test_r6_destroyable_bites_on_snapshot_replace_policy(doc: dict[str, Any]) -> None:
    doc["Resources"]["KMSKey"]["UpdateReplacePolicy"] = "Snapshot"
    assert ("LS006", "KMSKey") in report(doc)


def test_r6_destroyable_bites_on_stateful_resource_left_to_default(doc: dict[str, Any]) -> None:
    del doc["Resources"]["KMSKey"]["DeletionPolicy"]
    assert ("LS006", "KMSKey") in report(doc)


def test_r6_destroyable_bites_on_deletion_protection(doc: dict[str, Any]) -> None:
    doc["Resources"]["Extra"] = {
        "Type": "AWS::Logs::LogGroup",
        "DeletionPolicy": "Delete",
        "UpdateReplacePolicy": "Delete",
        "Properties": {"DeletionProtectionEnabled": True},
    }
    assert ("LS006", "Extra") in report(doc)


def test_r7_open_ingress_bites(doc: dict[str, Any]) -> None:
    doc["Resources"]["DBSecurityGroup"]["Properties"]["SecurityGroupIngress"] = [
        {"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306, "CidrIp": "0.0.0.0/0"}
    ]
    assert ("LS007", "DBSecurityGroup") in report(doc)


def test_r12_retention_bites_on_89_days(doc: dict[str, Any]) -> None:
    doc["Resources"]["FlowLogsLogGroup"]["Properties"]["RetentionInDays"] = 89
    assert ("LS012", "FlowLogsLogGroup") in report(doc)


def test_r12_encryption_bites_on_missing_key(doc: dict[str, Any]) -> None:
    del doc["Resources"]["FlowLogsLogGroup"]["Properties"]["KmsKeyId"]
    assert ("LS012", "FlowLogsLogGroup") in report(doc)


def test_r12_bites_on_a_producer_whose_group_is_not_declared(doc: dict[str, Any]) -> None:
    doc["Resources"]["VPCFlowLog"]["Properties"]["LogGroupName"] = "/aws/vpc/somewhere-else"
    assert ("LS012", "VPCFlowLog") in report(doc)


def test_r12_bites_on_a_lambda_left_to_auto_create_its_log_group(doc: dict[str, Any]) -> None:
    doc["Resources"]["StrayFunction"] = {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "FunctionName": {"Fn::Sub": "lambda-stray-${EnvironmentSuffix}"},
            "Runtime": "python3.13",
            "Handler": "index.handler",
            "Role": {"Fn::GetAtt": ["FlowLogsRole", "Arn"]},
            "Code": {"ZipFile": "def handler(e, c): return e"},
        },
    }
    assert ("LS012", "StrayFunction") in report(doc)


def test_r15_bites_on_action_star(doc: dict[str, Any]) -> None:
    policy = doc["Resources"]["FlowLogsRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    policy["Statement"][0]["Action"] = "*"
    assert ("LS015", "FlowLogsRole/deliver-flow-logs") in report(doc)


def test_r15_bites_on_resource_star_for_a_scopable_action(doc: dict[str, Any]) -> None:
    policy = doc["Resources"]["FlowLogsRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    policy["Statement"][0]["Resource"] = "*"
    assert ("LS015", "FlowLogsRole/deliver-flow-logs") in report(doc)


def test_r15_allows_resource_star_only_for_unscopable_actions(doc: dict[str, Any]) -> None:
    policy = doc["Resources"]["FlowLogsRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    policy["Statement"].append(
        {"Effect": "Allow", "Action": ["ec2:DescribeNetworkInterfaces"], "Resource": "*"}
    )
    assert report(doc) == set()
    policy["Statement"][-1]["Action"].append("ec2:CreateNetworkInterface")
    assert ("LS015", "FlowLogsRole/deliver-flow-logs") in report(doc)


def test_r15_bites_on_a_hard_coded_partition(doc: dict[str, Any]) -> None:
    policy = doc["Resources"]["FlowLogsRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    policy["Statement"][1]["Resource"] = "arn:aws:logs:us-east-1:123456789012:log-group:*"
    found = {check for check, _ in report(doc)}
    assert "LS016" in found


# --- what real AWS refuses (SPEC D7): each check fails on the defect it was written for ------


def statement(doc: dict[str, Any], sid: str) -> dict[str, Any]:
    policy = doc["Resources"]["KMSKey"]["Properties"]["KeyPolicy"]
    return next(s for s in policy["Statement"] if s["Sid"] == sid)


@pytest.mark.parametrize("missing", ["VPC", "DBSecurityGroup", "NATGateway2", "KMSKeyAlias"])
def test_r1b_client_contract_bites_on_a_renamed_id(doc: dict[str, Any], missing: str) -> None:
    doc["Resources"][f"{missing}Renamed"] = doc["Resources"].pop(missing)
    assert ("LS002", missing) in report(doc)


def test_r1b_client_contract_bites_on_a_missing_output_and_name_tag(doc: dict[str, Any]) -> None:
    del doc["Outputs"]["DBSecretArn"]
    tags = tags_of(doc, "LoanValidationFunction")
    tags[:] = [t for t in tags if t["Key"] != "Name"]
    found = report(doc)
    assert ("LS002", "DBSecretArn") in found
    assert ("LS002", "LoanValidationFunction") in found


def test_r4_security_group_names_bite_on_the_sg_prefix(doc: dict[str, Any]) -> None:
    name = {"Fn::Sub": "sg-aurora-${EnvironmentSuffix}"}
    doc["Resources"]["DBSecurityGroup"]["Properties"]["GroupName"] = name
    assert ("LS003", "DBSecurityGroup") in report(doc)


def test_r7_lambda_return_traffic_bites_on_the_linux_only_range(doc: dict[str, Any]) -> None:
    entry = doc["Resources"]["PrivateNaclInboundReturnTraffic"]["Properties"]
    entry["PortRange"] = {"From": 32768, "To": 65535}
    assert ("LS017", "PrivateNetworkAcl") in report(doc)


def test_r7_lambda_return_traffic_bites_on_a_deny_before_the_allow(doc: dict[str, Any]) -> None:
    doc["Resources"]["PrivateNaclDenyRdp"] = {
        "Type": "AWS::EC2::NetworkAclEntry",
        "Properties": {
            "NetworkAclId": {"Ref": "PrivateNetworkAcl"},
            "RuleNumber": 90,
            "Protocol": 6,
            "RuleAction": "deny",
            "Egress": False,
            "CidrBlock": "0.0.0.0/0",
            "PortRange": {"From": 3389, "To": 3389},
        },
    }
    assert ("LS017", "PrivateNetworkAcl") in report(doc)


def test_r8_describe_key_under_an_encryption_context_bites(doc: dict[str, Any]) -> None:
    """The defect of 2026-11-28: CloudTrail's DescribeKey scoped by encryption context."""
    describe = statement(doc, "CloudTrailDescribeKey")
    describe["Condition"]["StringLike"] = statement(doc, "CloudTrailEncryptLogs")["Condition"][
        "StringLike"
    ]
    found = report(doc)
    assert ("LS008", "KMSKey/CloudTrailDescribeKey") in found
    assert ("LS018", "KMSKey") in found


def test_r8_trail_bucket_key_needs_account_decrypt(doc: dict[str, Any]) -> None:
    policy = doc["Resources"]["KMSKey"]["Properties"]["KeyPolicy"]
    policy["Statement"].remove(statement(doc, "AccountDecryptsTrailLogs"))
    assert ("LS018", "KMSKey") in report(doc)
    encryption = doc["Resources"]["TrailBucket"]["Properties"]["BucketEncryption"]
    encryption["ServerSideEncryptionConfiguration"][0]["BucketKeyEnabled"] = False
    assert ("LS018", "KMSKey") not in report(doc)  # without a bucket key it is not needed


def test_r8_a_log_group_the_key_policy_does_not_name_bites(doc: dict[str, Any]) -> None:
    arns = statement(doc, "CloudWatchLogsForThisStack")["Condition"]["ArnEquals"]
    arns["kms:EncryptionContext:aws:logs:arn"].pop()
    assert ("LS018", "KMSKey") in report(doc)


def test_r8_suffix_wildcard_for_log_groups_bites(doc: dict[str, Any]) -> None:
    """The old grant, log-group:*-<suffix>, also covered other stacks' groups."""
    logs = statement(doc, "CloudWatchLogsForThisStack")
    pattern = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*-${EnvironmentSuffix}"
    logs["Condition"] = {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": [{"Fn::Sub": pattern}]}}
    assert ("LS019", "KMSKey") in report(doc)


def test_r8_alarms_without_source_arn_bite(doc: dict[str, Any]) -> None:
    del statement(doc, "CloudWatchAlarmsToTopic")["Condition"]["ArnLike"]
    assert ("LS019", "KMSKey") in report(doc)


def test_r9_a_t_class_offered_with_the_data_api_bites(doc: dict[str, Any]) -> None:
    doc["Parameters"]["DBInstanceClass"]["AllowedValues"].append("db.t4g.medium")
    assert ("LS009", "DBInstance1") in report(doc)
    assert ("LS009", "DBInstance2") in report(doc, "prod")


def test_r11_a_fixed_reservation_bites(doc: dict[str, Any]) -> None:
    doc["Resources"]["SecretRotationLambda"]["Properties"]["ReservedConcurrentExecutions"] = 1
    assert ("LS011", "SecretRotationLambda") in report(doc)


@pytest.mark.parametrize(
    "pattern",
    [
        "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:alarm-*",
        "arn:${AWS::Partition}:cloudwatch:*:${AWS::AccountId}:alarm:alarm-validatorerrors-${EnvironmentSuffix}",
        "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:*:alarm:alarm-validatorerrors-${EnvironmentSuffix}*",
    ],
)
def test_r8_alarm_grants_wider_than_the_stack_bite(doc: dict[str, Any], pattern: str) -> None:
    """A trailing wildcard, another region or another account: each lets in others' alarms."""
    alarms = statement(doc, "CloudWatchAlarmsToTopic")["Condition"]
    del alarms["StringEquals"]
    alarms["ArnLike"] = {"aws:SourceArn": {"Fn::Sub": pattern}}
    assert ("LS019", "KMSKey") in report(doc)


def test_a_finding_carries_its_checks_id_and_a_json_pointer(doc: dict[str, Any]) -> None:
    """The id comes from the @check registration (written once); the path points into the
    template as cfn-lint's matches do."""
    doc["Resources"]["DBCluster"]["DeletionPolicy"] = "Retain"
    doc["Resources"]["VPC"]["Metadata"] = {"P": "x" * template.SIZE_BUDGET}
    found = rules.run_checks(build(doc, "dev"))
    [retained] = [f for f in found if f.resource == "DBCluster" and f.check_id == "LS006"]
    assert retained.path == "/Resources/DBCluster"
    [size] = [f for f in found if f.check_id == "LS001"]
    assert (size.resource, size.path) == ("template", "")
    [destroyable] = [c for c in rules.CHECKS if c.id == "LS006"]
    assert {f.check_id for f in destroyable.run(build(doc, "dev"))} == {"LS006"}
