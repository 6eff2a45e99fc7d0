"""`loanstack diagram`: the architecture as a Mermaid flowchart, generated from the template.

Resources are grouped by tier and joined by the references between them; plumbing (ACL
entries, associations, routes, policies, roles, log groups) and the key every tier uses are
left out so the picture stays readable. The README embeds the output; a test keeps it current.
"""

from __future__ import annotations

import re
from typing import Any

from loanstack.template import ROOT, as_list, references

README = ROOT / "README.md"
START, END = "<!-- diagram:start (loanstack diagram --write) -->", "<!-- diagram:end -->"
TIERS = {
    "EC2": "Network",
    "KMS": "Keys",
    "RDS": "Data",
    "SecretsManager": "Secrets",
    "Lambda": "Compute",
    "SQS": "Compute",
    "S3": "Storage",
    "CloudTrail": "Audit and monitoring",
    "CloudWatch": "Audit and monitoring",
    "SNS": "Audit and monitoring",
}
PLUMBING = {
    "AWS::EC2::NetworkAclEntry", "AWS::EC2::SubnetRouteTableAssociation", "AWS::EC2::SubnetNetworkAclAssociation",
    "AWS::EC2::Route", "AWS::EC2::VPCGatewayAttachment", "AWS::EC2::EIP", "AWS::EC2::RouteTable",
    "AWS::EC2::NetworkAcl", "AWS::KMS::Alias", "AWS::Lambda::Permission", "AWS::S3::BucketPolicy",
    "AWS::RDS::DBSubnetGroup", "AWS::RDS::DBClusterParameterGroup", "AWS::SecretsManager::SecretTargetAttachment",
    "AWS::SNS::Subscription", "AWS::IAM::Role", "AWS::Logs::LogGroup",
}  # fmt: skip
NOTES = {
    "IsProduction": "prod only",
    "CreateTrail": "unless an org trail",
    "HasAlarmEmail": "with e-mail",
}


def mermaid(template: dict[str, Any]) -> str:
    resources = {
        lid: r
        for lid, r in template["Resources"].items()
        if r["Type"] not in PLUMBING and r["Type"].split("::")[1] in TIERS
    }
    lines = ["flowchart LR"]
    for tier in dict.fromkeys(TIERS.values()):
        members = [lid for lid, r in resources.items() if TIERS[r["Type"].split("::")[1]] == tier]
        label = f"{tier} (all encrypted with KMSKey)" if tier == "Keys" else tier
        lines.append(f'  subgraph {tier.replace(" ", "")}["{label}"]')
        for lid in members:
            r = resources[lid]
            note = f"<br/><i>{NOTES[r['Condition']]}</i>" if "Condition" in r else ""
            lines.append(
                f'    {lid}["{lid}<br/><small>{r["Type"].removeprefix("AWS::")}</small>{note}"]'
            )
        lines.append("  end")
    for lid, r in resources.items():
        targets = references(r.get("Properties", {})) | set(as_list(r.get("DependsOn", [])))
        for target in sorted(targets & set(resources) - {"KMSKey", lid}):
            lines.append(f"  {lid} --> {target}")
    return "\n".join(lines) + "\n"


def readme_block(template: dict[str, Any]) -> str:
    return f"{START}\n```mermaid\n{mermaid(template)}```\n{END}"


def current_block(text: str) -> str | None:
    match = re.search(re.escape(START) + r".*?" + re.escape(END), text, flags=re.DOTALL)
    return match.group(0) if match else None


def write_readme(template: dict[str, Any]) -> bool:
    """Replace the README's diagram block; True when it changed."""
    text = README.read_text(encoding="utf-8")
    old = current_block(text)
    if old is None:
        raise ValueError(f"README.md has no {START} … {END} block")
    new = readme_block(template)
    if old == new:
        return False
    README.write_text(text.replace(old, new), encoding="utf-8")
    return True
