"""The stack's batch path as `loanstack migrate` reaches it: the documents bucket (chunks in,
reports out) and the validation function's dead-letter queue. Only AWS calls live here; what
they carry (chunks, reports) belongs to migrate.py and migrate_report.py.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from boto3.s3.transfer import TransferConfig

from loanstack.aws.outputs import StackRecord
from loanstack.aws.target import Target

MIB = 1 << 20


def bounded_transfer() -> TransferConfig:
    """S3 transfers of a large file (the problem list of an all-bad 1,000,000-row export is
    ~170 MiB) within a fixed amount of memory: boto3's defaults allow up to 10 parts of 8 MiB in
    memory per upload and a 100-deep write queue per download. Two parts in flight and a short
    queue cost 16 MiB or so, whatever the file's size (docs/benchmarks.md, "Memory"). https://boto3.amazonaws.com/v1/documentation/api/latest/reference/customizations/s3.html#boto3.s3.transfer.TransferConfig"""
    config = TransferConfig(
        multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=2, max_io_queue=8
    )
    # s3transfer's own limits, not among TransferConfig's arguments but read from it
    config.max_in_memory_upload_chunks = 2
    config.max_in_memory_download_chunks = 2
    return config


@dataclass
class BatchPath:
    """The stack's batch path as migrate uses it: the documents bucket (chunks in, reports out)
    and the validation function's dead-letter queue."""

    s3: Any
    sqs: Any
    bucket: str
    dead_letter_url: str


def stack_of(target: Target, stack: StackRecord) -> BatchPath:
    return BatchPath(
        s3=target.client("s3"),
        sqs=target.client("sqs"),
        bucket=stack.bucket,
        dead_letter_url=stack.dead_letter_queue_url,
    )


def existing(stack: BatchPath, prefix: str, start_after: str | None = None) -> dict[str, int]:
    """key -> size of every object under `prefix` (one entry per chunk or report: O(chunks)),
    or of those whose keys sort after `start_after` (S3 lists keys in UTF-8 binary order:
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html)."""
    found: dict[str, int] = {}
    after = {"StartAfter": start_after} if start_after else {}
    for page in stack.s3.get_paginator("list_objects_v2").paginate(
        Bucket=stack.bucket, Prefix=prefix, **after
    ):
        for obj in page.get("Contents", []):
            found[obj["Key"]] = int(obj["Size"])
    return found


def dead_letters(stack: BatchPath, prefix: str, delete: bool = False) -> dict[str, str]:
    """Keys under `prefix` whose S3 event sits in the dead-letter queue, each with the error
    Lambda gave it (the message attribute ErrorMessage:
    https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html).

    Messages are received with a short visibility timeout and, unless `delete`, made visible
    again at once: the queue stays as it was for the alarm and for whoever reads it next.
    """
    keys: dict[str, str] = {}
    handles: list[tuple[str, bool]] = []
    for _ in range(1000):  # the queue is small; this only bounds a runaway loop
        reply = stack.sqs.receive_message(
            QueueUrl=stack.dead_letter_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=30,
            MessageAttributeNames=["ErrorMessage"],
        )
        messages = reply.get("Messages", [])
        if not messages:
            break
        for message in messages:
            ours = [k for k in event_keys(message.get("Body", "")) if k.startswith(prefix)]
            error = message.get("MessageAttributes", {}).get("ErrorMessage", {})
            keys.update(dict.fromkeys(ours, str(error.get("StringValue", ""))))
            handles.append((message["ReceiptHandle"], bool(ours)))
    for handle, mine in handles:
        if delete and mine:
            stack.sqs.delete_message(QueueUrl=stack.dead_letter_url, ReceiptHandle=handle)
        else:
            stack.sqs.change_message_visibility(
                QueueUrl=stack.dead_letter_url, ReceiptHandle=handle, VisibilityTimeout=0
            )
    return keys


def event_keys(body: str) -> list[str]:
    """The object keys of an S3 event (a dead letter's body is the event Lambda received)."""
    try:
        records = json.loads(body).get("Records", [])
        return [unquote_plus(r["s3"]["object"]["key"]) for r in records]
    except (ValueError, AttributeError, KeyError, TypeError):
        return []


def retrigger(stack: BatchPath, key: str, kind: str) -> None:
    """A new ObjectCreated:Copy event for `key`: the object copied onto itself (S3 requires a
    change, hence REPLACE metadata; https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html)."""
    stack.s3.copy_object(
        Bucket=stack.bucket,
        Key=key,
        CopySource={"Bucket": stack.bucket, "Key": key},
        MetadataDirective="REPLACE",
        ContentType=content_type(kind),
        Metadata={"retried": str(int(time.time()))},
    )


def version_of(stack: BatchPath, key: str) -> str | None:
    """The object's current VersionId (None where the bucket is not versioned)."""
    found = stack.s3.head_object(Bucket=stack.bucket, Key=key).get("VersionId")
    return None if found in (None, "null") else str(found)


def read_object(stack: BatchPath, key: str) -> bytes:
    """A small object whole (one chunk's report: bounded by --chunk-rows)."""
    return bytes(stack.s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read())


def content_type(kind: str) -> str:
    return "text/csv" if kind == "csv" else "application/x-ndjson"
