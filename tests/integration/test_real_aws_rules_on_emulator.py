"""What real AWS refuses or does, reproduced by the emulator so `make demo` and CI meet it first
(SPEC D7): sg- group names, the Data API on T classes,
a paused Serverless v2 cluster, the template staged through S3, the reserved-concurrency
preflight and the trail that keeps writing into its bucket during a teardown.

The emulator is module-scoped: its stacks must live and die inside this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import boto3
import pytest
from botocore.exceptions import ClientError
from rich.console import Console

from loanstack import template
from loanstack.aws.target import Target
from loanstack.emulator import ACCOUNT_ID, CREDENTIALS, capacity
from loanstack.errors import DeployError
from loanstack.ops.invoke import invoke_validation
from loanstack.stack import deploy
from loanstack.stack.destroy import bucket_exists, destroy, empty_bucket
from loanstack.stack.events import stack_status
from loanstack.stack.staging import STAGED_TEMPLATE_DAYS, staging_bucket_name
from tests.support import backends

REGION = "us-east-1"
EXAMPLE = json.loads((template.ROOT / "examples" / "approved.json").read_text())


@pytest.fixture(autouse=True)
def private_outputs_file(target: Target, tmp_path: Path) -> None:
    target.outputs_file = tmp_path / "flat-outputs.json"


def deploy_dev(
    target: Target, suffix: str, doc: dict | None = None, **params: str
) -> dict[str, str]:  # type: ignore[type-arg]
    d = deploy.Deployment(
        target,
        "dev",
        suffix,
        {**params, "EnvironmentType": "dev", "EnvironmentSuffix": suffix},
        Console(record=True, width=200),
        template_doc=doc or template.load(),
    )
    return deploy.deploy(d, confirm=lambda: True)


def test_r4_the_emulator_refuses_a_security_group_named_like_an_id(
    target: Target,
) -> None:
    ec2 = target.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    with pytest.raises(ClientError, match="Group names may not be in the format sg-") as refused:
        ec2.create_security_group(GroupName="sg-aurora-x", Description="d", VpcId=vpc)
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValue"
    ec2.create_security_group(GroupName="secgroup-aurora-x", Description="d", VpcId=vpc)

    doc = template.load()
    doc["Resources"]["DBSecurityGroup"]["Properties"]["GroupName"] = {
        "Fn::Sub": "sg-aurora-${EnvironmentSuffix}"
    }
    with pytest.raises(DeployError, match=r"DBSecurityGroup .* Group names may not be"):
        deploy_dev(target, "sgname1", doc)


class Shared(NamedTuple):
    outputs: dict[str, str]
    outputs_file: Path  # where its deploy wrote them (each test has a file of its own)


@pytest.fixture(scope="module")
def shared(target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """A dev stack for the two tests that need one as deployed and change nothing that outlives
    them: the staging test reads what its deploy staged, the Data API test pauses the cluster
    and turns its writer's class back. One deploy and destroy (about 4.5 s of CPU) for both;
    the tests whose subject is a deploy, an update or a teardown deploy their own."""
    outputs_file = Path(tmp_path_factory.mktemp("shared")) / "flat-outputs.json"
    target.outputs_file = outputs_file
    yield Shared(deploy_dev(target, "shared1"), outputs_file)
    target.outputs_file = outputs_file
    destroy(target, "shared1", Console(record=True))


def test_r1_the_template_is_staged_in_a_private_managed_bucket(
    target: Target, shared: Shared
) -> None:
    assert shared.outputs["VPCId"]
    bucket = staging_bucket_name(ACCOUNT_ID, REGION)
    s3 = target.client("s3")
    staged = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert any(k.startswith("tapstack-shared1/TapStack-") for k in staged)
    (key,) = [k for k in staged if k.startswith("tapstack-shared1/")]
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    assert body == template.minified(template.load())
    assert len(body.encode()) > template.DIRECT_UPLOAD_LIMIT  # why it had to be staged
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rule["Expiration"]["Days"] == STAGED_TEMPLATE_DAYS
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_r9_data_api_refuses_a_t_class_writer_and_resumes_a_paused_cluster(
    target: Target, shared: Shared
) -> None:
    outputs = shared.outputs
    target.outputs_file = shared.outputs_file  # the stack invoke_validation finds
    cluster_arn = outputs["DBClusterArn"]
    data = target.client("rds-data")
    call = {"resourceArn": cluster_arn, "secretArn": outputs["DBSecretArn"], "sql": "SELECT 1"}
    data.execute_statement(**call)

    capacity.pause(cluster_arn)  # as after five idle minutes at 0 ACU (dev)
    with pytest.raises(ClientError) as resuming:
        data.execute_statement(**call)
    assert resuming.value.response["Error"]["Code"] == "DatabaseResumingException"
    capacity.pause(cluster_arn)
    result = invoke_validation(target, EXAMPLE)  # the function retries the resume
    assert result["decision"] == "APPROVED"

    from moto.rds.models import rds_backends

    writer = rds_backends[ACCOUNT_ID][REGION].databases["aurora-writer-shared1"]
    writer.db_instance_class = "db.t4g.medium"  # what the old default deployed
    try:
        with pytest.raises(ClientError, match="T DB instance classes"):
            data.execute_statement(**call)
    finally:
        writer.db_instance_class = "db.serverless"
    data.execute_statement(**call)  # the stack as deployed again


def test_r11_preflight_refuses_a_reservation_the_account_cannot_give(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOTO_LAMBDA_CONCURRENCY_QUOTA", "105")
    # what other stacks on this emulator already reserve (moto's backends outlive a module)
    settings = target.client("lambda").get_account_settings()["AccountLimit"]
    unreserved = int(settings["UnreservedConcurrentExecutions"])
    with pytest.raises(DeployError) as refused:
        deploy_dev(target, "conc1")
    message = str(refused.value)
    assert f"would leave {unreserved - 10} of the account's 105 unreserved" in message
    fits = unreserved - 100
    advice = f"={fits} (or 0" if fits > 0 else "=0 (no reservation)"
    assert f"--param ValidationReservedConcurrency{advice}" in message
    assert stack_status(target, "tapstack-conc1") is None  # refused before any change set
    outputs = deploy_dev(target, "conc1", ValidationReservedConcurrency="0")
    reply = target.client("lambda").get_function_concurrency(
        FunctionName=outputs["LoanValidationFunctionName"]
    )
    assert "ReservedConcurrentExecutions" not in reply or not reply["ReservedConcurrentExecutions"]
    destroy(target, "conc1", Console(record=True))


def test_r14_a_teardown_that_forgets_the_trail_fails_and_destroy_does_not(
    target: Target,
) -> None:
    outputs = deploy_dev(target, "race1")
    trail_bucket = f"s3-loantrail-race1-{ACCOUNT_ID}-{REGION}"
    target.client("lambda").get_function(FunctionName=outputs["LoanValidationFunctionName"])
    assert target.client("s3").list_objects_v2(Bucket=trail_bucket)["KeyCount"] > 0

    # the old teardown: empty the buckets, then delete; the DeleteStack call itself is logged
    stack = stack_status(target, "tapstack-race1")
    assert stack is not None
    for bucket in (trail_bucket, outputs["LoanDocumentsBucketName"]):
        empty_bucket(target, bucket)
    cfn = target.client("cloudformation")
    cfn.delete_stack(StackName=stack["StackId"])
    status = cfn.describe_stacks(StackName=stack["StackId"])["Stacks"][0]["StackStatus"]
    assert status == "DELETE_FAILED"
    assert bucket_exists(target, trail_bucket)
    # CloudFormation deleted the trail before its bucket failed, and it stays deleted (the
    # emulator used to re-create it, logging, when the stack was described: destroy then
    # stopped that ghost; a healthy stack's trail is stopped in test_destroy_writers.py)
    trail = f"trail-loanprocessing-race1-{REGION}"
    assert not backends.exists("AWS::CloudTrail::Trail", trail, ACCOUNT_ID, REGION)

    console = Console(record=True, width=200)
    destroy(target, "race1", console)
    text = console.export_text()
    assert "stopped logging" not in text, "no trail left to stop"
    assert not bucket_exists(target, trail_bucket)
    assert not backends.exists(
        "AWS::CloudTrail::Trail", f"trail-loanprocessing-race1-{REGION}", ACCOUNT_ID, REGION
    )


def test_an_update_of_a_stack_on_the_old_t_class_default_says_what_to_pass(
    target: Target,
) -> None:
    old = template.load()
    old["Parameters"]["DBInstanceClass"]["AllowedValues"].append("db.t4g.medium")
    # that old stack predates AppDatabaseSetup, whose Data API call a T-class writer refuses
    del old["Resources"]["AppDatabaseSetup"]
    for resource in old["Resources"].values():
        if "AppDatabaseSetup" in template.as_list(resource.get("DependsOn", [])):
            resource["DependsOn"] = [
                d for d in template.as_list(resource["DependsOn"]) if d != "AppDatabaseSetup"
            ]
    deploy_dev(target, "old1", old, DBInstanceClass="db.t4g.medium")
    with pytest.raises(DeployError) as refused:
        deploy_dev(target, "old1")  # today's template, the previous value kept
    assert "DBInstanceClass='db.t4g.medium' is no longer allowed" in str(refused.value)
    assert "--param DBInstanceClass=db.serverless" in str(refused.value)
    # the advised fix goes through (on the old shape: the emulator applies an instance class
    # change after dependants run, so today's AppDatabaseSetup would still meet the T class
    # writer that CloudFormation on AWS would already have modified)
    deploy_dev(target, "old1", old, DBInstanceClass="db.r7g.large")
    destroy(target, "old1", Console(record=True))


def test_r4_the_same_suffix_deploys_in_two_regions_of_one_account(
    target: Target, tmp_path: Path
) -> None:
    """R4 amended: IAM role, bucket and multi-region trail names carry the region, so the
    second region's stack does not collide with the first (the emulator refuses a duplicate
    role, bucket or trail name across regions, tests/unit/test_emulator_global_names.py).
    The second region pins its zones (R7 amended), the first takes them by position."""
    first = deploy_dev(target, "tworeg")
    other = Target(
        "local",
        "eu-west-1",
        boto3.Session(region_name="eu-west-1", **CREDENTIALS),
        endpoint_url=target.endpoint_url,
        outputs_file=tmp_path / "eu-flat-outputs.json",
    )
    second = deploy_dev(
        other, "tworeg", AvailabilityZone1="eu-west-1b", AvailabilityZone2="eu-west-1c"
    )
    assert first["LoanDocumentsBucketName"] != second["LoanDocumentsBucketName"]
    assert second["LoanDocumentsBucketName"].endswith("-eu-west-1")
    subnets = other.client("ec2").describe_subnets(
        SubnetIds=[second["PublicSubnet1"], second["PublicSubnet2"]]
    )["Subnets"]
    zones = {s["SubnetId"]: s["AvailabilityZone"] for s in subnets}
    assert [zones[second["PublicSubnet1"]], zones[second["PublicSubnet2"]]] == [
        "eu-west-1b",
        "eu-west-1c",
    ]
    for where, suffix in ((other, "tworeg"), (target, "tworeg")):
        destroy(where, suffix, Console(record=True, width=200))
