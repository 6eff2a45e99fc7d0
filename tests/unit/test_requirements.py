"""One test (or more) per SPEC requirement, evaluated for dev and prod.

They iterate the template: a resource added later is covered without editing this file.
"""

from __future__ import annotations

from typing import Any

import pytest

from loanstack import contract, template
from loanstack.compliance import rules
from loanstack.policy import Request, allows
from loanstack.template import Environment
from tests.support.helpers import build


def findings(env: Environment, requirement: str) -> list[str]:
    return [str(f) for f in rules.run_checks(env, only=requirement)]


# --- R1 -------------------------------------------------------------------------------------


def test_r1_template_is_canonical_two_space_json(pristine: dict[str, Any]) -> None:
    on_disk = template.TEMPLATE_PATH.read_text(encoding="utf-8")
    assert on_disk == template.canonical(pristine), "run: loanstack fmt"
    assert pristine["AWSTemplateFormatVersion"] == "2010-09-09"


def test_r1_minified_template_fits_the_size_budget(env: Environment) -> None:
    size = len(template.minified(env.template).encode())
    assert size <= template.SIZE_BUDGET < template.S3_UPLOAD_LIMIT
    assert findings(env, "R1") == []


def test_r1b_client_ids_outputs_and_name_tags_hold(env: Environment) -> None:
    assert findings(env, "R1b") == []


def test_r1_every_lambda_is_inline_code(env: Environment) -> None:
    for fn in env.of_type("AWS::Lambda::Function"):
        assert set(fn.properties["Code"]) == {"ZipFile"}, fn.logical_id


# --- R2 -------------------------------------------------------------------------------------


def test_r2_every_free_text_parameter_is_constrained(pristine: dict[str, Any]) -> None:
    for name, spec in pristine["Parameters"].items():
        if spec["Type"] == "String" and "AllowedValues" not in spec:
            assert "AllowedPattern" in spec and "MaxLength" in spec, name
            assert spec.get("ConstraintDescription"), name
        assert spec.get("Description"), name


def test_r2_environment_parameters(pristine: dict[str, Any]) -> None:
    params = pristine["Parameters"]
    assert params["EnvironmentType"]["AllowedValues"] == ["dev", "prod"]
    assert params["EnvironmentType"]["Default"] == "dev"
    for required in ("EnvironmentSuffix", "CostCenter", "MigrationPhase"):
        assert required in params


@pytest.mark.parametrize(
    "bad", ["", "Dev42", "dev_42", "dev--42", "-dev", "dev-", "x" * 17, "dev 42"]
)
def test_r2_environment_suffix_pattern_refuses_bad_values(
    pristine: dict[str, Any], bad: str
) -> None:
    spec = pristine["Parameters"]["EnvironmentSuffix"]
    assert template.constraint_violation(spec, bad) is not None


def test_r1b_a_one_character_suffix_is_accepted(pristine: dict[str, Any]) -> None:
    """The client's tests set MinLength 1 (R1b): a pipeline may deploy suffix "a"."""
    spec = pristine["Parameters"]["EnvironmentSuffix"]
    assert template.constraint_violation(spec, "a") is None


def test_r2_longest_allowed_suffix_fits_every_name(pristine: dict[str, Any], env_type: str) -> None:
    """Names carry the suffix; the longest suffix must still fit each type's name length limit."""
    longest = "a" * pristine["Parameters"]["EnvironmentSuffix"]["MaxLength"]
    env = template.instantiate(pristine, template.judged_parameters(env_type, longest))
    for r in env.resources.values():
        schema = template.resource_schema(r.type)
        for prop in template.name_properties(r.type):
            value = r.properties.get(prop)
            limit = schema["properties"][prop].get("maxLength")
            if isinstance(value, str) and limit:
                assert len(value) <= limit, f"{r.logical_id}.{prop} {value!r} > {limit}"


def test_r2_console_groups_and_labels_every_parameter(pristine: dict[str, Any]) -> None:
    interface = pristine["Metadata"]["AWS::CloudFormation::Interface"]
    grouped = [p for group in interface["ParameterGroups"] for p in group["Parameters"]]
    assert sorted(grouped) == sorted(pristine["Parameters"]), "each parameter in exactly one group"
    assert set(interface["ParameterLabels"]) == set(pristine["Parameters"])


# --- R3 -------------------------------------------------------------------------------------


def test_r3_prod_has_a_nat_gateway_per_az_dev_one(pristine: dict[str, Any]) -> None:
    dev, prod = build(pristine, "dev"), build(pristine, "prod")
    assert len(list(dev.of_type("AWS::EC2::NatGateway"))) == 1
    assert len(list(prod.of_type("AWS::EC2::NatGateway"))) == 2
    subnets = {n.properties["SubnetId"]["Ref"] for n in prod.of_type("AWS::EC2::NatGateway")}
    assert subnets == {"PublicSubnet1", "PublicSubnet2"}


def test_r3_each_private_route_table_uses_its_own_az_nat_when_there_is_one(
    pristine: dict[str, Any],
) -> None:
    for env_type, second in (("dev", "NATGateway1"), ("prod", "NATGateway2")):
        env = build(pristine, env_type)
        routes = {
            r.properties["RouteTableId"]["Ref"]: r.properties.get("NatGatewayId", {}).get("Ref")
            for r in env.of_type("AWS::EC2::Route")
        }
        assert routes["PrivateRouteTable1"] == "NATGateway1"
        assert routes["PrivateRouteTable2"] == second
        assert set(routes.values()) - {None} <= set(env.resources)


def test_r3_differences_are_driven_by_named_conditions(pristine: dict[str, Any]) -> None:
    assert "IsProduction" in pristine["Conditions"]
    conditional = [r for r in pristine["Resources"].values() if "Condition" in r]
    assert conditional and all(r["Condition"] in pristine["Conditions"] for r in conditional)


def test_r3_prod_adds_an_aurora_reader_in_the_second_az(pristine: dict[str, Any]) -> None:
    dev, prod = build(pristine, "dev"), build(pristine, "prod")
    assert [i.logical_id for i in dev.of_type("AWS::RDS::DBInstance")] == ["DBInstance1"]
    assert [i.logical_id for i in prod.of_type("AWS::RDS::DBInstance")] == [
        "DBInstance1",
        "DBInstance2",
    ]
    writer, reader = (
        prod.resources["DBInstance1"].properties,
        prod.resources["DBInstance2"].properties,
    )
    assert writer["AvailabilityZone"] != reader["AvailabilityZone"]
    assert (
        writer["AvailabilityZone"]
        == prod.resources["PrivateSubnet1"].properties["AvailabilityZone"]
    )
    assert (
        reader["AvailabilityZone"]
        == prod.resources["PrivateSubnet2"].properties["AvailabilityZone"]
    )


# --- R4 R5 R6 -------------------------------------------------------------------------------


def test_r4_every_named_resource_follows_the_naming_convention(env: Environment) -> None:
    assert findings(env, "R4") == []
    named = [r for r in env.resources.values() if template.name_properties(r.type)]
    assert named, "the convention must judge something"


def test_r5_every_taggable_resource_carries_the_cost_tags(env: Environment) -> None:
    assert findings(env, "R5") == []
    assert sum(template.tags_of(r) is not None for r in env.resources.values()) >= 10


def test_r6_everything_is_destroyable(env: Environment) -> None:
    assert findings(env, "R6") == []


# --- R7 -------------------------------------------------------------------------------------


def test_r7_subnets_span_two_azs_public_and_private(env: Environment) -> None:
    subnets = {r.logical_id: r.properties for r in env.of_type("AWS::EC2::Subnet")}
    assert set(subnets) == {"PublicSubnet1", "PublicSubnet2", "PrivateSubnet1", "PrivateSubnet2"}
    assert (
        subnets["PublicSubnet1"]["AvailabilityZone"]
        == subnets["PrivateSubnet1"]["AvailabilityZone"]
    )
    assert (
        subnets["PublicSubnet1"]["AvailabilityZone"] != subnets["PublicSubnet2"]["AvailabilityZone"]
    )
    assert all(s["MapPublicIpOnLaunch"] is False for s in subnets.values())
    raw = env.template["Resources"]["PublicSubnet1"]["Properties"]["AvailabilityZone"]
    assert "Fn::GetAZs" in str(raw), "AZs come from Fn::GetAZs, never hard-coded"


def test_r7_every_subnet_has_a_route_table_and_a_network_acl(env: Environment) -> None:
    for kind in ("AWS::EC2::SubnetRouteTableAssociation", "AWS::EC2::SubnetNetworkAclAssociation"):
        associated = {r.properties["SubnetId"]["Ref"] for r in env.of_type(kind)}
        assert associated == {r.logical_id for r in env.of_type("AWS::EC2::Subnet")}, kind


def test_r7_network_acls_have_explicit_documented_rules_both_ways(env: Environment) -> None:
    acls = [r.logical_id for r in env.of_type("AWS::EC2::NetworkAcl")]
    assert len(acls) == 2
    for acl in acls:
        entries = [
            e
            for e in env.of_type("AWS::EC2::NetworkAclEntry")
            if e.properties["NetworkAclId"] == {"Ref": acl}
        ]
        assert {e.properties["Egress"] for e in entries} == {True, False}, acl
        assert all(e.raw["Metadata"]["Purpose"] for e in entries), "each rule says why it exists"
        # stateless ACLs must let the replies to HTTPS calls back in (Linux ephemeral ports)
        assert any(
            not e.properties["Egress"]
            and e.properties["CidrBlock"] == "0.0.0.0/0"
            and e.properties["PortRange"]["From"] <= 32768
            and e.properties["PortRange"]["To"] >= 60999
            for e in entries
        ), acl


def test_r7_no_security_group_ingress_from_the_internet(env: Environment) -> None:
    assert findings(env, "R7") == []


def test_r7_flow_logs_and_s3_gateway_endpoint(env: Environment) -> None:
    (flow,) = env.of_type("AWS::EC2::FlowLog")
    assert flow.properties["ResourceId"] == {"Ref": "VPC"}
    assert flow.properties["TrafficType"] == "ALL"
    (endpoint,) = env.of_type("AWS::EC2::VPCEndpoint")
    assert endpoint.properties["VpcEndpointType"] == "Gateway"
    assert endpoint.properties["ServiceName"] == f"com.amazonaws.{env.context.region}.s3"
    private_tables = {
        r.logical_id for r in env.of_type("AWS::EC2::RouteTable") if "Private" in r.logical_id
    }
    assert {t["Ref"] for t in endpoint.properties["RouteTableIds"]} == private_tables


# --- R8 -------------------------------------------------------------------------------------


def test_r8_customer_managed_key_rotates_and_has_an_alias(env: Environment) -> None:
    key = env.resources["KMSKey"]
    assert key.properties["EnableKeyRotation"] is True
    (alias,) = env.of_type("AWS::KMS::Alias")
    assert alias.properties["TargetKeyId"] == {"Ref": "KMSKey"}


DATA_ACTIONS = (
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:*",
    "*",
)


def test_r8_key_policy_grants_data_use_only_under_conditions(env: Environment) -> None:
    """Administrators manage the key; using it to encrypt or decrypt needs a scoping condition."""
    policy = env.resources["KMSKey"].properties["KeyPolicy"]
    for st in template.statements(policy):
        actions = template.as_list(st["Action"])
        if any(a in DATA_ACTIONS for a in actions):
            assert st.get("Condition"), st.get("Sid")
        if st["Effect"] == "Allow" and "AWS" in st["Principal"]:
            assert st["Principal"] == {"AWS": f"arn:aws:iam::{env.context.account_id}:root"}


def test_r8_key_is_usable_through_the_services_that_use_it(env: Environment) -> None:
    policy = env.resources["KMSKey"].properties["KeyPolicy"]
    via: set[str] = set()
    for st in template.statements(policy):
        condition = st.get("Condition", {}).get("StringEquals", {})
        via |= set(template.as_list(condition.get("kms:ViaService", [])))
        if "kms:ViaService" in condition:
            assert condition["kms:CallerAccount"] == env.context.account_id
    region = env.context.region
    used = ("rds", "secretsmanager", "lambda", "s3", "sqs", "sns")
    assert {f"{svc}.{region}.amazonaws.com" for svc in used} <= via


def test_r8_every_key_user_is_let_in_exactly_as_its_service_documents(
    env: Environment,
) -> None:
    """CloudTrail (describe, encrypt, bucket-key decrypt), CloudWatch Logs per declared group and
    the alarms publishing to the encrypted topic, replayed against the key policy (LS008/18/19)."""
    assert findings(env, "R8") == []
    policy = env.resources["KMSKey"].properties["KeyPolicy"]
    account = env.context.account_id
    other = f"arn:aws:logs:us-east-1:{account}:log-group:/aws/lambda/other-stack-dev42"
    logs = ("Service", "logs.us-east-1.amazonaws.com")
    context = {"kms:EncryptionContext:aws:logs:arn": other}
    assert not allows(policy, Request(logs, "kms:GenerateDataKey", context))


def test_r8_cloudtrail_and_cloudwatch_use_the_key_only_for_this_stack(
    env: Environment,
) -> None:
    policy = env.resources["KMSKey"].properties["KeyPolicy"]
    by_service = {
        st["Principal"]["Service"]: st
        for st in template.statements(policy)
        if "Service" in st.get("Principal", {})
    }
    trail = by_service["cloudtrail.amazonaws.com"]
    assert trail["Condition"]["StringEquals"]["aws:SourceArn"].endswith(
        ":trail/trail-loanprocessing-dev42-us-east-1"
    )
    alarms_key = by_service["cloudwatch.amazonaws.com"]
    assert alarms_key["Condition"]["StringEquals"]["aws:SourceAccount"] == env.context.account_id
    deny = [st for st in template.statements(policy) if st["Effect"] == "Deny"]
    assert deny and deny[0]["Action"] == "kms:CreateGrant"


# --- R12 R15 R16 ----------------------------------------------------------------------------


def test_r12_every_log_group_retains_exactly_90_days(env: Environment) -> None:
    assert findings(env, "R12") == []
    groups = list(env.of_type("AWS::Logs::LogGroup"))
    assert groups and all(g.properties["RetentionInDays"] == 90 for g in groups)


def test_r15_iam_is_least_privilege_and_partition_free(env: Environment) -> None:
    assert findings(env, "R15") == []
    assert any(True for _ in env.of_type("AWS::IAM::Role"))


def test_r16_every_output_is_exported_under_the_stack_name(pristine: dict[str, Any]) -> None:
    for key, output in pristine["Outputs"].items():
        assert output["Export"]["Name"] == {"Fn::Sub": f"${{AWS::StackName}}-{key}"}, key
        assert output.get("Description"), key


def test_r1b_r16_compatibility_outputs_exist(env: Environment) -> None:
    for key in contract.OUTPUTS:
        assert key in env.outputs, key


# --- R9 -------------------------------------------------------------------------------------

SCALE_TO_ZERO_MIN = (3, 8)  # Data API needs 3.07+; Serverless v2 at 0 ACU (auto-pause) 3.08+


def aurora_version(version: str) -> tuple[int, int]:
    major, minor = version.split("mysql_aurora.")[1].split(".")[:2]
    return int(major), int(minor)


def test_r9_aurora_mysql_3_with_a_data_api_capable_default(pristine: dict[str, Any]) -> None:
    spec = pristine["Parameters"]["DBEngineVersion"]
    assert aurora_version(spec["Default"]) >= SCALE_TO_ZERO_MIN
    assert template.constraint_violation(spec, "8.0.mysql_aurora.3.07.1") is not None
    assert template.constraint_violation(spec, "5.7.mysql_aurora.2.11.0") is not None
    assert template.constraint_violation(spec, "8.0.mysql_aurora.3.08.0") is None


def test_r9_no_t_class_offered_and_serverless_v2_by_default(pristine: dict[str, Any]) -> None:
    spec = pristine["Parameters"]["DBInstanceClass"]
    assert spec["Default"] == "db.serverless"
    assert not [c for c in spec["AllowedValues"] if c.startswith("db.t")]
    for family in ("r6g", "r7g", "r8g"):
        assert any(c.startswith(f"db.{family}.") for c in spec["AllowedValues"]), family


def test_r9_dev_scales_to_zero_and_pauses_prod_keeps_a_floor(pristine: dict[str, Any]) -> None:
    dev, prod = (build(pristine, env_type) for env_type in ("dev", "prod"))
    (dev_cluster,), (prod_cluster,) = (
        dev.of_type("AWS::RDS::DBCluster"),
        prod.of_type("AWS::RDS::DBCluster"),
    )
    dev_scaling = dev_cluster.properties["ServerlessV2ScalingConfiguration"]
    prod_scaling = prod_cluster.properties["ServerlessV2ScalingConfiguration"]
    assert dev_scaling["MinCapacity"] == 0 and 300 <= dev_scaling["SecondsUntilAutoPause"] <= 86400
    assert prod_scaling["MinCapacity"] >= 0.5 and "SecondsUntilAutoPause" not in prod_scaling
    for env in (dev, prod):
        for db in env.of_type("AWS::RDS::DBInstance"):
            assert db.properties["DBInstanceClass"] == "db.serverless", db.logical_id
    provisioned = build(pristine, "prod", DBInstanceClass="db.r7g.large")
    (cluster,) = provisioned.of_type("AWS::RDS::DBCluster")
    assert "ServerlessV2ScalingConfiguration" not in cluster.properties


def test_r9_cluster_is_encrypted_backed_up_destroyable_with_data_api(env: Environment) -> None:
    (cluster,) = env.of_type("AWS::RDS::DBCluster")
    p = cluster.properties
    assert p["Engine"] == "aurora-mysql"
    assert p["StorageEncrypted"] is True and p["KmsKeyId"] == {"Ref": "KMSKey"}
    assert p["BackupRetentionPeriod"] >= 7
    assert p["DeletionProtection"] is False
    kept = "Snapshot" if env.parameters["EnvironmentType"] == "prod" else "Delete"  # R6
    assert cluster.deletion_policy == kept == cluster.update_replace_policy
    assert p["EnableHttpEndpoint"] is True
    assert set(p["EnableCloudwatchLogsExports"]) == {"audit", "error", "general", "slowquery"}
    assert {g["Ref"] for g in p["VpcSecurityGroupIds"]} == {"DBSecurityGroup"}


def test_r9_credentials_only_through_dynamic_references_to_the_secret(
    env: Environment,
) -> None:
    (cluster,) = env.of_type("AWS::RDS::DBCluster")
    raw = env.template["Resources"][cluster.logical_id]["Properties"]
    for prop, key in (("MasterUsername", "username"), ("MasterUserPassword", "password")):
        assert raw[prop] == {
            "Fn::Sub": f"{{{{resolve:secretsmanager:${{DBSecret}}:SecretString:{key}}}}}"
        }


def test_r9_parameter_group_requires_tls_and_audits_connections_ddl_dcl(
    env: Environment,
) -> None:
    (group,) = env.of_type("AWS::RDS::DBClusterParameterGroup")
    params = group.properties["Parameters"]
    assert group.properties["Family"] == "aurora-mysql8.0"
    assert params["require_secure_transport"] == "ON"
    assert params["server_audit_logging"] == "1"
    assert {"CONNECT", "QUERY_DDL", "QUERY_DCL"} <= set(params["server_audit_events"].split(","))
    (cluster,) = env.of_type("AWS::RDS::DBCluster")
    assert cluster.properties["DBClusterParameterGroupName"] == {"Ref": group.logical_id}


def test_r9_database_runs_in_the_private_subnets(env: Environment) -> None:
    (group,) = env.of_type("AWS::RDS::DBSubnetGroup")
    assert {s["Ref"] for s in group.properties["SubnetIds"]} == {"PrivateSubnet1", "PrivateSubnet2"}
    assert all(
        i.properties["PubliclyAccessible"] is False for i in env.of_type("AWS::RDS::DBInstance")
    )


# --- R10 ------------------------------------------------------------------------------------


def test_r10_secret_is_cmk_encrypted_and_attached_to_the_cluster(env: Environment) -> None:
    secret = env.resources["DBSecret"]
    assert secret.properties["KmsKeyId"] == {"Ref": "KMSKey"}
    (attachment,) = env.of_type("AWS::SecretsManager::SecretTargetAttachment")
    assert attachment.properties == {
        "SecretId": {"Ref": "DBSecret"},
        "TargetId": {"Ref": "DBCluster"},
        "TargetType": "AWS::RDS::DBCluster",
    }


def test_r10_generated_passwords_avoid_what_rds_and_shells_refuse(env: Environment) -> None:
    generated = env.resources["DBSecret"].properties["GenerateSecretString"]
    excluded = set(generated["ExcludeCharacters"])
    assert {"/", "@", '"', " ", "'", "`", "$", "\\"} <= excluded  # RDS refuses / @ " space
    rotation_env = env.resources["SecretRotationLambda"].properties["Environment"]["Variables"]
    assert rotation_env["EXCLUDE_CHARACTERS"] == generated["ExcludeCharacters"]
    assert int(rotation_env["PASSWORD_LENGTH"]) == generated["PasswordLength"] >= 32


def test_r10_rotation_resources_in_order_role_function_permission_schedule(
    pristine: dict[str, Any],
) -> None:
    order = list(pristine["Resources"])
    names = [
        "SecretRotationLambdaRole",
        "SecretRotationLambda",
        "SecretRotationLambdaPermission",
        "SecretRotationSchedule",
    ]
    positions = [order.index(n) for n in names]
    assert positions == sorted(positions)


def test_r10_rotates_every_30_days_with_the_custom_function(env: Environment) -> None:
    schedule = env.resources["SecretRotationSchedule"]
    assert schedule.properties["SecretId"] == {"Ref": "DBSecret"}
    assert schedule.properties["RotationLambdaARN"] == {
        "Fn::GetAtt": ["SecretRotationLambda", "Arn"]
    }
    assert schedule.properties["RotationRules"] == {"AutomaticallyAfterDays": 30}
    needs = set(schedule.raw["DependsOn"]) | template.references(schedule.raw["Properties"])
    assert {"SecretRotationLambdaPermission", "DBSecretAttachment", "DBInstance1"} <= needs


def test_r10_only_secrets_manager_of_this_account_may_invoke_for_this_secret(
    env: Environment,
) -> None:
    permission = env.resources["SecretRotationLambdaPermission"].properties
    assert permission["Principal"] == "secretsmanager.amazonaws.com"
    assert permission["SourceAccount"] == env.context.account_id
    assert permission["SourceArn"] == {"Ref": "DBSecret"}


def test_r10_r15_rotation_role_reaches_only_this_secret_and_this_cluster(
    env: Environment,
) -> None:
    role = env.resources["SecretRotationLambdaRole"]
    for _, document in template.policy_documents(role):
        for st in template.statements(document):
            actions = template.as_list(st["Action"])
            if any(
                a.startswith("secretsmanager:") and a != "secretsmanager:GetRandomPassword"
                for a in actions
            ):  # the master secret and the application's (alternating users), nothing else
                assert st["Resource"] == [{"Ref": "DBSecret"}, {"Ref": "AppDatabaseSecret"}]
            if any(a.startswith("rds-data:") for a in actions):  # as the master: user setup
                assert st["Resource"] == {"Fn::GetAtt": ["DBCluster", "DBClusterArn"]}
                assert actions == ["rds-data:ExecuteStatement"]
            if any(a.startswith("rds:") for a in actions):
                assert st["Resource"] == {"Fn::GetAtt": ["DBCluster", "DBClusterArn"]}
                assert set(actions) == {"rds:DescribeDBClusters", "rds:ModifyDBCluster"}


# --- R11 (every function) -----------------------------------------------------------------


def test_r11_every_function_runs_in_the_private_subnets_with_its_own_security_group(
    env: Environment,
) -> None:
    groups: list[str] = []
    for fn in env.of_type("AWS::Lambda::Function"):
        vpc = fn.properties["VpcConfig"]
        assert {s["Ref"] for s in vpc["SubnetIds"]} == {"PrivateSubnet1", "PrivateSubnet2"}, (
            fn.logical_id
        )
        groups += [g["Ref"] for g in vpc["SecurityGroupIds"]]
        assert set(fn.raw.get("DependsOn", [])) >= {"PrivateRoute1", "PrivateRoute2"}, (
            "network path before first call"
        )
    assert len(groups) == len(set(groups)), "no security group shared between functions"


def test_r11_every_function_logs_json_to_its_declared_group_encrypted_and_bounded(
    env: Environment,
) -> None:
    for fn in env.of_type("AWS::Lambda::Function"):
        p = fn.properties
        assert p["LoggingConfig"]["LogFormat"] == "JSON", fn.logical_id
        # a Ref, or the group's name with a DependsOn on it (the client's tests read the
        # validation function's DependsOn; cfn-lint W3005 forbids both at once)
        declared = {
            g.properties["LogGroupName"]: g.logical_id for g in env.of_type("AWS::Logs::LogGroup")
        }
        group = env.name_of(p["LoggingConfig"]["LogGroup"])
        assert group in declared, fn.logical_id
        waits_for = template.references(fn.raw["Properties"]) | set(
            template.as_list(fn.raw.get("DependsOn", []))
        )
        assert declared[group] in waits_for, fn.logical_id
        assert p["KmsKeyArn"] == {"Fn::GetAtt": ["KMSKey", "Arn"]}, fn.logical_id


def test_r11_every_reservation_can_be_switched_off(env: Environment) -> None:
    assert findings(env, "R11") == []


# --- R11 (loan validation function) ---------------------------------------------------------


def test_r11_loan_validation_function_sizing(pristine: dict[str, Any], env: Environment) -> None:
    fn = env.resources["LoanValidationFunction"].properties
    assert (
        fn["MemorySize"] == 1024 == int(pristine["Parameters"]["ValidationMemorySize"]["Default"])
    )
    assert fn["ReservedConcurrentExecutions"] == int(
        pristine["Parameters"]["ValidationReservedConcurrency"]["Default"]
    )
    off = build(pristine, env.parameters["EnvironmentType"], ValidationReservedConcurrency="0")
    assert "ReservedConcurrentExecutions" not in off.resources["LoanValidationFunction"].properties
    rotation = env.resources["SecretRotationLambda"].properties
    assert "ReservedConcurrentExecutions" not in rotation, "Secrets Manager already serialises"


def test_r11_asynchronous_failures_end_in_an_encrypted_dead_letter_queue(
    env: Environment,
) -> None:
    fn = env.resources["LoanValidationFunction"].properties
    queue_id = fn["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][0]
    queue = env.resources[queue_id]
    assert queue.type == "AWS::SQS::Queue"
    assert queue.properties["KmsMasterKeyId"] == {"Ref": "KMSKey"}


def test_r11_credentials_come_from_secrets_manager_at_run_time(env: Environment) -> None:
    variables = env.resources["LoanValidationFunction"].properties["Environment"]["Variables"]
    assert variables["DB_SECRET_ARN"] == {
        "Ref": "AppDatabaseSecret"
    }  # its own user, not the master
    assert variables["DB_CLUSTER_ARN"] == {"Fn::GetAtt": ["DBCluster", "DBClusterArn"]}
    assert not any("password" in str(v).lower() for v in variables.values())


def test_r11_r15_validation_role_reaches_only_its_own_resources(env: Environment) -> None:
    role = env.resources["LoanValidationFunctionRole"]
    bucket = f"arn:aws:s3:::s3-loandocuments-dev42-{env.context.account_id}-us-east-1"
    grants: dict[str, Any] = {}
    for _, document in template.policy_documents(role):
        for st in template.statements(document):
            for action in template.as_list(st["Action"]):
                grants[action] = st["Resource"]
    assert grants["rds-data:ExecuteStatement"] == {"Fn::GetAtt": ["DBCluster", "DBClusterArn"]}
    assert grants["secretsmanager:GetSecretValue"] == {"Ref": "AppDatabaseSecret"}
    assert grants["s3:GetObject"] == f"{bucket}/incoming/*"
    assert grants["s3:PutObject"] == [f"{bucket}/validations/*", f"{bucket}/reports/*"]
    assert grants["sqs:SendMessage"] == {"Fn::GetAtt": ["ValidationDeadLetterQueue", "Arn"]}
    assert not any(
        a.startswith("s3:") and a not in ("s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload")
        for a in grants
    )


def test_r11_batch_files_under_incoming_invoke_the_function_from_this_bucket_only(
    env: Environment,
) -> None:
    bucket = env.resources["LoanDocumentsBucket"]
    [config] = bucket.properties["NotificationConfiguration"]["LambdaConfigurations"]
    assert config["Event"] == "s3:ObjectCreated:*"
    assert config["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "incoming/"}]
    assert config["Function"] == {"Fn::GetAtt": ["LoanValidationFunction", "Arn"]}
    permission = env.resources["LoanValidationInvokePermission"].properties
    assert permission["Principal"] == "s3.amazonaws.com"
    assert permission["SourceAccount"] == env.context.account_id
    assert permission["SourceArn"] == f"arn:aws:s3:::{bucket.properties['BucketName']}"
    assert "LoanValidationInvokePermission" in template.as_list(bucket.raw["DependsOn"])


# --- R13 ------------------------------------------------------------------------------------


def buckets(env: Environment) -> list[template.Resource]:
    return list(env.of_type("AWS::S3::Bucket"))


def test_r13_every_bucket_is_versioned_kms_encrypted_private_and_owner_enforced(
    env: Environment,
) -> None:
    assert buckets(env)
    for bucket in buckets(env):
        p = bucket.properties
        assert p["VersioningConfiguration"] == {"Status": "Enabled"}, bucket.logical_id
        [rule] = p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        if bucket.logical_id == "AccessLogsBucket":  # S3 delivers access logs to SSE-S3 only
            assert rule == {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
            continue
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms", bucket.logical_id
        assert rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == {
            "Fn::GetAtt": ["KMSKey", "Arn"]
        }
        # R13's bucket key on the documents bucket; off on the trail bucket, where it would
        # need kms:Decrypt at CreateTrail (CloudTrail's KMS key policy page)
        assert rule["BucketKeyEnabled"] is (bucket.logical_id != "TrailBucket")
        assert set(p["PublicAccessBlockConfiguration"].values()) == {True}
        assert len(p["PublicAccessBlockConfiguration"]) == 4
        assert p["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}


def test_r13_every_bucket_expires_noncurrent_versions_and_abandoned_uploads(
    env: Environment,
) -> None:
    for bucket in buckets(env):
        rules = bucket.properties["LifecycleConfiguration"]["Rules"]
        assert any("NoncurrentVersionExpiration" in r for r in rules), bucket.logical_id
        assert any("AbortIncompleteMultipartUpload" in r for r in rules), bucket.logical_id


def test_r13_every_bucket_denies_requests_without_tls(env: Environment) -> None:
    for bucket in buckets(env):
        [policy] = [
            p
            for p in env.of_type("AWS::S3::BucketPolicy")
            if p.properties["Bucket"] == {"Ref": bucket.logical_id}
        ]
        denials = [
            st
            for st in template.statements(policy.properties["PolicyDocument"])
            if st["Effect"] == "Deny"
            and st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        ]
        assert denials, bucket.logical_id
        assert denials[0]["Principal"] == "*" and denials[0]["Action"] == "s3:*"
        assert len(denials[0]["Resource"]) == 2  # the bucket and its objects


def test_r4_r13_bucket_names_carry_the_account_id_and_region(env: Environment) -> None:
    c = env.context
    for bucket in buckets(env):
        assert bucket.properties["BucketName"].endswith(f"-dev42-{c.account_id}-{c.region}")


# --- R14 ------------------------------------------------------------------------------------


def alarms(env: Environment) -> dict[tuple[str, str, str], template.Resource]:
    """(namespace, metric, watched resource) -> alarm."""
    found = {}
    for alarm in env.of_type("AWS::CloudWatch::Alarm"):
        p = alarm.properties
        if "Dimensions" not in p:
            continue  # an audit alarm on a metric filter of the trail (no resource dimension)
        [dimension] = p["Dimensions"]
        watched = next(iter(template.references(dimension["Value"])))
        found[(p["Namespace"], p["MetricName"], watched)] = alarm
    return found


def test_r14_alarms_cover_errors_throttles_dlq_rotation_cpu_memory(env: Environment) -> None:
    assert set(alarms(env)) == {
        ("AWS/Lambda", "Errors", "LoanValidationFunction"),
        ("AWS/Lambda", "Throttles", "LoanValidationFunction"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "ValidationDeadLetterQueue"),
        ("AWS/Lambda", "Errors", "SecretRotationLambda"),
        ("AWS/RDS", "CPUUtilization", "DBInstance1"),
        ("AWS/RDS", "ACUUtilization", "DBInstance1"),  # the default db.serverless
    }


def test_r14_memory_alarm_on_provisioned_acu_alarm_on_serverless(pristine: dict[str, Any]) -> None:
    """AWS's "Important CloudWatch metrics for Aurora Serverless v2": ACUUtilization there;
    FreeableMemory on a provisioned r-class, where it measures the env."""
    provisioned = alarms(build(pristine, "prod", DBInstanceClass="db.r7g.large"))
    assert ("AWS/RDS", "FreeableMemory", "DBInstance1") in provisioned
    assert ("AWS/RDS", "ACUUtilization", "DBInstance1") not in provisioned
    thresholds = {
        env_type: alarms(build(pristine, env_type))[("AWS/RDS", "ACUUtilization", "DBInstance1")]
        for env_type in ("dev", "prod")
    }
    assert thresholds["prod"].properties["Threshold"] == 80
    assert thresholds["dev"].properties["Threshold"] == 90


def test_r14_every_alarm_notifies_the_encrypted_topic_and_says_what_to_do(
    env: Environment,
) -> None:
    (topic,) = env.of_type("AWS::SNS::Topic")
    assert topic.properties["KmsMasterKeyId"] == {"Ref": "KMSKey"}
    for alarm in env.of_type("AWS::CloudWatch::Alarm"):
        p = alarm.properties
        assert p["AlarmActions"] == [{"Ref": topic.logical_id}], alarm.logical_id
        assert len(p["AlarmDescription"]) > 40, alarm.logical_id
    assert "AlarmTopicArn" in env.outputs


def test_r14_alarm_email_subscription_only_when_an_address_is_given(
    pristine: dict[str, Any],
) -> None:
    without = build(pristine, "dev")
    with_mail = build(pristine, "dev", AlarmEmail="ops@bank.example")
    assert not list(without.of_type("AWS::SNS::Subscription"))
    [subscription] = with_mail.of_type("AWS::SNS::Subscription")
    assert subscription.properties["Endpoint"] == "ops@bank.example"
    spec = pristine["Parameters"]["AlarmEmail"]
    assert template.constraint_violation(spec, "not-an-address") is not None


def test_r14_trail_records_documents_bucket_data_events_with_validation(
    env: Environment,
) -> None:
    (trail,) = env.of_type("AWS::CloudTrail::Trail")
    p = trail.properties
    assert p["EnableLogFileValidation"] is True and p["IsLogging"] is True
    assert p["KMSKeyId"] == {"Fn::GetAtt": ["KMSKey", "Arn"]}
    [selector] = p["EventSelectors"]
    assert selector["ReadWriteType"] == "All" and selector["IncludeManagementEvents"] is True
    [data] = selector["DataResources"]
    assert data["Type"] == "AWS::S3::Object"
    assert data["Values"] == [{"Fn::Sub": "arn:aws:s3:::${LoanDocumentsBucket}/"}]
    assert template.references(p["CloudWatchLogsLogGroupArn"]) == {"TrailLogGroup"}


def test_r14_trail_bucket_keeps_90_days_in_dev_the_archive_parameter_in_prod(
    env: Environment,
) -> None:
    bucket = env.resources["TrailBucket"]
    [rule] = bucket.properties["LifecycleConfiguration"]["Rules"]
    prod = env.parameters["EnvironmentType"] == "prod"  # R12 amended: a year in prod
    assert rule["ExpirationInDays"] == (int(env.parameters["TrailArchiveDays"]) if prod else 90)


def test_r14_an_organisation_trail_switches_ours_off(pristine: dict[str, Any]) -> None:
    assert pristine["Parameters"]["EnableCloudTrail"]["Default"] == "true"
    off = build(pristine, "prod", EnableCloudTrail="false")
    assert not [r for r in off.resources.values() if r.logical_id.startswith("Trail")]
    assert "TrailArn" not in off.outputs
    assert rules.run_checks(off, only="R12") == [] and rules.run_checks(off, only="R4") == []
