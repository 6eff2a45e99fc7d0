"""The template model evaluates conditions and intrinsics the way CloudFormation does."""

from __future__ import annotations

from typing import Any

import pytest

from loanstack import template
from tests.support.helpers import build


def test_conditions_follow_environment_type(pristine: dict[str, Any]) -> None:
    assert build(pristine, "prod").conditions["IsProduction"] is True
    assert build(pristine, "dev").conditions["IsProduction"] is False


def test_fn_sub_resolves_parameters_and_pseudo_parameters(pristine: dict[str, Any]) -> None:
    vpc = build(pristine).resources["VPC"]
    tags = template.tags_of(vpc)
    assert tags is not None
    assert tags["Name"] == "vpc-loanprocessing-dev42"
    assert tags["Environment"] == "dev"


def test_resource_references_stay_symbolic(pristine: dict[str, Any]) -> None:
    subnet = build(pristine).resources["PrivateSubnet1"]
    assert subnet.properties["VpcId"] == {"Ref": "VPC"}


def test_fn_if_picks_branch_and_no_value_drops_property() -> None:
    doc = {
        "Parameters": {
            "EnvironmentSuffix": {"Type": "String"},
            "EnvironmentType": {"Type": "String"},
        },
        "Conditions": {"IsProduction": {"Fn::Equals": [{"Ref": "EnvironmentType"}, "prod"]}},
        "Resources": {
            "Q": {
                "Type": "AWS::SQS::Queue",
                "Properties": {
                    "DelaySeconds": {"Fn::If": ["IsProduction", 5, {"Ref": "AWS::NoValue"}]},
                    "QueueName": {"Fn::Sub": "sqs-x-${EnvironmentSuffix}-${AWS::Region}"},
                },
            }
        },
    }
    prod = build(doc, "prod").resources["Q"].properties
    dev = build(doc, "dev").resources["Q"].properties
    assert prod["DelaySeconds"] == 5
    assert "DelaySeconds" not in dev
    assert dev["QueueName"] == "sqs-x-dev42-us-east-1"


def test_parameter_values_refuse_what_cloudformation_refuses(pristine: dict[str, Any]) -> None:
    with pytest.raises(template.ParameterError, match="EnvironmentType"):
        build(pristine, "staging")
    with pytest.raises(template.ParameterError, match="EnvironmentSuffix"):
        template.instantiate(pristine, {"EnvironmentSuffix": "Dev_42"})
    with pytest.raises(template.ParameterError, match="unknown parameter"):
        template.instantiate(pristine, {"NoSuchParameter": "x"})


def test_taggability_and_names_come_from_the_registry_schemas() -> None:
    assert template.tag_property("AWS::EC2::VPC") == "Tags"
    assert template.tag_property("AWS::EC2::NetworkAclEntry") is None
    assert template.name_properties("AWS::Lambda::Function") == ("FunctionName",)
    assert "ServiceName" not in template.name_properties("AWS::EC2::VPCEndpoint")


def test_references_finds_ref_getatt_and_sub() -> None:
    node = {
        "A": {"Ref": "X"},
        "B": {"Fn::GetAtt": ["Y", "Arn"]},
        "C": {"Fn::Sub": "${Z.Arn}/${AWS::Region}"},
    }
    assert template.references(node) == {"X", "Y", "Z"}
