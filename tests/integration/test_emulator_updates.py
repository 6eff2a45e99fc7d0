"""Updating a deployed stack on the emulator as CloudFormation updates it (safe previews, SPEC D4):
a Lambda function updated by a parameter or by new code still runs, and the new code runs.

The emulator is module-scoped (tests/integration/conftest.py): these stacks live and die here.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from loanstack import template
from loanstack.aws.target import Target
from loanstack.names import stack_name
from loanstack.stack import deploy
from loanstack.stack.destroy import stack_resources
from loanstack.stack.events import stack_status
from tests.support import post_deploy

SUFFIX = "upd21"
STACK = stack_name(SUFFIX)
# appended to the validation function's embedded source, as an edit of index.py then `loanstack
# sync` would change it: the handler's answer gains a key, so the new code is seen to run
EDIT = """

_handler_before_edit = handler


def handler(event, context):
    return {**_handler_before_edit(event, context), "editedOnEmulator": True}
"""


@pytest.fixture(scope="module")
def outputs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("cfn-outputs"))


def deploy_dev(
    target: Target, out: Path, doc: dict[str, Any] | None = None, **params: str
) -> tuple[dict[str, str], str]:
    """Deploy (create or update) the dev stack; its outputs and what the tool printed."""
    target.outputs_file = out / f"{SUFFIX}.json"
    console = Console(record=True, width=200)
    d = deploy.Deployment(
        target,
        "dev",
        SUFFIX,
        deploy.parameters_for("dev", SUFFIX, params),
        console,
        template_doc=doc if doc is not None else template.load(),
    )
    outputs = deploy.deploy(d, confirm=lambda: True)
    return outputs, console.export_text()


@pytest.fixture(scope="module")
def stack(target: Target, outputs_dir: Path) -> dict[str, str]:
    outputs, _ = deploy_dev(target, outputs_dir)
    return outputs


def invoke(target: Target, outputs: dict[str, str], loan_id: str) -> dict[str, Any]:
    reply = target.client("lambda").invoke(
        FunctionName=outputs["LoanValidationFunctionName"],
        Payload=json.dumps(post_deploy.application(loan_id)),
    )
    body = json.loads(reply["Payload"].read())
    assert "FunctionError" not in reply, body
    return dict(body)


def test_a_parameter_update_of_the_function_leaves_it_running(
    stack: dict[str, str], target: Target, outputs_dir: Path
) -> None:
    """`--param ValidationMemorySize=2048` updates the function (moto used to re-read the
    template's inline source as a base64 zip: "File is not a zip file" on every invoke)."""
    assert invoke(target, stack, "UPD-BEFORE")["decision"] == "APPROVED"
    _, shown = deploy_dev(target, outputs_dir, ValidationMemorySize="2048")
    assert "LoanValidationFunction" in shown and "MemorySize: 1024 -> 2048" in shown
    config = target.client("lambda").get_function_configuration(
        FunctionName=stack["LoanValidationFunctionName"]
    )
    assert config["MemorySize"] == 2048
    assert config["LoggingConfig"]["LogFormat"] == "JSON"  # the update keeps what create set
    assert invoke(target, stack, "UPD-MEMORY")["decision"] == "APPROVED"
    post_deploy.assert_validation_records_and_documents(target.client, stack)


def test_an_edited_function_source_is_deployed_and_runs(
    stack: dict[str, str], target: Target, outputs_dir: Path
) -> None:
    """The edit, sync, deploy, try loop: the embedded source changes, the update runs it."""
    doc = copy.deepcopy(template.load())
    code = doc["Resources"]["LoanValidationFunction"]["Properties"]["Code"]
    code["ZipFile"] += EDIT
    _, shown = deploy_dev(target, outputs_dir, doc, ValidationMemorySize="2048")
    assert "LoanValidationFunction" in shown and "Code" in shown
    answer = invoke(target, stack, "UPD-CODE")
    assert answer["decision"] == "APPROVED" and answer["editedOnEmulator"] is True
    # and back: the stack's own code again, the edit gone
    deploy_dev(target, outputs_dir, ValidationMemorySize="2048")
    assert "editedOnEmulator" not in invoke(target, stack, "UPD-BACK")


def test_a_batch_file_after_an_update_is_reported_not_dead_lettered(
    stack: dict[str, str], target: Target, outputs_dir: Path
) -> None:
    """What `migrate` relies on: S3's asynchronous invoke of the updated function succeeds
    (it used to fail three times and land in the dead-letter queue)."""
    deploy_dev(target, outputs_dir, ValidationMemorySize="3008")
    bucket = stack["LoanDocumentsBucketName"]
    rows = "\n".join(json.dumps(post_deploy.application(f"UPD-BATCH-{i}")) for i in range(2))
    s3 = target.client("s3")
    s3.put_object(Bucket=bucket, Key="incoming/after-update.jsonl", Body=rows.encode())
    s3.get_waiter("object_exists").wait(
        Bucket=bucket,
        Key="reports/after-update.jsonl.report.json",
        WaiterConfig={"Delay": 1, "MaxAttempts": 60},
    )
    report = json.loads(
        s3.get_object(Bucket=bucket, Key="reports/after-update.jsonl.report.json")["Body"].read()
    )
    assert report["rows"] == 2 and report["summary"]["APPROVED"] == 2
    sqs = target.client("sqs")
    [queue] = [
        r["PhysicalResourceId"]
        for r in stack_resources(target, STACK)
        if r["LogicalResourceId"] == "ValidationDeadLetterQueue"
    ]
    url = queue if queue.startswith("http") else sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    waiting = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert waiting["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_a_new_vpc_cidr_lists_what_refers_to_the_replaced_network(
    stack: dict[str, str], target: Target
) -> None:
    """A VpcCidr change replaces the VPC and its subnets (CidrBlock is create-only); what refers
    to them is listed as CloudFormation lists it: Dynamic details from a ResourceReference, a
    Conditional replacement where the referring property is create-only (a security group's
    VpcId), an update where it is not (the function's VpcConfig). Described, never executed."""
    cfn = target.client("cloudformation")
    current = stack_status(target, STACK)
    assert current is not None
    given = {p["ParameterKey"] for p in current["Parameters"]}
    params = [{"ParameterKey": "VpcCidr", "ParameterValue": "10.60.0.0/16"}] + [
        {"ParameterKey": k, "UsePreviousValue": True} for k in sorted(given - {"VpcCidr"})
    ]
    change_set = cfn.create_change_set(
        StackName=STACK,
        ChangeSetName="cidr-references",
        ChangeSetType="UPDATE",
        TemplateBody=template.minified(template.load()),
        Parameters=params,
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )["Id"]
    try:
        listed = cfn.describe_change_set(ChangeSetName=change_set)["Changes"]
    finally:
        cfn.delete_change_set(ChangeSetName=change_set)
    changes = {c["ResourceChange"]["LogicalResourceId"]: c["ResourceChange"] for c in listed}
    replacement = {name: c["Replacement"] for name, c in changes.items()}
    assert replacement["VPC"] == replacement["PrivateSubnet1"] == "True"
    for referrer in ("LambdaSecurityGroup", "DBSecurityGroup", "PrivateRouteTable1"):
        assert replacement[referrer] == "Conditional", referrer
        [detail] = [d for d in changes[referrer]["Details"] if d["Target"]["Name"] == "VpcId"]
        assert detail["Evaluation"] == "Dynamic"
        assert (detail["ChangeSource"], detail["CausingEntity"]) == ("ResourceReference", "VPC")
        assert (detail["Target"]["Name"], detail["Target"]["RequiresRecreation"]) == (
            "VpcId",
            "Always",
        )
    function = changes["LoanValidationFunction"]
    assert function["Replacement"] == "False"
    assert {(d["Target"]["Name"], d["Evaluation"]) for d in function["Details"]} == {
        ("VpcConfig", "Dynamic")
    }
    assert {d["CausingEntity"] for d in function["Details"]} >= {"PrivateSubnet1", "PrivateSubnet2"}
    for listed_too in ("DBSubnetGroup", "DBCluster", "SecretRotationLambda", "S3GatewayEndpoint"):
        assert listed_too in changes, listed_too
    # a reference to a conditional replacement is followed as well (a route of the route table)
    assert any(
        d.get("CausingEntity") == "PrivateRouteTable1"
        for c in changes.values()
        for d in c["Details"]
    )


def test_executing_a_new_vpc_cidr_updates_only_what_changes_itself(
    stack: dict[str, str], target: Target, outputs_dir: Path
) -> None:
    """The referrers listed as Dynamic are updated only when what they follow got a new id
    (the emulator updates the VPC in place): the update completes and the function still runs
    (updating every referrer failed on the network ACLs' dependencies). Last: it moves the VPC."""
    outputs, shown = deploy_dev(
        target, outputs_dir, ValidationMemorySize="3008", VpcCidr="10.70.0.0/16"
    )
    assert "conditional" in shown and "LambdaSecurityGroup" in shown  # Replacement, as shown
    assert stack_status(target, STACK)["StackStatus"] == "UPDATE_COMPLETE"
    assert invoke(target, outputs, "UPD-CIDR")["decision"] == "APPROVED"
