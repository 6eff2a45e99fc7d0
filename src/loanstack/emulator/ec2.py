"""EC2 network ACLs, their entries and subnet associations, on moto's EC2 backend."""

from __future__ import annotations

from typing import Any

from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models import ec2_backends
from moto.ec2.models.security_groups import SecurityGroupBackend

from loanstack.emulator import fence
from loanstack.emulator.base import Extension, tags


def ec2(account_id: str, region: str) -> Any:
    return ec2_backends[account_id][region]


def create_security_group(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """EC2 as AWS answers it where moto is laxer.

    CreateSecurityGroup refuses a GroupName that starts with "sg-" (API reference: "Constraints:
    ... cannot start with sg-"; EC2 answers InvalidParameterValue).
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateSecurityGroup.html
    """
    if str(name).lower().startswith("sg-"):
        raise EC2ClientError(
            "InvalidParameterValue",
            f"Value ({name}) for parameter GroupName is invalid. "
            "Group names may not be in the format sg-*.",
        )
    original = fence.original(SecurityGroupBackend, "create_security_group")
    return original(self, name, *args, **kwargs)


class NetworkAcl(Extension):
    TYPE = "AWS::EC2::NetworkAcl"
    ATTRIBUTES = ("Id",)

    @classmethod
    def create(
        cls, name: str, props: dict[str, Any], account_id: str, region: str, **request: Any
    ) -> Extension:
        acl = ec2(account_id, region).create_network_acl(props["VpcId"], tags=tags(props))
        return cls(acl.id, account_id, region, Id=acl.id)

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        ec2(self.account_id, self.region).delete_network_acl(self.physical_id)


class NetworkAclEntry(Extension):
    TYPE = "AWS::EC2::NetworkAclEntry"
    ATTRIBUTES = ("Id",)

    @classmethod
    def create(
        cls, name: str, props: dict[str, Any], account_id: str, region: str, **request: Any
    ) -> Extension:
        ports = props.get("PortRange") or {}
        icmp = props.get("Icmp") or {}
        acl_id, rule, egress = (
            props["NetworkAclId"],
            int(props["RuleNumber"]),
            bool(props.get("Egress", False)),
        )
        ec2(account_id, region).create_network_acl_entry(
            network_acl_id=acl_id,
            rule_number=rule,
            protocol=str(props["Protocol"]),
            rule_action=props["RuleAction"],
            egress=egress,
            cidr_block=props.get("CidrBlock"),
            icmp_code=icmp.get("Code"),
            icmp_type=icmp.get("Type"),
            port_range_from=ports.get("From"),
            port_range_to=ports.get("To"),
            ipv6_cidr_block=props.get("Ipv6CidrBlock"),
        )
        entry_id = f"{acl_id}|{rule}|{'egress' if egress else 'ingress'}"
        return cls(entry_id, account_id, region, Id=entry_id, Entry=(acl_id, rule, egress))

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        acl_id, rule, egress = self.attributes["Entry"]
        ec2(self.account_id, self.region).delete_network_acl_entry(acl_id, rule, egress)


class SubnetNetworkAclAssociation(Extension):
    """Moves the subnet from its VPC's default ACL to the template's, as EC2 does."""

    TYPE = "AWS::EC2::SubnetNetworkAclAssociation"
    ATTRIBUTES = ("AssociationId",)

    @classmethod
    def create(
        cls, name: str, props: dict[str, Any], account_id: str, region: str, **request: Any
    ) -> Extension:
        backend = ec2(account_id, region)
        association = backend.replace_network_acl_association(
            current_association(backend, props["SubnetId"]), props["NetworkAclId"]
        )
        return cls(
            association.id,
            account_id,
            region,
            AssociationId=association.id,
            SubnetId=props["SubnetId"],
        )

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        """Give the subnet back to its VPC's default ACL (EC2 never leaves a subnet without)."""
        backend = ec2(self.account_id, self.region)
        vpc_id = backend.get_subnet(self.attributes["SubnetId"]).vpc_id
        default = next(a for a in backend.network_acls.values() if a.vpc_id == vpc_id and a.default)
        backend.replace_network_acl_association(
            current_association(backend, self.attributes["SubnetId"]), default.id
        )


def current_association(backend: Any, subnet_id: str) -> str:
    for acl in backend.network_acls.values():
        for association_id, association in acl._associations.items():
            if association.subnet_id == subnet_id:
                return str(association_id)
    raise LookupError(f"subnet {subnet_id} has no network ACL association")


class SecurityGroupEgress(Extension):
    """A separate egress rule (moto models none). `Ref` is the rule id (`sgr-…`), as in
    https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-ec2-securitygroupegress.html
    """

    TYPE = "AWS::EC2::SecurityGroupEgress"
    ATTRIBUTES = ("Id",)

    @classmethod
    def create(
        cls, name: str, props: dict[str, Any], account_id: str, region: str, **request: Any
    ) -> Extension:
        target = props.get("DestinationSecurityGroupId")
        cidr = props.get("CidrIp")
        rules, group = ec2(account_id, region).authorize_security_group_egress(
            group_name_or_id=props["GroupId"],
            ip_protocol=str(props["IpProtocol"]),
            from_port=str(props.get("FromPort", -1)),
            to_port=str(props.get("ToPort", -1)),
            ip_ranges=[{"CidrIp": cidr, "Description": props.get("Description")}] if cidr else [],
            source_groups=[{"GroupId": target}] if target else [],
        )
        rule_id = rules[0].id
        return cls(rule_id, account_id, region, Id=rule_id, GroupId=group.id)

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        group = ec2(self.account_id, self.region).get_security_group_from_id(
            self.attributes["GroupId"]
        )
        if group is not None:
            group.egress_rules = [r for r in group.egress_rules if r.id != self.physical_id]
