"""`loanstack drift`: whether the deployed resources still match the stack (issue 21 item 9).

CloudFormation's drift detection: DetectStackDrift starts it, DescribeStackDriftDetectionStatus
says when it is done, DescribeStackResourceDrifts gives each checked resource's expected and
actual properties and their differences. Types CloudFormation cannot check are NOT_CHECKED.
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/detect-drift-stack.html
https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeStackResourceDrifts.html
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from loanstack import render as layout
from loanstack.aws.target import Target
from loanstack.errors import DeployError, Interrupted

CHECKED = ("MODIFIED", "DELETED", "IN_SYNC")  # NOT_CHECKED resources are not listed


@dataclass
class DriftReport:
    stack: str
    status: str  # DRIFTED or IN_SYNC
    resources: list[dict[str, Any]]

    @property
    def drifted(self) -> bool:
        return self.status == "DRIFTED"

    def as_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "stackDriftStatus": self.status,
            "drifted": self.drifted,
            "resources": [record(r) for r in self.resources],
        }


def detect(target: Target, name: str) -> DriftReport:
    """Run drift detection on the stack and wait for it (Ctrl-C stops waiting, not it)."""
    cfn = target.client("cloudformation")
    detection = cfn.detect_stack_drift(StackName=name)["StackDriftDetectionId"]
    try:
        while True:
            status = cfn.describe_stack_drift_detection_status(StackDriftDetectionId=detection)
            if status["DetectionStatus"] != "DETECTION_IN_PROGRESS":
                break
            time.sleep(target.poll_seconds)
    except KeyboardInterrupt:
        raise Interrupted(f"stopped waiting; drift detection {detection} carries on") from None
    if status["DetectionStatus"] == "DETECTION_FAILED":
        raise DeployError(
            f"drift detection of {name} failed: {status.get('DetectionStatusReason', '')}"
        )
    drifts: list[dict[str, Any]] = []
    token: dict[str, str] = {}
    while True:  # botocore has no paginator for it: NextToken by hand
        page = cfn.describe_stack_resource_drifts(
            StackName=name, StackResourceDriftStatusFilters=list(CHECKED), **token
        )
        drifts += page["StackResourceDrifts"]
        if not page.get("NextToken"):
            break
        token = {"NextToken": page["NextToken"]}
    return DriftReport(name, status.get("StackDriftStatus", "UNKNOWN"), drifts)


def record(drift: dict[str, Any]) -> dict[str, Any]:
    """One resource's drift, camelCase for `--output json`."""
    return {
        "logicalId": drift["LogicalResourceId"],
        "physicalId": drift.get("PhysicalResourceId", ""),
        "type": drift["ResourceType"],
        "status": drift["StackResourceDriftStatus"],
        "differences": [
            {
                "path": d["PropertyPath"],
                "expected": d.get("ExpectedValue"),
                "actual": d.get("ActualValue"),
                "type": d["DifferenceType"],
            }
            for d in drift.get("PropertyDifferences", [])
        ],
    }


def show(console: Console, report: DriftReport) -> None:
    """Printed like the change set: one row per resource, drifted first."""
    order = {"DELETED": 0, "MODIFIED": 1, "IN_SYNC": 2}
    rows = []
    for r in sorted(report.resources, key=lambda r: order.get(r["StackResourceDriftStatus"], 3)):
        differences = "; ".join(
            f"{d['PropertyPath']}: {d.get('ExpectedValue')} -> {d.get('ActualValue')}"
            for d in r.get("PropertyDifferences", [])
        )
        rows.append(
            (r["StackResourceDriftStatus"], r["LogicalResourceId"], r["ResourceType"], differences)
        )
    layout.records(
        console,
        f"{report.stack}: {report.status} ({len(rows)} resources checked)",
        ("drift", "resource", "type", "expected -> actual"),
        rows,
        prose="expected -> actual",
    )
