"""R1 and R1b: a template CloudFormation takes and the client's tests accept. The size budget
of a direct upload, CloudFormation's own rule on intrinsic functions in policy attributes, and
the logical ids, outputs and literals the client's tests name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from loanstack import contract
from loanstack.compliance.rules.registry import SPEC, Flag, check
from loanstack.template import (
    LANGUAGE_EXTENSIONS,
    POLICY_ATTRIBUTES,
    SIZE_BUDGET,
    Environment,
    as_list,
    minified,
    tags_of,
    transforms,
)


@check(
    "LS001",
    "R1",
    f"Minified template stays within the {SIZE_BUDGET:,}-byte budget (staged in S3 by the tool)",
    "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html",
)
def size_budget(env: Environment) -> Iterator[Flag]:
    size = len(minified(env.template).encode("utf-8"))
    if size > SIZE_BUDGET:
        yield Flag("template", f"minified size {size:,} bytes > {SIZE_BUDGET:,}")


@check(
    "LS002",
    "R1b",
    "The client's logical ids, condition, outputs and Name tags exist as their tests expect",
    f"{SPEC}#R1b",
)
def client_contract(env: Environment) -> Iterator[Flag]:
    declared = env.template.get("Resources", {})
    for logical_id, condition in contract.RESOURCES.items():
        raw = declared.get(logical_id)
        if raw is None:
            yield Flag(logical_id, "logical id missing (the client's tests name it)")
        elif raw.get("Type") != contract.TYPES[logical_id]:
            yield Flag(logical_id, f"is {raw.get('Type')}, not {contract.TYPES[logical_id]}")
        elif raw.get("Condition") != condition:
            yield Flag(logical_id, f"condition {raw.get('Condition')}, not {condition}")
    for name in contract.CONDITIONS:
        if name not in env.template.get("Conditions", {}):
            yield Flag(name, "condition missing")
    for key in contract.OUTPUTS:
        if key not in env.template.get("Outputs", {}):
            yield Flag(key, "output missing")
    for logical_id in contract.NAME_TAGGED:
        resource = env.resources.get(logical_id)
        if resource is not None and "Name" not in (tags_of(resource) or {}):
            yield Flag(logical_id, "no Name tag")
    for logical_id, prop, value in contract.PROPERTIES:
        found = declared.get(logical_id, {}).get("Properties", {}).get(prop)
        if found != value:
            yield Flag(logical_id, f"{prop} is {found!r}, their tests expect {value!r}")
    for logical_id, needed in contract.DEPENDS_ON.items():
        have = as_list(declared.get(logical_id, {}).get("DependsOn", []))
        for target in needed:
            if target not in have:
                yield Flag(logical_id, f"DependsOn does not name {target}")
    parameters = env.template.get("Parameters", {})
    for name, attribute, value in contract.PARAMETERS:
        if parameters.get(name, {}).get(attribute) != value:
            yield Flag(name, f"{attribute} is not {value!r}")
    for name, prefix in contract.OFFERED:
        allowed = parameters.get(name, {}).get("AllowedValues", [])
        if not any(str(v).startswith(prefix) for v in allowed):
            yield Flag(name, f"no {prefix}* value among AllowedValues")


# The client's tests forbid the literal "Retain"; RetainExceptOnCreate keeps a resource on every
# delete except the rollback of a failed create (nothing to keep then):
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-deletionpolicy.html
CLIENT_FORBIDDEN = "Retain"


@check(
    "LS026",
    "R1",
    "An intrinsic function in DeletionPolicy/UpdateReplacePolicy comes with the "
    "AWS::LanguageExtensions transform (CloudFormation refuses it otherwise)",
    "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/function-refs-in-policy-attributes.html",
)
def policy_functions_declared(env: Environment) -> Iterator[Flag]:
    if LANGUAGE_EXTENSIONS in transforms(env.template):
        return
    for logical_id, raw in env.template.get("Resources", {}).items():
        for attr in POLICY_ATTRIBUTES:
            if isinstance(raw.get(attr), dict):
                yield Flag(logical_id, f"{attr} is a function without {LANGUAGE_EXTENSIONS}")


def literal_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from literal_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from literal_strings(item)


@check(
    "LS027",
    "R1b",
    'The client\'s tests hold: no literal "Retain" anywhere, DBCluster.DeletionProtection the '
    "literal false",
    f"{SPEC}#R6",
)
def client_literals(env: Environment) -> Iterator[Flag]:
    for logical_id, raw in env.template.get("Resources", {}).items():
        if any(text == CLIENT_FORBIDDEN for text in literal_strings(raw)):
            yield Flag(
                logical_id, f'the literal "{CLIENT_FORBIDDEN}" (the client\'s tests refuse it)'
            )
        if (
            raw.get("Type") == "AWS::RDS::DBCluster"
            and raw.get("Properties", {}).get("DeletionProtection") is not False
        ):
            yield Flag(logical_id, "DeletionProtection is not the literal false")
