"""The CloudTrail trail, on moto's CloudTrail backend.

A logging trail delivers: every API call the emulator answers while a trail logs writes one
log object into that trail's bucket, written when the call arrives (as CloudTrail records it),
so a teardown that empties the bucket and then deletes the stack meets the same race as on AWS
(the DeleteStack call itself lands in the bucket before CloudFormation reaches it).
"""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

from moto.cloudtrail.models import cloudtrail_backends

from loanstack.emulator import fence
from loanstack.emulator.base import Extension, tags


class Trail(Extension):
    TYPE = "AWS::CloudTrail::Trail"
    NAME_PROPERTY = "TrailName"
    ATTRIBUTES = ("Arn", "SnsTopicArn")

    @classmethod
    def create(
        cls, name: str, props: dict[str, Any], account_id: str, region: str, **request: Any
    ) -> Extension:
        backend: Any = cloudtrail_backends[account_id][region]
        trail = backend.create_trail(
            name=name,
            bucket_name=props["S3BucketName"],
            s3_key_prefix=props.get("S3KeyPrefix"),
            sns_topic_name=props.get("SnsTopicName"),
            is_global=bool(props.get("IncludeGlobalServiceEvents", True)),
            is_multi_region=bool(props.get("IsMultiRegionTrail")),
            log_validation=bool(props.get("EnableLogFileValidation")),
            is_org_trail=bool(props.get("IsOrganizationTrail")),
            cw_log_group_arn=props.get("CloudWatchLogsLogGroupArn"),
            cw_role_arn=props.get("CloudWatchLogsRoleArn"),
            kms_key_id=props.get("KMSKeyId"),
            tags_list=tags(props),
        )
        trail.put_event_selectors(
            props.get("EventSelectors") or [], props.get("AdvancedEventSelectors") or []
        )
        if props.get("IsLogging"):
            trail.start_logging()
        return cls(name, account_id, region, Arn=trail.arn, SnsTopicArn=trail.topic_arn)

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        cloudtrail_backends[self.account_id][self.region].delete_trail(self.physical_id)


def call_action(self: Any) -> Any:
    """Record every API call into the buckets of the account's logging trails, then answer it."""
    from moto.core.responses import BaseResponse

    deliver(self.current_account, f"{self.service_name}:{self._get_action()}")
    return fence.original(BaseResponse, "call_action")(self)


def deliver(account_id: str, event_name: str) -> int:
    """One log object per logging trail of the account; how many were written."""
    from moto.s3.exceptions import MissingBucket
    from moto.s3.models import s3_backends

    written = 0
    now = datetime.datetime.now(datetime.UTC)
    for region, backend in list(cloudtrail_backends[account_id].items()):
        for trail in list(backend.trails.values()):
            if not trail.status.is_logging:
                continue
            prefix = f"{trail.s3_key_prefix}/" if trail.s3_key_prefix else ""
            key = (
                f"{prefix}AWSLogs/{account_id}/CloudTrail/{region}/{now:%Y/%m/%d}/"
                f"{account_id}_CloudTrail_{region}_{now:%Y%m%dT%H%MZ}_{uuid.uuid4().hex}.json"
            )
            body = json.dumps(
                {"Records": [{"eventName": event_name, "eventTime": now.isoformat()}]}
            )
            try:
                s3_backends[account_id]["aws"].put_object(trail.bucket_name, key, body.encode())
            except MissingBucket:  # the bucket is gone: CloudTrail's delivery fails too
                continue
            written += 1
    return written
