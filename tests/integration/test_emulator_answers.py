"""The emulator's answers as AWS gives them, through its HTTP API (SPEC D7): a template body
CloudFormation refuses is a ValidationError (not accepted, not an HTTP 500), and a JSON answer
is never rewritten by moto's `<RequestId>` substitution, while an XML one still carries the
request id.

The emulator is module-scoped: its stacks and its cluster live and die inside this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from loanstack.emulator import CREDENTIALS, Emulator

REGION = "us-east-1"
TOPIC = '"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}'
# CloudFormation follows ECMA-404 JSON, which has no NaN or Infinity (Python's json accepts them):
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/template-formats.html
NOT_JSON = {
    "NaN": '{"Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": NaN}}}}',
    "Infinity": "{" + TOPIC + ', "Metadata": {"Big": Infinity}}',
    "-Infinity": "{" + TOPIC + ', "Metadata": {"Small": -Infinity}}',
}
# A body that is not a mapping (a file name passed as the body reads as the string `foo`):
# "Template format error: unsupported structure."
# https://repost.aws/knowledge-center/cloudformation-template-validation
NOT_A_MAPPING = {"list": "- a\n- b\n", "scalar": "foo"}
NOT_WELL_FORMED_YAML = "Resources: [a\n"


def client(emulator: Emulator, service: str) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=emulator.url, **CREDENTIALS)


def refused(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return dict(caught.value.response["Error"])


@pytest.mark.parametrize("body", NOT_JSON.values(), ids=NOT_JSON.keys())
def test_nan_and_infinity_in_a_json_template_are_refused(emulator: Emulator, body: str) -> None:
    cfn = client(emulator, "cloudformation")
    for error in (
        refused(cfn.validate_template, TemplateBody=body),
        refused(cfn.create_stack, StackName="nan-template", TemplateBody=body),
    ):
        assert error["Code"] == "ValidationError"
        assert error["Message"] == "Template format error: JSON not well-formed."
    assert not [s for s in cfn.list_stacks()["StackSummaries"] if s["StackName"] == "nan-template"]


@pytest.mark.parametrize("body", NOT_A_MAPPING.values(), ids=NOT_A_MAPPING.keys())
def test_a_body_that_is_no_mapping_is_a_validation_error(emulator: Emulator, body: str) -> None:
    cfn = client(emulator, "cloudformation")
    for error in (
        refused(cfn.validate_template, TemplateBody=body),
        refused(cfn.create_stack, StackName="no-mapping", TemplateBody=body),
    ):
        assert error == {
            "Code": "ValidationError",
            "Message": "Template format error: unsupported structure.",
            **{k: v for k, v in error.items() if k not in ("Code", "Message")},
        }


def test_a_body_no_reader_reads_is_a_validation_error(emulator: Emulator) -> None:
    cfn = client(emulator, "cloudformation")
    error = refused(cfn.create_stack, StackName="bad-yaml", TemplateBody=NOT_WELL_FORMED_YAML)
    assert (error["Code"], error["Message"]) == (
        "ValidationError",
        "Template format error: YAML not well-formed.",
    )


def test_well_formed_templates_are_still_taken(emulator: Emulator) -> None:
    cfn = client(emulator, "cloudformation")
    yaml_body = "Resources:\n  Topic:\n    Type: AWS::SNS::Topic\n"
    for body in ("{" + TOPIC + ', "Metadata": {"Big": 1e308}}', yaml_body):
        cfn.validate_template(TemplateBody=body)
    stack = cfn.create_stack(StackName="taken", TemplateBody="{" + TOPIC + "}")["StackId"]
    assert cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    cfn.delete_stack(StackName=stack)


@pytest.fixture(scope="module")
def data_api(emulator: Emulator) -> Iterator[tuple[Any, dict[str, str]]]:
    """A cluster with the Data API on, its master secret, and a table of loan ids."""
    rds = client(emulator, "rds")
    cluster = rds.create_db_cluster(
        DBClusterIdentifier="aurora-answers",
        Engine="aurora-mysql",
        MasterUsername="loanadmin",
        MasterUserPassword="answers-password-1",
        DatabaseName="loans",
    )["DBCluster"]
    rds.enable_http_endpoint(ResourceArn=cluster["DBClusterArn"])
    secret = client(emulator, "secretsmanager").create_secret(
        Name="answers-master",
        SecretString=json.dumps({"username": "loanadmin", "password": "answers-password-1"}),
    )["ARN"]
    data = client(emulator, "rds-data")
    call = {"resourceArn": cluster["DBClusterArn"], "secretArn": secret, "database": "loans"}
    data.execute_statement(sql="CREATE TABLE ids (n INT PRIMARY KEY, loan_id VARCHAR(64))", **call)
    yield data, call
    rds.delete_db_cluster(DBClusterIdentifier="aurora-answers", SkipFinalSnapshot=True)


def test_a_loan_id_holding_request_id_elements_reads_back_as_stored(
    data_api: tuple[Any, dict[str, str]],
) -> None:
    """moto rewrote `<RequestId>...</RequestId>` in every answer, JSON ones too: the first id
    came back as the request id and the rows between two such ids vanished from the page."""
    data, call = data_api
    ids = ["<RequestId>x</RequestId>", "L-1", "L-2", "<RequestId>y</RequestId>"]
    for n, loan_id in enumerate(ids):
        data.execute_statement(
            sql="INSERT INTO ids VALUES (:n, :id)",
            parameters=[
                {"name": "n", "value": {"longValue": n}},
                {"name": "id", "value": {"stringValue": loan_id}},
            ],
            **call,
        )
    sql = "SELECT n, loan_id FROM ids ORDER BY n"
    page = data.execute_statement(sql=sql, formatRecordsAs="JSON", **call)
    assert json.loads(page["formattedRecords"]) == [
        {"n": n, "loan_id": loan_id} for n, loan_id in enumerate(ids)
    ]
    records = data.execute_statement(sql=sql, **call)["records"]
    assert records == [[{"longValue": n}, {"stringValue": i}] for n, i in enumerate(ids)]


def test_an_xml_answer_still_carries_the_request_id(emulator: Emulator) -> None:
    """The query protocol's answers hold `ResponseMetadata/RequestId` in the body; it is the
    request's id, the one the `x-amzn-RequestId` header carries (moto's templates hold a fixed
    placeholder until the substitution replaces it)."""
    answers = [
        client(emulator, "sts").get_caller_identity(),
        client(emulator, "cloudformation").describe_stacks(),
    ]
    for answer in answers:
        meta = answer["ResponseMetadata"]
        assert meta["RequestId"] == meta["HTTPHeaders"]["x-amzn-requestid"]
