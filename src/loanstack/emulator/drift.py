"""Drift detection, which moto lacks: DetectStackDrift, DescribeStackDriftDetectionStatus and
DescribeStackResourceDrifts, for the resource types a test changes out of band (a Lambda
function's settings, a security group's ingress rules). Other types are NOT_CHECKED, as types
CloudFormation cannot check are. Detection runs when asked and is complete at once.
https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DetectStackDrift.html
https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_StackResourceDrift.html
https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_PropertyDifference.html
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from moto.awslambda.models import lambda_backends
from moto.cloudformation import parsing
from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends

from loanstack.emulator.state import STATE

# what Lambda applies when not given (constants: read-only mappings, no emulator state)
LAMBDA_DEFAULTS = MappingProxyType({"MemorySize": 128, "Timeout": 3})


def lambda_actual(stack: Any, physical: str, expected: dict[str, Any]) -> dict[str, Any]:
    backend: Any = lambda_backends[stack.account_id][stack.region_name]
    fn = backend.get_function(physical)
    live = {"MemorySize": fn.memory_size, "Timeout": fn.timeout, "Handler": fn.handler,
            "Runtime": fn.run_time}  # fmt: skip
    return {k: v for k, v in live.items() if k in expected or k in LAMBDA_DEFAULTS}


def lambda_expected(properties: dict[str, Any]) -> dict[str, Any]:
    wanted = {k: properties[k] for k in ("MemorySize", "Timeout", "Handler", "Runtime")
              if k in properties}  # fmt: skip
    return {**LAMBDA_DEFAULTS, **{k: to_int(v) for k, v in wanted.items()}}


def group_actual(stack: Any, physical: str, expected: dict[str, Any]) -> dict[str, Any]:
    backend: Any = ec2_backends[stack.account_id][stack.region_name]
    group = backend.get_security_group_from_id(physical)
    if group is None:
        raise LookupError(f"no security group {physical}")
    rules = []
    for rule in group.ingress_rules:
        source = rule.ip_range.get("CidrIp") or rule.source_group.get("GroupId", "")
        rules.append(rule_key(rule.ip_protocol, rule.from_port, rule.to_port, source))
    return {"SecurityGroupIngress": sorted(rules)}


def group_expected(properties: dict[str, Any]) -> dict[str, Any]:
    rules = [
        rule_key(r.get("IpProtocol"), r.get("FromPort"), r.get("ToPort"),
                 r.get("CidrIp") or r.get("SourceSecurityGroupId", ""))
        for r in properties.get("SecurityGroupIngress", [])
    ]  # fmt: skip
    return {"SecurityGroupIngress": sorted(rules)}


def rule_key(protocol: Any, low: Any, high: Any, source: Any) -> str:
    """One ingress rule as comparable text: protocol, port range, source."""
    return f"{protocol} {to_int(low)}-{to_int(high)} from {source}"


def to_int(value: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


# type -> (expected from the template's resolved properties, actual from the live resource)
CHECKERS: Mapping[str, tuple[Callable[..., dict[str, Any]], Callable[..., dict[str, Any]]]] = (
    MappingProxyType(
        {
            "AWS::Lambda::Function": (lambda_expected, lambda_actual),
            "AWS::EC2::SecurityGroup": (group_expected, group_actual),
        }
    )
)


def differences(expected: dict[str, Any], actual: dict[str, Any]) -> list[dict[str, str]]:
    found = []
    for key in sorted(set(expected) | set(actual)):
        if expected.get(key) == actual.get(key):
            continue
        kind = "ADD" if key not in expected else ("REMOVE" if key not in actual else "NOT_EQUAL")
        found.append({"PropertyPath": f"/{key}", "ExpectedValue": json.dumps(expected.get(key)),
                      "ActualValue": json.dumps(actual.get(key)), "DifferenceType": kind})  # fmt: skip
    return found


def resource_drifts(stack: Any) -> list[dict[str, Any]]:
    """One StackResourceDrift per resource of the stack, checked now. Expected values are
    the template's, resolved against the stack's own resources (Ref, GetAtt, Sub)."""
    rm = stack.resource_map
    now = datetime.now(UTC)
    drifts = []
    for logical_id, parsed in rm._parsed_resources.items():
        if parsed is None or isinstance(parsed, str) or logical_id not in rm._resource_json_map:
            continue
        resource_json = rm._resource_json_map[logical_id]
        rtype = resource_json["Type"]
        physical = str(getattr(parsed, "physical_resource_id", "") or "")
        drift: dict[str, Any] = {"StackId": stack.stack_id, "LogicalResourceId": logical_id,
                                 "PhysicalResourceId": physical, "ResourceType": rtype,
                                 "Timestamp": now, "StackResourceDriftStatus": "NOT_CHECKED"}  # fmt: skip
        if rtype in CHECKERS:
            to_expected, to_actual = CHECKERS[rtype]
            expected = to_expected(parsing.clean_json(resource_json.get("Properties", {}), rm))
            try:
                actual = to_actual(stack, physical, expected)
            except Exception:  # gone: deleted out of band
                drift["StackResourceDriftStatus"] = "DELETED"
            else:
                diff = differences(expected, actual)
                drift |= {
                    "ExpectedProperties": json.dumps(expected, sort_keys=True),
                    "ActualProperties": json.dumps(actual, sort_keys=True),
                    "PropertyDifferences": diff,
                    "StackResourceDriftStatus": "MODIFIED" if diff else "IN_SYNC",
                }
        drifts.append(drift)
    return drifts


def detect_stack_drift(self: Any) -> Any:
    stack = self.cloudformation_backend.get_stack(self._get_param("StackName"))
    detection_id = str(uuid.uuid4())
    drifts = resource_drifts(stack)
    drifted = sum(d["StackResourceDriftStatus"] in ("MODIFIED", "DELETED") for d in drifts)
    STATE.drift_detections[detection_id] = {
        "StackId": stack.stack_id,
        "StackDriftDetectionId": detection_id,
        "StackDriftStatus": "DRIFTED" if drifted else "IN_SYNC",
        "DetectionStatus": "DETECTION_COMPLETE",
        "DriftedStackResourceCount": drifted,
        "Timestamp": datetime.now(UTC),
        "drifts": drifts,
    }
    return ActionResult({"StackDriftDetectionId": detection_id})


def describe_stack_drift_detection_status(self: Any) -> Any:
    found = STATE.drift_detections.get(self._get_param("StackDriftDetectionId"))
    if found is None:
        from moto.cloudformation.exceptions import ValidationError

        raise ValidationError(message="Drift detection id not found")
    return ActionResult({k: v for k, v in found.items() if k != "drifts"})


def describe_stack_resource_drifts(self: Any) -> Any:
    """The drifts of the stack's latest detection, filtered by StackResourceDriftStatusFilters."""
    stack = self.cloudformation_backend.get_stack(self._get_param("StackName"))
    latest = [d for d in STATE.drift_detections.values() if d["StackId"] == stack.stack_id]
    drifts = max(latest, key=lambda d: d["Timestamp"])["drifts"] if latest else []
    wanted = self._get_param("StackResourceDriftStatusFilters") or []
    return ActionResult(
        {
            "StackResourceDrifts": [
                d for d in drifts if not wanted or d["StackResourceDriftStatus"] in wanted
            ]
        }
    )
