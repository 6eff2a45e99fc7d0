"""Each compliance check reports a deliberately broken copy of the template.

A check that passes the pristine template proves nothing until it is shown to fail a bad one.
"""

from __future__ import annotations

from typing import Any

import pytest

from loanstack import template
from loanstack.compliance import rules
from tests.support.helpers import build, ids


def report(doc: dict[str, Any], env_type: str = "dev") -> set[tuple[str, str]]:
    return ids(rules.run_checks(build(doc, env_type)))


def tags_of(doc: dict[str, Any], logical_id: str) -> list[dict[str, Any]]:
    return doc["Resources"][logical_id]["Properties"]["Tags"]


@pytest.mark.parametrize("check", rules.CHECKS, ids=lambda c: c.id)
def test_pristine_template_passes_each_check(
    pristine: dict[str, Any], env_type: str, check: rules.Check
) -> None:
    assert list(check.run(build(pristine, env_type))) == []


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


def test_r8_trail_bucket_key_bites(doc: dict[str, Any]) -> None:
    """The first-deploy review's blocker: a Bucket Key on the trail bucket needs kms:Decrypt at
    CreateTrail under the bucket's context, which no statement of the key policy admits."""
    encryption = doc["Resources"]["TrailBucket"]["Properties"]["BucketEncryption"]
    encryption["ServerSideEncryptionConfiguration"][0]["BucketKeyEnabled"] = True
    assert ("LS018", "KMSKey") in report(doc)
    # the grant for readers of the logs (trail context) does not stand in for it
    assert statement(doc, "AccountDecryptsTrailLogs")
    encryption["ServerSideEncryptionConfiguration"][0]["BucketKeyEnabled"] = False
    assert ("LS018", "KMSKey") not in report(doc)


def test_r15_trust_condition_the_service_never_sends_bites(doc: dict[str, Any]) -> None:
    """CloudTrail's CloudWatch Logs role: aws:SourceArn is not sent, the trail fails."""
    trust = doc["Resources"]["TrailLogsRole"]["Properties"]["AssumeRolePolicyDocument"]
    trail_arn = "arn:${AWS::Partition}:cloudtrail:${AWS::Region}:${AWS::AccountId}:trail/t"
    trust["Statement"][0]["Condition"] = {"StringEquals": {"aws:SourceArn": {"Fn::Sub": trail_arn}}}
    assert ("LS020", "TrailLogsRole") in report(doc)


def test_r15_trust_of_an_unlisted_service_bites(doc: dict[str, Any]) -> None:
    trust = doc["Resources"]["FlowLogsRole"]["Properties"]["AssumeRolePolicyDocument"]
    trust["Statement"][0]["Principal"]["Service"] = "ecs-tasks.amazonaws.com"
    assert ("LS020", "FlowLogsRole") in report(doc)


def test_r15_documented_trust_conditions_pass(doc: dict[str, Any]) -> None:
    """Flow Logs documents aws:SourceAccount and aws:SourceArn: the check leaves them."""
    trust = doc["Resources"]["FlowLogsRole"]["Properties"]["AssumeRolePolicyDocument"]
    assert {"StringEquals", "ArnLike"} <= set(trust["Statement"][0]["Condition"])
    assert not {f for f in report(doc) if f[0] == "LS020"}


@pytest.mark.parametrize(
    ("logical_id", "prop", "name"),
    [
        ("TrailLogsRole", "RoleName", "role-trail-${EnvironmentSuffix}"),
        (
            "LoanDocumentsBucket",
            "BucketName",
            "s3-loandocuments-${EnvironmentSuffix}-${AWS::AccountId}",
        ),
        ("Trail", "TrailName", "trail-loanprocessing-${EnvironmentSuffix}"),
    ],
)
def test_r4_a_global_name_without_the_region_bites(
    doc: dict[str, Any], logical_id: str, prop: str, name: str
) -> None:
    doc["Resources"][logical_id]["Properties"][prop] = {"Fn::Sub": name}
    assert ("LS021", logical_id) in report(doc)


def test_r4_a_global_name_too_long_at_the_longest_suffix_bites(doc: dict[str, Any]) -> None:
    """s3-loandocuments-<16>-<account>-<15-char region> is 62 of 63: a longer purpose breaks it."""
    name = "s3-loandocumentsx-${EnvironmentSuffix}-${AWS::AccountId}-${AWS::Region}"
    doc["Resources"]["LoanDocumentsBucket"]["Properties"]["BucketName"] = {"Fn::Sub": name}
    assert ("LS021", "LoanDocumentsBucket") not in report(doc)  # 63: still fits
    name = name.replace("loandocumentsx", "loandocumentsxy")
    doc["Resources"]["LoanDocumentsBucket"]["Properties"]["BucketName"] = {"Fn::Sub": name}
    assert ("LS021", "LoanDocumentsBucket") in report(doc)


def test_r4_each_global_name_is_listed(pristine: dict[str, Any], env_type: str) -> None:
    """The check judges every role, bucket and the multi-region trail of the template."""
    env = build(pristine, env_type)
    listed = {r.logical_id for r, *_ in rules.global_names(env)}
    expected = {
        r.logical_id
        for r in env.of_type("AWS::IAM::Role", "AWS::S3::Bucket", "AWS::CloudTrail::Trail")
    }
    assert listed == expected and "Trail" in listed


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
    del statement(doc, "CloudWatchAlarmsToTopic")["Condition"]["ArnEquals"]
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
    del alarms["ArnEquals"]
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


@pytest.mark.parametrize(
    "mutation",
    ["kms_arn", "depends_on", "min_length", "no_r5"],
)
def test_r1b_client_property_contract_bites(doc: dict[str, Any], mutation: str) -> None:
    """The client's tests' expectations beyond names: each one put back to what we had."""
    resources, parameters = doc["Resources"], doc["Parameters"]
    if mutation == "kms_arn":
        resources["DBCluster"]["Properties"]["KmsKeyId"] = {"Fn::GetAtt": ["KMSKey", "Arn"]}
        expected = "DBCluster"
    elif mutation == "depends_on":
        resources["LoanValidationFunction"]["DependsOn"].remove("LoanValidationLogGroup")
        expected = "LoanValidationFunction"
    elif mutation == "min_length":
        parameters["EnvironmentSuffix"]["MinLength"] = 2
        expected = "EnvironmentSuffix"
    else:
        allowed = parameters["DBInstanceClass"]["AllowedValues"]
        allowed[:] = [v for v in allowed if not v.startswith("db.r5.")]
        expected = "DBInstanceClass"
    assert ("LS002", expected) in report(doc)


@pytest.mark.parametrize("logical_id", ["PublicSubnet1", "PrivateSubnet2", "DBInstance1"])
def test_r7_an_availability_zone_by_list_position_only_bites(
    doc: dict[str, Any], logical_id: str
) -> None:
    """The zone as it was: Fn::Select over Fn::GetAZs, with no pinned alternative."""
    props = doc["Resources"][logical_id]["Properties"]
    index = props["AvailabilityZone"]["Fn::Select"][0]
    props["AvailabilityZone"] = {"Fn::Select": [index, {"Fn::GetAZs": ""}]}
    assert ("LS022", logical_id) in report(doc)


def parameter_group(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["Resources"]["DBClusterParameterGroup"]["Properties"]["Parameters"]


@pytest.mark.parametrize("mode", [None, "NO_ENGINE_SUBSTITUTION", "ONLY_FULL_GROUP_BY"])
def test_r9_a_lax_sql_mode_bites(doc: dict[str, Any], mode: str | None) -> None:
    """Aurora's default (no sql_mode in our group) or a mode without STRICT_*: values clip."""
    if mode is None:
        del parameter_group(doc)["sql_mode"]
    else:
        parameter_group(doc)["sql_mode"] = mode
    assert ("LS023", "DBClusterParameterGroup") in report(doc)


def test_r9_a_cluster_on_the_default_parameter_group_bites(doc: dict[str, Any]) -> None:
    del doc["Resources"]["DBCluster"]["Properties"]["DBClusterParameterGroupName"]
    assert ("LS023", "DBCluster") in report(doc)


@pytest.mark.parametrize(
    ("name", "value"),
    [("slow_query_log", "1"), ("general_log", "ON"), ("server_audit_events", "CONNECT,QUERY_DML")],
)
def test_r12_a_log_that_carries_statement_text_bites(
    doc: dict[str, Any], name: str, value: str
) -> None:
    """The slow query log as it was (slow_query_log=1) wrote a slow chunk's applicant data."""
    parameter_group(doc)[name] = value
    assert ("LS024", "DBClusterParameterGroup") in report(doc)


def test_r14_a_serverless_writer_alarmed_on_memory_only_bites(doc: dict[str, Any]) -> None:
    """The alarms as they were: FreeableMemory < 256 MiB in every environment, no ACU alarm."""
    alarm = doc["Resources"]["DatabaseMemoryAlarm"]["Properties"]
    alarm.update(
        MetricName="FreeableMemory", Threshold=268435456, ComparisonOperator="LessThanThreshold"
    )
    for env_type in ("dev", "prod"):
        assert ("LS025", "DBInstance1") in report(doc, env_type)
    assert ("LS025", "DBInstance1") not in ids(
        rules.run_checks(build(doc, "prod", DBInstanceClass="db.r7g.large"))
    )
