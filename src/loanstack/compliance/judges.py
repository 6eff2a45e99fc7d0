"""Two more independent judges (SPEC D5 amended): parliament, an IAM policy linter that knows
which actions take which resources, and cfripper, a CloudFormation security scanner.

Both read policies and templates with every value known; ours hold references that exist only
after a deployment (`Fn::GetAtt [Bucket, Arn]`) and a `Number` parameter with a fractional
`MinValue` that pycfmodel refuses. So each judge reads one environment as CloudFormation would
deploy it: conditions applied, parameters in place, and each reference replaced by the value
the resource will have, in the format its service documents (the ARN formats of the Service
Authorization Reference). That is our workaround, in our code: the template is not changed for
the tools.

An accepted finding is listed with its written reason in compliance/judges-exceptions.json
(one reviewed file, as for the Control Tower rules: the template is at its R1 size budget, so
the reasons do not go into the resources' Metadata); any other finding fails `loanstack check`,
and so does an entry no finding needs any more.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from loanstack.compliance.judge_cache import remembered
from loanstack.template import ROOT, Environment, Resource, name_properties, policy_documents

EXCEPTIONS = ROOT / "compliance" / "judges-exceptions.json"

# type -> ARN format, with {p}artition, {r}egion, {a}ccount and {name} (the resource's name)
# https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html
ARNS: dict[str, str] = {
    "AWS::CloudTrail::Trail": "arn:{p}:cloudtrail:{r}:{a}:trail/{name}",
    "AWS::IAM::Role": "arn:{p}:iam::{a}:role/{name}",
    "AWS::KMS::Key": "arn:{p}:kms:{r}:{a}:key/{name}",
    "AWS::Lambda::Function": "arn:{p}:lambda:{r}:{a}:function:{name}",
    "AWS::Logs::LogGroup": "arn:{p}:logs:{r}:{a}:log-group:{name}:*",
    "AWS::RDS::DBCluster": "arn:{p}:rds:{r}:{a}:cluster:{name}",
    "AWS::S3::Bucket": "arn:{p}:s3:::{name}",
    "AWS::SecretsManager::Secret": "arn:{p}:secretsmanager:{r}:{a}:secret:{name}-AbCdEf",
    "AWS::SNS::Topic": "arn:{p}:sns:{r}:{a}:{name}",
    "AWS::SQS::Queue": "arn:{p}:sqs:{r}:{a}:{name}",
}
# types whose Ref is their ARN (the rest answer their name or id)
REF_IS_ARN = frozenset({"AWS::SecretsManager::Secret", "AWS::SNS::Topic"})
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"  # a key id's format (KMS CreateKey)
_SUB = re.compile(r"\$\{([^}!][^}]*)\}")


@dataclass(frozen=True)
class Verdict:
    """One finding of an outside judge: which judge, its own rule id, the resource, and why."""

    judge: str
    rule: str
    resource: str
    message: str
    path: str


def physical_name(env: Environment, resource: Resource) -> str:
    if resource.type == "AWS::KMS::Key":
        return KEY_ID
    for prop in name_properties(resource.type):
        value = resource.properties.get(prop)
        if isinstance(value, str):
            return value
    return f"{resource.logical_id.lower()}-{env.suffix}"


def deployed(env: Environment, logical_id: str, attribute: str | None) -> str:
    """The value `Ref` (attribute None) or `Fn::GetAtt` gives once the resource exists."""
    resource = env.resources.get(logical_id)
    if resource is None:
        return logical_id
    c = env.context
    name = physical_name(env, resource)
    arn = ARNS.get(resource.type, "arn:{p}:unknown:{r}:{a}:{name}").format(
        p=c.partition, r=c.region, a=c.account_id, name=name
    )
    if attribute is None:
        return arn if resource.type in REF_IS_ARN else name
    return arn if attribute.endswith("Arn") else name


def concrete(env: Environment, node: Any) -> Any:
    """`node` with every Ref, Fn::GetAtt and Fn::Sub to a resource replaced by its value."""
    if isinstance(node, list):
        return [concrete(env, item) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        ((key, arg),) = node.items()
        if key == "Ref" and isinstance(arg, str):
            return deployed(env, arg, None)
        if key == "Fn::GetAtt":
            target, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return deployed(env, target, attribute)
        if key == "Fn::Sub":
            text = arg if isinstance(arg, str) else arg[0]

            def value(match: re.Match[str]) -> str:
                target, _, attribute = match.group(1).partition(".")
                return deployed(env, target, attribute or None)

            return _SUB.sub(value, text)
        if key.startswith("Fn::"):  # known only at deploy time (Fn::Cidr...): not a policy value
            return f"<{key} at deploy time>"
    return {k: concrete(env, v) for k, v in node.items()}


def exceptions(path: Path = EXCEPTIONS) -> dict[tuple[str, str, str], str]:
    """(judge, rule, resource) -> the reviewed reason it is accepted."""
    entries = json.loads(path.read_text(encoding="utf-8"))["exceptions"]
    return {(e["judge"], e["rule"], e["resource"]): e["reason"] for e in entries}


def documents(env: Environment) -> Iterator[tuple[Resource, str, str, dict[str, Any]]]:
    """(resource, label, JSON pointer, policy) for each identity and resource policy."""
    for r in env.resources.values():
        base = f"/Resources/{r.logical_id}/Properties"
        for i, (label, document) in enumerate(policy_documents(r)):
            pointer = f"{base}/Policies/{i}/PolicyDocument"
            if r.type != "AWS::IAM::Role":
                pointer = f"{base}/PolicyDocument"
            yield r, label, pointer, document


def parliament_verdicts(env: Environment) -> list[Verdict]:
    """parliament on every identity policy of the environment, references made concrete; kept
    by the policies and parliament's version when LOANSTACK_JUDGE_CACHE asks (judge_cache.py:
    `loanstack check` and several test modules judge the same environment)."""
    policies = [
        [f"{r.logical_id}/{label}", pointer, json.dumps(concrete(env, document))]
        for r, label, pointer, document in documents(env)
    ]
    parts = (version("parliament"), json.dumps(policies))
    found = remembered("parliament", parts, lambda: _parliament(policies))
    return [Verdict("parliament", *v) for v in found]


def _parliament(policies: list[list[str]]) -> list[list[str]]:
    """(rule, resource, message, pointer) of each finding."""
    from parliament import analyze_policy_string

    return [
        [f.issue, resource, str(f.detail), pointer]
        for resource, pointer, policy in policies
        for f in analyze_policy_string(policy).findings
    ]


def resolved_template(env: Environment) -> dict[str, Any]:
    """The environment as one template with nothing left to resolve (what cfripper reads)."""
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            r.logical_id: {"Type": r.type, "Properties": concrete(env, r.properties)}
            for r in env.resources.values()
        },
    }


def cfripper_verdicts(env: Environment) -> list[Verdict]:
    """cfripper's default rules on the resolved environment; kept by what it reads and the
    versions of cfripper and pycfmodel when LOANSTACK_JUDGE_CACHE asks (judge_cache.py)."""
    c = env.context
    scope = [c.stack_name, c.account_id, c.region]
    document = json.dumps(resolved_template(env))
    parts = (version("cfripper"), version("pycfmodel"), *scope, document)
    failures = remembered("cfripper", parts, lambda: _cfripper(scope, document))
    return [
        Verdict(
            "cfripper",
            rule,
            logical_id,
            reason,
            f"/Resources/{logical_id}" if logical_id in env.resources else "",
        )
        for rule, logical_id, reason in failures
    ]


def _cfripper(scope: list[str], document: str) -> list[list[str]]:
    """(rule, logical id or `template`, reason) of each failure."""
    from cfripper.config.config import Config
    from cfripper.rule_processor import RuleProcessor
    from cfripper.rules import DEFAULT_RULES
    from pycfmodel import parse

    logging.getLogger("pycfmodel").setLevel(logging.ERROR)  # one line per generic type otherwise
    stack_name, account_id, region = scope
    config = Config(
        stack_name=stack_name,
        aws_account_id=account_id,
        aws_region=region,
        rules=list(DEFAULT_RULES),
    )
    model = parse(json.loads(document)).resolve()
    processor = RuleProcessor(*(rule(config) for rule in DEFAULT_RULES.values()))
    result = processor.process_cf_template(model, config)
    return [
        [failure.rule, logical_id, failure.reason]
        for failure in result.failures
        for logical_id in sorted(failure.resource_ids or {"template"})
    ]
