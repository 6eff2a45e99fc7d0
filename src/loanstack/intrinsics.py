"""What CloudFormation evaluates before it creates anything, for one set of parameter values:
parameters (defaults, constraints, the template's `Rules`), `Conditions`, and the intrinsic
functions whose value is known then (`Ref` to a parameter or pseudo parameter, `Fn::If`,
`Fn::Sub`, `Fn::Join`, `Fn::Select`, `Fn::GetAZs`). References to resources stay symbolic
(`references` lists them). Kept apart from the model (`template`) that applies it, which
re-exports these names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

NO_VALUE = object()  # AWS::NoValue: the property is dropped


class ParameterError(ValueError):
    """A parameter value CloudFormation itself would refuse."""


def parameter_values(template: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, str]:
    """Defaults plus `given`, validated against the template's own constraints."""
    declared = template.get("Parameters", {})
    unknown = set(given) - set(declared)
    if unknown:
        raise ParameterError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in given:
            value = str(given[name])
        elif "Default" in spec:
            value = str(spec["Default"])
        else:
            raise ParameterError(f"parameter {name} has no default and no value was given")
        problem = constraint_violation(spec, value)
        if problem:
            raise ParameterError(f"parameter {name}={value!r}: {problem}")
        values[name] = value
    problem = broken_rule(template.get("Rules", {}), values)
    if problem:
        raise ParameterError(problem)
    return values


def broken_rule(rules: Mapping[str, Any], values: Mapping[str, str]) -> str | None:
    """The description of the first template rule the values break, or None; CloudFormation
    checks `Rules` before it creates anything (Fn::Equals/Not/And/Or over parameter values).
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/rules-section-structure.html
    """
    scope: dict[str, Any] = dict(values)

    def truth(node: Any) -> bool:  # the condition functions (a rule names no condition)
        return evaluate_conditions({"": node}, scope)[""]

    for name, rule in rules.items():
        if "RuleCondition" in rule and not truth(rule["RuleCondition"]):
            continue
        for assertion in rule.get("Assertions", []):
            if not truth(assertion["Assert"]):
                return f"rule {name}: {assertion.get('AssertDescription', 'assertion fails')}"
    return None


def constraint_violation(spec: Mapping[str, Any], value: str) -> str | None:
    """Why CloudFormation would reject `value` for a parameter declared as `spec`, or None."""
    allowed = [str(v) for v in spec.get("AllowedValues", [])]
    if allowed and value not in allowed:
        return f"must be one of {', '.join(allowed)}"
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            return "must be a number"
        if "MinValue" in spec and number < float(spec["MinValue"]):
            return f"smaller than {spec['MinValue']}"
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            return f"larger than {spec['MaxValue']}"
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        return f"shorter than {spec['MinLength']} characters"
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        return f"longer than {spec['MaxLength']} characters"
    pattern = spec.get("AllowedPattern")
    if pattern is not None and not re.fullmatch(pattern, value):
        return spec.get("ConstraintDescription") or f"does not match {pattern}"
    return None


def evaluate_conditions(declared: Mapping[str, Any], scope: Mapping[str, Any]) -> dict[str, bool]:
    results: dict[str, bool] = {}

    def truth(node: Any) -> bool:
        if isinstance(node, dict) and len(node) == 1:
            ((fn, arg),) = node.items()
            if fn == "Condition":
                if arg not in results:
                    results[arg] = truth(declared[arg])
                return results[arg]
            if fn == "Fn::Equals":
                left, right = (resolve(a, scope, results) for a in arg)
                return str(left) == str(right)
            if fn == "Fn::Not":
                return not truth(arg[0])
            if fn == "Fn::And":
                return all(truth(a) for a in arg)
            if fn == "Fn::Or":
                return any(truth(a) for a in arg)
        raise ValueError(f"unsupported condition expression: {node!r}")

    for name in declared:
        if name not in results:
            results[name] = truth(declared[name])
    return results


_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")


def resolve(node: Any, scope: Mapping[str, Any], conditions: Mapping[str, bool]) -> Any:
    """Evaluate what is known before deployment; leave resource references symbolic."""
    if isinstance(node, list):
        items = (resolve(item, scope, conditions) for item in node)
        return [item for item in items if item is not NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        ((key, arg),) = node.items()
        if key == "Ref" and arg in scope:
            return scope[arg]
        if key == "Fn::If":
            name, when_true, when_false = arg
            return resolve(when_true if conditions[name] else when_false, scope, conditions)
        if key == "Fn::Sub":
            return _sub(arg, scope, conditions)
        if key == "Fn::Join":
            sep, parts = arg[0], resolve(arg[1], scope, conditions)
            if isinstance(parts, list) and all(isinstance(p, str) for p in parts):
                return sep.join(parts)
        if key == "Fn::Select":
            index, items = resolve(arg[0], scope, conditions), resolve(arg[1], scope, conditions)
            if isinstance(items, list) and isinstance(index, int | str):
                return items[int(index)]
        if key == "Fn::GetAZs":
            region = scope["AWS::Region"]
            return [f"{region}{letter}" for letter in "abc"]
    resolved = {k: resolve(v, scope, conditions) for k, v in node.items()}
    return {k: v for k, v in resolved.items() if v is not NO_VALUE}


def _sub(arg: Any, scope: Mapping[str, Any], conditions: Mapping[str, bool]) -> Any:
    text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
    local = {k: resolve(v, scope, conditions) for k, v in variables.items()}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        value = local.get(name, scope.get(name))
        return value if isinstance(value, str) else match.group(0)

    result = _SUB_VAR.sub(replace, text)
    return result if not _SUB_VAR.search(result) else {"Fn::Sub": result}


def references(node: Any) -> set[str]:
    """Logical ids a node points at through Ref, Fn::GetAtt or ${…} in Fn::Sub."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= references(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str) and not value.startswith("AWS::"):
                found.add(value)
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) else value.split(".")[0]
                found.add(target)
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                found |= {m.split(".")[0] for m in _SUB_VAR.findall(text) if "::" not in m}
                if not isinstance(value, str):
                    found |= references(value[1])
            else:
                found |= references(value)
    return found
