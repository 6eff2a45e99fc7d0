"""CloudWatch Logs metric filters and RDS event subscriptions, on moto's backends.

moto's CloudFormation models neither (a template using them would fail the deployment, as an
unknown type must). Each refuses what its service refuses at creation: a filter on a log group
that does not exist (ResourceNotFoundException), a subscription to a topic or for a source
that does not exist (SNSTopicArnNotFound, SourceNotFound).
https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutMetricFilter.html
https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateEventSubscription.html
"""

from __future__ import annotations

from typing import Any

from moto.logs.models import logs_backends
from moto.rds.models import rds_backends
from moto.sns.models import sns_backends

from loanstack.emulator.base import Extension, tags


class MetricFilter(Extension):
    TYPE = "AWS::Logs::MetricFilter"
    NAME_PROPERTY = "FilterName"

    @classmethod
    def create(
        cls, name: str, props: dict[str, Any], account_id: str, region: str, **request: Any
    ) -> Extension:
        backend: Any = logs_backends[account_id][region]
        group = props["LogGroupName"]
        if group not in backend.groups:
            raise RuntimeError(f"ResourceNotFoundException: log group {group} does not exist")
        transformations = [
            {
                "metricName": t["MetricName"],
                "metricNamespace": t["MetricNamespace"],
                "metricValue": str(t["MetricValue"]),
                **({"defaultValue": float(t["DefaultValue"])} if "DefaultValue" in t else {}),
            }
            for t in props["MetricTransformations"]
        ]
        backend.put_metric_filter(name, props.get("FilterPattern", ""), group, transformations)
        return cls(name, account_id, region, LogGroupName=group)

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        logs_backends[self.account_id][self.region].delete_metric_filter(
            self.physical_id, self.attributes["LogGroupName"]
        )


SOURCE_KINDS = {"db-cluster": "clusters", "db-instance": "databases"}


class EventSubscription(Extension):
    TYPE = "AWS::RDS::EventSubscription"
    NAME_PROPERTY = "SubscriptionName"

    @classmethod
    def create(
        cls, name: str, props: dict[str, Any], account_id: str, region: str, **request: Any
    ) -> Extension:
        topic = props["SnsTopicArn"]
        if topic not in sns_backends[account_id][region].topics:
            raise RuntimeError(f"SNSTopicArnNotFound: {topic}")
        rds: Any = rds_backends[account_id][region]
        kind = props.get("SourceType")
        known = getattr(rds, SOURCE_KINDS.get(str(kind), ""), None)
        for source in props.get("SourceIds") or []:
            if known is not None and source not in known:
                raise RuntimeError(f"SourceNotFound: {kind} {source} does not exist")
        rds.create_event_subscription(
            {
                "subscription_name": name,
                "sns_topic_arn": topic,
                "source_type": kind,
                "event_categories": list(props.get("EventCategories") or []),
                "source_ids": list(props.get("SourceIds") or []),
                "enabled": bool(props.get("Enabled", True)),
                "tags": tags(props),
            }
        )
        return cls(name, account_id, region)

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        rds_backends[self.account_id][self.region].delete_event_subscription(self.physical_id)
