"""The outputs file as the one object commands and ops pass around (`aws.outputs.StackRecord`):
read from a stack's own record (D9) or from the flat file (R1b), its values by name, and a
missing output said in one line that names the file it is missing from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loanstack.aws.outputs import StackRecord, read_outputs, read_stack, write_record
from loanstack.errors import DeployError

OUTPUTS = {
    "VPCId": "vpc-1",
    "DBClusterArn": "arn:aws:rds:us-east-1:123456789012:cluster:aurora-loanprocessing-r1",
    "DBSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:master",
    "AppDatabaseSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:app",
    "LoanDocumentsBucketName": "loan-documents-r1",
    "LoanValidationFunctionName": "lambda-loanvalidator-r1",
    "SecretRotationLambdaArn": "arn:aws:lambda:us-east-1:123456789012:function:rotation-r1",
    "ValidationDeadLetterQueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/dlq-r1",
}


def test_a_record_file_reads_back_with_where_the_stack_lives_and_its_values(
    tmp_path: Path,
) -> None:
    flat = tmp_path / "flat-outputs.json"
    own = write_record(
        StackRecord("tapstack-r1", "123456789012", "eu-west-1", "aws", OUTPUTS, "bank"), flat
    )
    stack = read_stack(own)
    assert (stack.stack, stack.account, stack.region, stack.target, stack.profile) == (
        "tapstack-r1",
        "123456789012",
        "eu-west-1",
        "aws",
        "bank",
    )
    assert stack.source == own
    assert (stack.function_name, stack.bucket, stack.cluster_arn) == (
        "lambda-loanvalidator-r1",
        "loan-documents-r1",
        OUTPUTS["DBClusterArn"],
    )
    assert (stack.master_secret_arn, stack.app_secret_arn) == (
        OUTPUTS["DBSecretArn"],
        OUTPUTS["AppDatabaseSecretArn"],
    )
    assert stack.rotation_function_arn == OUTPUTS["SecretRotationLambdaArn"]
    assert stack.dead_letter_queue_url == OUTPUTS["ValidationDeadLetterQueueUrl"]
    assert stack.vpc_id == "vpc-1"
    assert read_stack(flat).outputs == read_outputs(flat) == read_outputs(own) == OUTPUTS


def test_a_flat_file_alone_gives_its_outputs_and_no_stack(tmp_path: Path) -> None:
    flat = tmp_path / "by-hand.json"
    flat.write_text(json.dumps({"LoanValidationFunctionName": "fn-1"}), encoding="utf-8")
    stack = read_stack(flat)
    assert (stack.stack, stack.region, stack.target, stack.function_name) == ("", "", "", "fn-1")
    assert stack.vpc_id is None


def test_a_missing_output_names_the_file_it_was_read_from(tmp_path: Path) -> None:
    flat = tmp_path / "elsewhere.json"
    flat.write_text(json.dumps({"VPCId": "vpc-1"}), encoding="utf-8")
    with pytest.raises(DeployError, match=r"^output DBClusterArn missing from .*elsewhere\.json$"):
        _ = read_stack(flat).cluster_arn
