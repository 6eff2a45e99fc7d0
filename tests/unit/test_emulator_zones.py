"""Pinned availability zones (R7 amended) on the emulator: the template's own zone expression,
deployed with both zones given and with none (a pipeline passing only EnvironmentSuffix)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from loanstack import template
from loanstack.emulator import install

REGION = "us-east-1"


@pytest.fixture
def aws() -> Iterator[None]:
    install()
    with mock_aws():
        yield


def zones_template() -> dict[str, Any]:
    """The template's zone parameters, rule, condition and two subnets, as written there."""
    doc = template.load()
    params = {k: doc["Parameters"][k] for k in ("AvailabilityZone1", "AvailabilityZone2")}
    resources: dict[str, Any] = {
        "VPC": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.9.0.0/16"}}
    }
    for i, logical_id in enumerate(("PublicSubnet1", "PublicSubnet2")):
        zone = doc["Resources"][logical_id]["Properties"]["AvailabilityZone"]
        resources[logical_id] = {
            "Type": "AWS::EC2::Subnet",
            "Properties": {
                "VpcId": {"Ref": "VPC"},
                "CidrBlock": f"10.9.{i}.0/24",
                "AvailabilityZone": zone,
            },
        }
    return {
        "Parameters": params,
        "Rules": doc["Rules"],
        "Conditions": {"PinsAvailabilityZones": doc["Conditions"]["PinsAvailabilityZones"]},
        "Resources": resources,
    }


def deployed_zones(parameters: dict[str, str]) -> list[str]:
    cfn = boto3.client("cloudformation", region_name=REGION)
    change_set = cfn.create_change_set(
        StackName="zones",
        ChangeSetName="c",
        ChangeSetType="CREATE",
        TemplateBody=json.dumps(zones_template()),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
    )
    cfn.execute_change_set(ChangeSetName=change_set["Id"])
    assert cfn.describe_stacks(StackName="zones")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    resources = cfn.list_stack_resources(StackName="zones")["StackResourceSummaries"]
    ids = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}
    ec2 = boto3.client("ec2", region_name=REGION)
    subnets = ec2.describe_subnets(SubnetIds=[ids["PublicSubnet1"], ids["PublicSubnet2"]])
    by_id = {s["SubnetId"]: s["AvailabilityZone"] for s in subnets["Subnets"]}
    return [by_id[ids["PublicSubnet1"]], by_id[ids["PublicSubnet2"]]]


def test_pinned_zones_are_the_ones_deployed(aws: None) -> None:
    pinned = {"AvailabilityZone1": "us-east-1c", "AvailabilityZone2": "us-east-1d"}
    assert deployed_zones(pinned) == ["us-east-1c", "us-east-1d"]


def test_without_pinning_the_stack_still_deploys_on_two_zones(aws: None) -> None:
    first, second = deployed_zones({})
    assert first != second and first.startswith(REGION) and second.startswith(REGION)


def test_the_model_refuses_one_zone_without_the_other() -> None:
    """Both or neither (the template's Rules): one zone alone would leave a subnet unplaced."""
    with pytest.raises(template.ParameterError, match="AvailabilityZonesComeAsAPair"):
        template.instantiate(None, {"AvailabilityZone1": "us-east-1a"})
    with pytest.raises(template.ParameterError, match="AvailabilityZonesComeAsAPair"):
        template.instantiate(
            None, {"AvailabilityZone1": "us-east-1a", "AvailabilityZone2": "us-east-1a"}
        )


def test_the_client_reads_each_public_subnet_zone_as_select_0_and_1() -> None:
    doc = template.load()
    for index, logical_id in enumerate(("PublicSubnet1", "PublicSubnet2")):
        zone = doc["Resources"][logical_id]["Properties"]["AvailabilityZone"]
        assert zone["Fn::Select"][0] == index
