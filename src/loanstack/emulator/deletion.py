"""Deletion for moto models that can be created from a template but not deleted with it.

moto silently keeps these when a stack is deleted (their model has neither `delete` nor
`delete_from_cloudformation_json`); each function here removes one from moto's backend the
way CloudFormation's delete handler does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.cloudformation import parsing
from moto.ec2.models import ec2_backends

Deleter = Callable[[Any, Any], None]


def nat_gateway(r: Any, ec2: Any) -> None:
    ec2.delete_nat_gateway(r.id)
    ec2.nat_gateways.pop(r.id, None)  # moto keeps it "deleted" forever; AWS forgets it in an hour


def vpc_endpoint(r: Any, ec2: Any) -> None:
    ec2.delete_vpc_endpoints([r.id])
    ec2.vpc_end_points.pop(r.id, None)  # moto keeps it "deleted" forever


def route(r: Any, ec2: Any) -> None:
    ec2.delete_route(r.route_table.id, r.destination_cidr_block)


def subnet_route_table_association(r: Any, ec2: Any) -> None:
    ec2.subnet_associations.pop(f"{r.route_table_id}:{r.subnet_id}", None)
    table = ec2.get_route_table(r.route_table_id)
    for association_id, subnet_id in list(table._associations.items()):
        if subnet_id == r.subnet_id:
            ec2.disassociate_route_table(association_id)


def gateway_attachment(r: Any, ec2: Any) -> None:
    if r.gateway_id.startswith("igw-"):
        ec2.detach_internet_gateway(r.gateway_id, r.vpc_id)
    else:
        ec2.detach_vpn_gateway(r.gateway_id, r.vpc_id)


DELETERS: dict[str, Deleter] = {
    "AWS::EC2::EIP": lambda r, ec2: ec2.release_address(allocation_id=r.allocation_id),
    "AWS::EC2::FlowLog": lambda r, ec2: ec2.delete_flow_logs([r.id]),
    "AWS::EC2::InternetGateway": lambda r, ec2: ec2.delete_internet_gateway(r.id),
    "AWS::EC2::NatGateway": nat_gateway,
    "AWS::EC2::Route": route,
    "AWS::EC2::RouteTable": lambda r, ec2: ec2.delete_route_table(r.id),
    "AWS::EC2::SubnetRouteTableAssociation": subnet_route_table_association,
    "AWS::EC2::VPCEndpoint": vpc_endpoint,
    "AWS::EC2::VPCGatewayAttachment": gateway_attachment,
}


def delete(resource_type: str, resource: Any, account_id: str, region: str) -> bool:
    """True when this module deleted the resource; False when moto's model can."""
    deleter = DELETERS.get(resource_type)
    if deleter is None:
        return False
    deleter(resource, ec2_backends[account_id][region])
    return True


def forget_deleted(stack: Any, created: list[str]) -> None:
    """After a delete that failed part-way, what it deleted stays deleted, as in CloudFormation.

    moto's resource map re-creates a resource it no longer holds the moment anything names it
    (describing the stack's outputs does): after one DELETE_FAILED, the trail came back logging
    into a trail bucket that came back too, and every later round of `loanstack destroy` found
    them written again. The deleted resources leave the map, and so do the outputs that named
    them (those already shown keep their values)."""
    resources = stack.resource_map
    gone = [
        k
        for k in created
        if k in resources._resource_json_map and k not in resources._parsed_resources
    ]
    for logical_id in gone:
        resources._resource_json_map.pop(logical_id)
    old = stack.output_map
    surviving: dict[str, Any] = {}
    for key, value in (old._output_json_map or {}).items():
        if resolves(key, value, resources):
            surviving[key] = value
    stack.output_map = parsing.OutputMap(resources, {"Outputs": surviving}, stack.stack_id)
    stack.output_map._parsed_outputs.update(
        {k: v for k, v in old._parsed_outputs.items() if k in surviving}
    )


def resolves(key: str, output: dict[str, Any], resources: Any) -> bool:
    """The output's value and export (evaluated again whenever the stack is described) name
    no deleted resource."""
    try:
        parsing.parse_output(key, output, resources)
        if output.get("Export"):
            parsing.clean_json(output["Export"], resources)
    except Exception:  # a KeyError, or a GetAtt of None: it names a deleted resource
        return False
    return True
