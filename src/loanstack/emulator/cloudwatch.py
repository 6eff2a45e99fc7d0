"""CloudWatch alarms, on moto's CloudWatch backend."""

from __future__ import annotations

from typing import Any

from moto.cloudwatch.models import cloudwatch_backends

from loanstack.emulator.base import Extension, tags


class Alarm(Extension):
    TYPE = "AWS::CloudWatch::Alarm"
    NAME_PROPERTY = "AlarmName"
    ATTRIBUTES = ("Arn",)

    @classmethod
    def create(
        cls, name: str, props: dict[str, Any], account_id: str, region: str, **request: Any
    ) -> Extension:
        backend: Any = cloudwatch_backends[account_id][region]
        alarm = backend.put_metric_alarm(
            name=name,
            namespace=props.get("Namespace"),
            metric_name=props.get("MetricName"),
            comparison_operator=props["ComparisonOperator"],
            evaluation_periods=int(props["EvaluationPeriods"]),
            period=int(props.get("Period", 60)),
            threshold=float(props["Threshold"]),
            statistic=props.get("Statistic"),
            description=props.get("AlarmDescription"),
            dimensions=list(props.get("Dimensions") or []),
            alarm_actions=list(props.get("AlarmActions") or []),
            ok_actions=list(props.get("OKActions") or []),
            insufficient_data_actions=list(props.get("InsufficientDataActions") or []),
            datapoints_to_alarm=props.get("DatapointsToAlarm"),
            unit=props.get("Unit"),
            actions_enabled=bool(props.get("ActionsEnabled", True)),
            treat_missing_data=props.get("TreatMissingData"),
            tags=tags(props),
        )
        return cls(name, account_id, region, Arn=alarm.alarm_arn)

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        cloudwatch_backends[self.account_id][self.region].delete_alarms([self.physical_id])
