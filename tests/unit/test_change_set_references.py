"""How the emulator's change set finds what refers to a replaced resource (changesets.follow_references)."""

from __future__ import annotations

from loanstack import template
from loanstack.emulator import changesets


def test_each_form_of_reference_is_named_as_describe_change_set_names_it() -> None:
    node = {
        "A": {"Ref": "VPC"},
        "B": {"Fn::GetAtt": ["VPC", "CidrBlock"]},
        "C": {"Fn::GetAtt": "VPC.DefaultSecurityGroup"},
        "D": {"Fn::Sub": "${VPC}/${VPC.CidrBlock}/${AWS::Region}/${!VPC}"},
        "E": {"Fn::Sub": ["${VPC}", {"VPC": "shadowed"}]},
        "F": [{"Ref": "VPCFlowLog"}, {"Ref": "Other"}],
    }
    assert changesets.referring(node, "VPC") == {
        ("ResourceReference", "VPC"),
        ("ResourceAttribute", "VPC.CidrBlock"),
        ("ResourceAttribute", "VPC.DefaultSecurityGroup"),
    }
    assert changesets.referring(node["F"], "VPC") == set()


def test_a_replacement_is_followed_through_create_only_references_only() -> None:
    """The subnet's VpcId is create-only: Conditional, and its own referrers follow; the
    function's VpcConfig updates in place: listed, not replaced, and not followed further."""
    doc = {
        "Resources": {
            "VPC": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}},
            "Subnet": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "VPC"}}},
            "Table": {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": {"Ref": "VPC"}}},
            "Link": {
                "Type": "AWS::EC2::SubnetRouteTableAssociation",
                "Properties": {"SubnetId": {"Ref": "Subnet"}, "RouteTableId": {"Ref": "Table"}},
            },
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {"VpcConfig": {"SubnetIds": [{"Ref": "Subnet"}]}},
            },
            "Alias": {"Type": "AWS::Lambda::Alias", "Properties": {"FunctionName": {"Ref": "Fn"}}},
        }
    }
    resources = template.instantiate(doc, {}).resources
    vpc = changesets.Change(
        "Modify", "VPC", "AWS::EC2::VPC", {"CidrBlock": "10.0.0.0/16"}, {"CidrBlock": "10.1.0.0/16"}
    )
    assert vpc.replacement == "True"
    changes = changesets.follow_references([vpc], resources, list(resources))
    replacement = {c.logical_resource_id: c.replacement for c in changes}
    assert replacement == {
        "VPC": "True",
        "Subnet": "Conditional",
        "Table": "Conditional",
        "Link": "Conditional",
        "Fn": "False",
    }
    link = next(c for c in changes if c.logical_resource_id == "Link")
    assert sorted((d["Target"]["Name"], d["CausingEntity"]) for d in link.details) == [
        ("RouteTableId", "Table"),
        ("SubnetId", "Subnet"),
    ]
    assert {d["Evaluation"] for d in link.details} == {"Dynamic"}
