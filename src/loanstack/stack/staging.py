"""Templates above CloudFormation's inline limit go through S3: the tool's own staging bucket."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from botocore.exceptions import ClientError

from loanstack.aws.target import Target, identity
from loanstack.errors import DeployError
from loanstack.names import url_suffix

STAGED_TEMPLATE_DAYS = 30  # the staging bucket's lifecycle expires templates after this


def staging_bucket_name(account: str, region: str) -> str:
    return f"loanstack-templates-{account}-{region}"


def stage_template(target: Target, text: str, stack: str, bucket: str | None = None) -> str:
    """Upload the template (creating the managed bucket on first use); its TemplateURL."""
    account, partition = identity(target)
    if bucket is None:
        bucket = staging_bucket_name(account, target.region)
        ensure_staging_bucket(target, bucket, account, partition)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    key = f"{stack}/TapStack-{digest}.json"
    try:
        target.client("s3").put_object(
            Bucket=bucket, Key=key, Body=text.encode(), ExpectedBucketOwner=account
        )
    except ClientError as exc:
        raise DeployError(
            f"cannot stage the template in s3://{bucket}: {exc.response['Error']['Message']} "
            "(pass --template-bucket with a bucket of this account you may write to)"
        ) from exc
    return f"https://{bucket}.s3.{target.region}.{url_suffix(partition)}/{key}"


def ensure_staging_bucket(target: Target, bucket: str, account: str, partition: str) -> None:
    """The tool's own bucket: private, TLS only, encrypted, versioned, templates expire. The
    settings are applied on every run (each call is idempotent), so a first run cut short or a
    setting changed by hand is put right the next time."""
    s3 = target.client("s3")
    try:
        s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=account)
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        if code in ("403", "AccessDenied", "Forbidden", "301", "400", "PermanentRedirect"):
            raise DeployError(
                f"bucket {bucket} exists but is not this account's in {target.region}: pass "
                "--template-bucket with a bucket of yours"
            ) from exc
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise
        create_bucket(s3, bucket, target.region)
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "expire-staged-templates",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "Expiration": {"Days": STAGED_TEMPLATE_DAYS},
                    "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                }
            ]
        },
    )
    arn = f"arn:{partition}:s3:::{bucket}"
    s3.put_bucket_policy(
        Bucket=bucket,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "DenyInsecureTransport",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [arn, f"{arn}/*"],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ],
            }
        ),
    )


def create_bucket(s3: Any, bucket: str, region: str) -> None:
    created: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        created["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**created)
    except ClientError as exc:  # another deploy of this account created it a moment ago
        if exc.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise
