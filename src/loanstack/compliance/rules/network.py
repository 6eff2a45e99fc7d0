"""R7: the network. No security group open to the world, the network ACLs of the subnets that
hold Lambda ENIs let the replies back in (NACLs are stateless), availability zones pinnable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from loanstack.compliance.rules.registry import Flag, check
from loanstack.template import Environment, references

OPEN_CIDRS = {"0.0.0.0/0", "::/0"}


@check(
    "LS007",
    "R7",
    "No security group accepts ingress from 0.0.0.0/0 or ::/0",
    "https://docs.aws.amazon.com/vpc/latest/userguide/vpc-security-best-practices.html",
)
def no_open_ingress(env: Environment) -> Iterator[Flag]:
    for r in env.of_type("AWS::EC2::SecurityGroup", "AWS::EC2::SecurityGroupIngress"):
        rules = r.properties.get("SecurityGroupIngress", [])
        if r.type == "AWS::EC2::SecurityGroupIngress":
            rules = [r.properties]
        for rule in rules:
            if {rule.get("CidrIp"), rule.get("CidrIpv6")} & OPEN_CIDRS:
                yield Flag(r.logical_id, "ingress open to the internet")


@check(
    "LS017",
    "R7",
    "Subnets holding Lambda ENIs admit inbound TCP 1024-65535 (replies; NACLs are stateless)",
    "https://docs.aws.amazon.com/vpc/latest/userguide/custom-network-acl.html#nacl-ephemeral-ports",
)
def lambda_return_traffic(env: Environment) -> Iterator[Flag]:
    for subnet in sorted(lambda_subnets(env)):
        acl = subnet_acl(env, subnet)
        if acl is None:
            continue  # the default ACL of a VPC allows all traffic
        if not covers(admitted_tcp_ports(env, acl), EPHEMERAL):
            yield Flag(
                acl,
                f"{subnet} holds Lambda ENIs but {acl} does not admit TCP "
                f"{EPHEMERAL[0]}-{EPHEMERAL[1]} inbound: replies to low ports are dropped",
            )


def pinnable_zone(env: Environment, node: Any) -> bool:
    """`Fn::Select [i, Fn::If [cond, [Ref zone parameters], Fn::GetAZs]]`: the zone is a
    parameter when pinned and a list position only as the fallback (the client's tests read
    the Fn::Select and its index)."""
    select = node.get("Fn::Select") if isinstance(node, dict) else None
    if not (isinstance(select, list) and len(select) == 2 and isinstance(select[1], dict)):
        return False
    choice = select[1].get("Fn::If")
    if not (isinstance(choice, list) and len(choice) == 3):
        return False
    parameters = set(env.template.get("Parameters", {}))
    branches = choice[1:]
    pinned = [b for b in branches if isinstance(b, list) and b]
    fallback = [b for b in branches if isinstance(b, dict) and "Fn::GetAZs" in b]
    return (
        len(pinned) == 1
        and len(fallback) == 1
        and all(isinstance(z, dict) and z.get("Ref") in parameters for z in pinned[0])
    )


@check(
    "LS022",
    "R7",
    "Availability zones are pinnable parameters; Fn::GetAZs list order is only the fallback",
    "https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/intrinsic-function-reference-getavailabilityzones.html",
)
def pinned_zones(env: Environment) -> Iterator[Flag]:
    for r in env.resources.values():
        raw = r.raw.get("Properties", {}).get("AvailabilityZone")
        if raw is not None and not pinnable_zone(env, raw):
            yield Flag(
                r.logical_id,
                "AvailabilityZone by Fn::GetAZs position only: the order changes when AWS adds "
                "a zone, and the next update replaces the resource",
            )


EPHEMERAL = (1024, 65535)  # the range Lambda ENIs (and NAT gateways) pick source ports from


def lambda_subnets(env: Environment) -> set[str]:
    found: set[str] = set()
    for fn in env.of_type("AWS::Lambda::Function"):
        for subnet in fn.properties.get("VpcConfig", {}).get("SubnetIds", []):
            found |= references(subnet)
    return found


def subnet_acl(env: Environment, subnet: str) -> str | None:
    for assoc in env.of_type("AWS::EC2::SubnetNetworkAclAssociation"):
        if subnet in references(assoc.properties.get("SubnetId")):
            return next(iter(references(assoc.properties.get("NetworkAclId"))), None)
    return None


def admitted_tcp_ports(env: Environment, acl: str) -> list[tuple[int, int]]:
    """Port ranges an inbound allow rule from anywhere opens, before any deny (rule order)."""
    entries = sorted(
        (
            e.properties
            for e in env.of_type("AWS::EC2::NetworkAclEntry")
            if acl in references(e.properties.get("NetworkAclId"))
            and not e.properties.get("Egress", False)
            and str(e.properties.get("Protocol")) in ("6", "-1")
        ),
        key=lambda p: int(p.get("RuleNumber", 0)),
    )
    opened: list[tuple[int, int]] = []
    for entry in entries:
        if entry.get("CidrBlock") != "0.0.0.0/0":
            continue
        ports = entry.get("PortRange", {"From": 0, "To": 65535})
        span = (int(ports["From"]), int(ports["To"]))
        if str(entry.get("Protocol")) == "-1":
            span = (0, 65535)
        if entry.get("RuleAction") == "deny":
            break  # a deny before the allow would shadow it; treat it as the end
        opened.append(span)
    return opened


def covers(spans: list[tuple[int, int]], wanted: tuple[int, int]) -> bool:
    reach = wanted[0]
    for low, high in sorted(spans):
        if low <= reach <= high:
            reach = high + 1
    return reach > wanted[1]
