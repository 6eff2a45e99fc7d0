"""The whole template deployed on the embedded emulator (SPEC D4): dev and prod, through the
same deploy code the `loanstack` command uses, checked in the emulator's own service backends.

The emulator is module-scoped: moto's in-memory mocks used by other modules reset the shared
backends, so its stacks must live and die inside this module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from loanstack import template
from loanstack.aws.target import EMULATOR_URL_VARIABLE, Target
from loanstack.emulator import ACCOUNT_ID, Emulator
from loanstack.errors import DeployError
from loanstack.ops.rotate import rotate
from loanstack.stack import deploy
from loanstack.stack.destroy import bucket_exists, destroy, stack_resources
from loanstack.stack.events import stack_status
from loanstack.stack.protection import StackOptions
from tests.support import backends, post_deploy
from tests.support.stacks import tune_rotation_function

REGION = "us-east-1"


@pytest.fixture(scope="module")
def outputs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("cfn-outputs"))


def deploy_stack(target: Target, env: str, suffix: str, out: Path, **params: str) -> dict[str, str]:
    target.outputs_file = out / f"{suffix}.json"
    d = deploy.Deployment(
        target,
        env,
        suffix,
        deploy.parameters_for(env, suffix, params),
        Console(record=True, width=200),
        # test_d4 destroys prod: protection off, as an operator turns it off first (the
        # protection itself: tests/integration/test_stack_options.py)
        options=StackOptions(termination_protection=False),
    )
    return deploy.deploy(d, confirm=lambda: True)


@pytest.fixture(scope="module")
def stacks(target: Target, outputs_dir: Path) -> dict[str, dict[str, str]]:
    return {
        "dev": deploy_stack(target, "dev", "dev42", outputs_dir),
        "prod": deploy_stack(target, "prod", "prod42", outputs_dir, AlarmEmail="ops@example.com"),
    }


SUFFIX = {"dev": "dev42", "prod": "prod42"}
PARAMS: dict[str, dict[str, str]] = {"dev": {}, "prod": {"AlarmEmail": "ops@example.com"}}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_d4_every_resource_of_the_environment_is_create_complete(
    stacks: dict[str, Any], target: Target, env: str
) -> None:
    expected = template.instantiate(
        parameters={"EnvironmentType": env, "EnvironmentSuffix": SUFFIX[env], **PARAMS[env]}
    ).resources
    listed = {r["LogicalResourceId"]: r for r in stack_resources(target, f"tapstack-{SUFFIX[env]}")}
    assert set(listed) == set(expected)
    assert {r["ResourceStatus"] for r in listed.values()} == {"CREATE_COMPLETE"}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_d4_every_resource_exists_in_the_emulator_backends(
    stacks: dict[str, Any], target: Target, env: str
) -> None:
    missing = [
        f"{r['LogicalResourceId']} ({r['ResourceType']}: {r['PhysicalResourceId']!r})"
        for r in stack_resources(target, f"tapstack-{SUFFIX[env]}")
        if not r["PhysicalResourceId"]
        or not backends.exists(r["ResourceType"], r["PhysicalResourceId"], ACCOUNT_ID, REGION)
    ]
    assert missing == []


def test_r3_prod_has_the_second_nat_gateway_and_the_reader_dev_has_neither(
    stacks: dict[str, Any], target: Target
) -> None:
    ec2, rds = target.client("ec2"), target.client("rds")
    for env, count in (("dev", 1), ("prod", 2)):
        vpc = stacks[env]["VPCId"]
        nats = ec2.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [vpc]}])[
            "NatGateways"
        ]
        assert len(nats) == count, env
        cluster = rds.describe_db_clusters(
            DBClusterIdentifier=f"aurora-loanprocessing-{SUFFIX[env]}"
        )
        members = cluster["DBClusters"][0]["DBClusterMembers"]
        assert sorted(m["IsClusterWriter"] for m in members) == (
            [True] if env == "dev" else [False, True]
        )
    prod_rt = ec2.describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [stacks["prod"]["VPCId"]]}]
    )
    nat_routes = {
        route["NatGatewayId"]
        for table in prod_rt["RouteTables"]
        for route in table["Routes"]
        if route.get("NatGatewayId")
    }
    assert len(nat_routes) == 2, "each private route table uses its own AZ's NAT gateway (R7)"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_r1b_outputs_are_present_and_written_flat(
    stacks: dict[str, Any], outputs_dir: Path, env: str
) -> None:
    post_deploy.assert_r1b_outputs_present(stacks[env])
    written = json.loads((outputs_dir / f"{SUFFIX[env]}.json").read_text())
    assert written == stacks[env]
    assert "TrailArn" in written and "AlarmTopicArn" in written


def test_r14_audit_and_alarms_exist_with_the_email_subscription_in_prod(
    stacks: dict[str, Any], target: Target
) -> None:
    trail = target.client("cloudtrail").get_trail_status(Name=stacks["prod"]["TrailArn"])
    assert trail["IsLogging"] is True
    alarms = target.client("cloudwatch").describe_alarms(AlarmNamePrefix="alarm-")["MetricAlarms"]
    prod = [a for a in alarms if a["AlarmName"].endswith("-prod42")]
    declared = template.instantiate(parameters=template.judged_parameters("prod", "prod42"))
    assert len(prod) == len(list(declared.of_type("AWS::CloudWatch::Alarm"))) == 10 and all(
        a["AlarmActions"] == [stacks["prod"]["AlarmTopicArn"]] for a in prod
    )
    subs = target.client("sns").list_subscriptions_by_topic(
        TopicArn=stacks["prod"]["AlarmTopicArn"]
    )
    assert [s["Endpoint"] for s in subs["Subscriptions"]] == ["ops@example.com"]
    dev_subs = target.client("sns").list_subscriptions_by_topic(
        TopicArn=stacks["dev"]["AlarmTopicArn"]
    )
    assert dev_subs["Subscriptions"] == []


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_post_deploy_checks_pass_on_the_emulator(
    stacks: dict[str, Any], target: Target, env: str
) -> None:
    outputs = stacks[env]
    post_deploy.assert_network(target.client, outputs)
    post_deploy.assert_database(target.client, outputs)
    post_deploy.assert_secret(target.client, outputs)
    post_deploy.assert_documents_bucket(target.client, outputs)
    post_deploy.assert_security_group_names(target.client, outputs)
    post_deploy.assert_trail_uses_the_key(target.client, outputs)
    post_deploy.assert_database_takes_the_data_api(target.client, outputs)
    post_deploy.assert_reservation_as_deployed(target.client, outputs)
    post_deploy.assert_private_subnets_take_replies(target.client, outputs)


def test_r11_validation_runs_in_process_records_the_decision_and_writes_the_document(
    stacks: dict[str, Any], target: Target
) -> None:
    post_deploy.assert_validation_records_and_documents(target.client, stacks["dev"])


def test_r13_a_batch_file_dropped_under_incoming_produces_one_report(
    stacks: dict[str, Any], target: Target
) -> None:
    bucket = stacks["dev"]["LoanDocumentsBucketName"]
    rows = [post_deploy.application(f"BATCH-{i}") for i in range(3)]
    body = "\n".join(
        [*map(json.dumps, rows), '{"loanId": "BATCH-BAD", "loanType": "yacht"}', "not json"]
    )
    s3 = target.client("s3")
    s3.put_object(Bucket=bucket, Key="incoming/emulator.jsonl", Body=body.encode())
    # S3 invokes the function asynchronously, on the emulator as on AWS: wait for its report
    s3.get_waiter("object_exists").wait(
        Bucket=bucket,
        Key="reports/emulator.jsonl.report.json",
        WaiterConfig={"Delay": 1, "MaxAttempts": 60},
    )
    report = json.loads(
        s3.get_object(Bucket=bucket, Key="reports/emulator.jsonl.report.json")["Body"].read()
    )
    assert report["rows"] == 5 and report["summary"]["APPROVED"] == 3
    assert sorted(p["line"] for p in report["problems"]) == [4, 5]


def test_r10_rotation_leaves_the_cluster_password_equal_to_awscurrent(
    stacks: dict[str, Any],
    target: Target,
    outputs_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from loanstack.emulator.rds import master_password

    outputs = stacks["dev"]
    monkeypatch.setattr(target, "outputs_file", outputs_dir / "dev42.json")
    sm = target.client("secretsmanager")
    old = json.loads(
        sm.get_secret_value(SecretId=outputs["DBSecretArn"], VersionStage="AWSCURRENT")[
            "SecretString"
        ]
    )
    # the function's polls (2 s, doubling) are not this test's subject: test_secret_rotation.py
    tune_rotation_function(target, outputs, FIRST_POLL_SECONDS="0.2")
    versions = rotate(target, Console(record=True))
    current = json.loads(
        sm.get_secret_value(SecretId=outputs["DBSecretArn"], VersionStage="AWSCURRENT")[
            "SecretString"
        ]
    )
    previous = json.loads(
        sm.get_secret_value(SecretId=outputs["DBSecretArn"], VersionStage="AWSPREVIOUS")[
            "SecretString"
        ]
    )

    assert current["password"] != old["password"] and previous["password"] == old["password"]
    in_database = master_password(ACCOUNT_ID, REGION, "aurora-loanprocessing-dev42")
    assert in_database == current["password"]
    assert versions["current"] != versions["previous"]
    post_deploy.assert_validation_records_and_documents(target.client, outputs)  # still opens


def test_an_update_goes_through_a_change_set_and_changes_only_what_the_parameter_touches(
    stacks: dict[str, Any], target: Target, outputs_dir: Path
) -> None:
    console = Console(record=True, width=200)
    d = deploy.Deployment(
        target,
        "dev",
        "dev42",
        deploy.parameters_for("dev", "dev42", {"ValidationMemorySize": "2048"}),
        console,
    )
    target.outputs_file = outputs_dir / "dev42-update.json"
    deploy.deploy(d, confirm=lambda: True)
    shown = console.export_text()
    assert "change set (update, 1 change)" in shown and "LoanValidationFunction" in shown
    assert "MemorySize: 1024 -> 2048" in shown and "1/1" in shown
    config = target.client("lambda").get_function_configuration(
        FunctionName=stacks["dev"]["LoanValidationFunctionName"]
    )
    assert config["MemorySize"] == 2048
    assert stack_status(target, "tapstack-dev42")["StackStatus"] == "UPDATE_COMPLETE"


def test_a_change_set_shows_each_changed_property_and_whether_it_replaces_the_resource(
    stacks: dict[str, Any], target: Target
) -> None:
    """DescribeChangeSet's Details as AWS gives them: a new VPC CIDR replaces the VPC and its
    subnets (CidrBlock is create-only in their registry schemas); an ACL entry's CidrBlock
    updates in place (the entry is a Conditional replacement only through its ACL); values
    only with IncludePropertyValues. The change set is described, never executed."""
    cfn = target.client("cloudformation")
    current = stack_status(target, "tapstack-dev42")
    assert current is not None
    given = {p["ParameterKey"] for p in current["Parameters"]}
    params = [{"ParameterKey": "VpcCidr", "ParameterValue": "10.50.0.0/16"}] + [
        {"ParameterKey": k, "UsePreviousValue": True} for k in sorted(given - {"VpcCidr"})
    ]
    change_set = cfn.create_change_set(
        StackName="tapstack-dev42",
        ChangeSetName="cidr-preview",
        ChangeSetType="UPDATE",
        TemplateBody=template.minified(template.load()),
        Parameters=params,
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )["Id"]
    try:
        plain = cfn.describe_change_set(ChangeSetName=change_set)["Changes"]
        valued = cfn.describe_change_set(ChangeSetName=change_set, IncludePropertyValues=True)
    finally:
        cfn.delete_change_set(ChangeSetName=change_set)
    changes = {c["ResourceChange"]["LogicalResourceId"]: c["ResourceChange"] for c in plain}
    assert changes["VPC"]["Replacement"] == "True"
    assert changes["PublicSubnet1"]["Replacement"] == "True"
    # the entry's own CidrBlock updates in place; its ACL may be replaced (a new VPC), so the
    # entry may be too: Conditional, as CloudFormation reports a reference to a replacement
    assert changes["PublicNaclInboundHttpsFromVpc"]["Replacement"] == "Conditional"
    detail = changes["VPC"]["Details"][0]["Target"]
    assert (detail["Name"], detail["RequiresRecreation"]) == ("CidrBlock", "Always")
    assert "BeforeValue" not in detail
    entry = changes["PublicNaclInboundHttpsFromVpc"]["Details"][0]["Target"]
    assert (entry["Name"], entry["RequiresRecreation"]) == ("CidrBlock", "Never")
    vpc = next(
        c["ResourceChange"]
        for c in valued["Changes"]
        if c["ResourceChange"]["LogicalResourceId"] == "VPC"
    )
    values = vpc["Details"][0]["Target"]
    assert (values["BeforeValue"], values["AfterValue"]) == ("10.40.0.0/16", "10.50.0.0/16")


def test_r14_switching_the_trail_off_on_update_removes_exactly_the_trail_resources(
    stacks: dict[str, Any], target: Target, outputs_dir: Path
) -> None:
    console = Console(record=True, width=200)
    params = deploy.parameters_for(
        "prod", "prod42", {"EnableCloudTrail": "false", "AlarmEmail": "ops@example.com"}
    )
    target.outputs_file = outputs_dir / "prod42-no-trail.json"
    # the trail bucket is protected by prod's stack policy: removing it needs --allow-replace
    options = StackOptions(termination_protection=False, allow_replace=["TrailBucket"])
    outputs = deploy.deploy(
        deploy.Deployment(target, "prod", "prod42", params, console, options=options),
        confirm=lambda: True,
    )
    # what the template conditions on the trail (the trail, its bucket, role and log group, and
    # the audit metric filters and alarms on that log group)
    trail_tier = {
        k for k, r in template.load()["Resources"].items() if r.get("Condition") == "CreateTrail"
    }
    assert {"Trail", "TrailBucket", "TrailLogsRole", "RootUseAlarm"} <= trail_tier
    cells = [line.split("\t") for line in console.export_text().splitlines()]  # not a terminal
    removed = {row[1] for row in cells if len(row) > 2 and row[0] == "Remove"}
    assert removed == trail_tier
    assert "TrailArn" not in outputs and "AlarmTopicArn" in outputs
    trail = f"trail-loanprocessing-prod42-{REGION}"
    assert not backends.exists("AWS::CloudTrail::Trail", trail, ACCOUNT_ID, REGION)
    # R12 amended: prod's trail archive outlives the trail (DeletionPolicy on removal too)
    assert bucket_exists(target, f"s3-loantrail-prod42-{ACCOUNT_ID}-{REGION}")
    listed = {r["LogicalResourceId"] for r in stack_resources(target, "tapstack-prod42")}
    assert not listed & trail_tier and "LoanValidationFunction" in listed


def test_a_failing_resource_rolls_back_and_is_reported_with_its_reason(
    target: Target, tmp_path: Path
) -> None:
    doc = template.load()
    doc["Resources"]["PublicSubnet1"]["Properties"]["CidrBlock"] = (
        "192.168.0.0/24"  # not in the VPC
    )
    console = Console(record=True, width=200)
    d = deploy.Deployment(
        target,
        "dev",
        "broken1",
        deploy.parameters_for("dev", "broken1", {}),
        console,
        template_doc=doc,
    )
    target.outputs_file = tmp_path / "broken.json"
    with pytest.raises(
        DeployError, match=r"ROLLBACK_COMPLETE: PublicSubnet1 \(AWS::EC2::Subnet\) failed"
    ):
        deploy.deploy(d, confirm=lambda: True)
    with pytest.raises(
        DeployError, match="is ROLLBACK_COMPLETE: remove it with `loanstack destroy"
    ):
        deploy.deploy(d, confirm=lambda: True)


def failed_stack(target: Target, tmp_path: Path) -> None:
    """tapstack-broken1 in ROLLBACK_COMPLETE on this worker's emulator (the test above makes it
    too, but pytest-xdist may run it on the other worker)."""
    if stack_status(target, "tapstack-broken1") is not None:
        return
    doc = template.load()
    doc["Resources"]["PublicSubnet1"]["Properties"]["CidrBlock"] = "192.168.0.0/24"
    params = deploy.parameters_for("dev", "broken1", {})
    d = deploy.Deployment(target, "dev", "broken1", params, Console(record=True), template_doc=doc)
    target.outputs_file = tmp_path / "broken.json"
    with pytest.raises(DeployError):
        deploy.deploy(d, confirm=lambda: True)


def test_the_cli_refuses_to_deploy_over_a_failed_stack_in_one_line(
    target: Target,
    emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from loanstack import cli

    failed_stack(target, tmp_path)
    assert stack_status(target, "tapstack-broken1")["StackStatus"] == "ROLLBACK_COMPLETE"
    monkeypatch.setenv(EMULATOR_URL_VARIABLE, emulator.url)
    code = cli.main(["deploy", "--env", "dev", "--suffix", "broken1", "--target", "local", "--yes"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "stack tapstack-broken1 is ROLLBACK_COMPLETE" in err


# R6 amended: prod keeps what its final cluster snapshot and its documents need
KEPT = {
    "dev": set(),
    "prod": {"KMSKey", "LoanDocumentsBucket", "TrailBucket", "AccessLogsBucket", "BackupVault"},
}


def test_d4_destroy_leaves_nothing_of_dev_and_only_the_data_of_prod_in_the_emulator(
    stacks: dict[str, Any], target: Target, outputs_dir: Path
) -> None:
    before = {env: list(stack_resources(target, f"tapstack-{SUFFIX[env]}")) for env in SUFFIX}
    bucket = stacks["prod"]["LoanDocumentsBucketName"]
    target.client("s3").put_object(Bucket=bucket, Key="validations/x.json", Body=b"{}")
    target.client("s3").delete_object(Bucket=bucket, Key="validations/x.json")  # a delete marker
    for env, suffix in SUFFIX.items():
        target.outputs_file = outputs_dir / f"{suffix}.json"
        destroy(target, suffix, Console(record=True))
        left = {
            r["LogicalResourceId"]
            for r in before[env]
            if backends.exists(r["ResourceType"], r["PhysicalResourceId"], ACCOUNT_ID, REGION)
        }
        present = {r["LogicalResourceId"] for r in before[env]}
        assert left == KEPT[env] & present, f"{env}: left behind {left}"
        assert stack_status(target, f"tapstack-{suffix}") is None
