"""Rotate the Aurora master password held in Secrets Manager, without a database driver (D2).

Secrets Manager calls this function four times per rotation with the same ClientRequestToken:
createSecret, setSecret, testSecret, finishSecret. Each step checks version staging first and
is idempotent, so Secrets Manager may retry any of them. setSecret changes the password with
rds:ModifyDBCluster (ApplyImmediately); testSecret waits until the cluster reports the change
applied; finishSecret moves AWSCURRENT. Every read names its VersionStage explicitly.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import boto3
from botocore.exceptions import ClientError

logger = logging.getLogger()  # Lambda's JSON log format and ApplicationLogLevel apply to it

CURRENT, PENDING = "AWSCURRENT", "AWSPENDING"
DEFAULT_EXCLUDE = " \"'`@/\\$&;|<>(){}[]*?!#%^~,:="


def secrets_client() -> Any:
    return boto3.client("secretsmanager")


def rds_client() -> Any:
    return boto3.client("rds")


def handler(event: dict[str, Any], context: Any) -> None:
    arn, token, step = event["SecretId"], event["ClientRequestToken"], event["Step"]
    steps = {
        "createSecret": create_secret,
        "setSecret": set_secret,
        "testSecret": test_secret,
        "finishSecret": finish_secret,
    }
    if step not in steps:
        raise ValueError(f"unknown rotation step {step!r}")
    secrets = secrets_client()
    metadata = secrets.describe_secret(SecretId=arn)
    if not metadata.get("RotationEnabled"):
        raise ValueError(f"secret {arn} is not enabled for rotation")
    stages = metadata.get("VersionIdsToStages", {})
    if token not in stages:
        raise ValueError(f"secret version {token} has no stage for rotation of secret {arn}")
    if CURRENT in stages[token]:
        logger.info("%s: version %s already AWSCURRENT for %s, nothing to do", step, token, arn)
        return
    if PENDING not in stages[token]:
        raise ValueError(f"secret version {token} is not AWSPENDING for rotation of secret {arn}")
    try:
        steps[step](secrets, arn, token)
    except Exception:
        logger.exception("rotation step %s failed for secret %s version %s", step, arn, token)
        raise


def read(secrets: Any, arn: str, stage: str, token: str | None = None) -> dict[str, Any]:
    """The secret's JSON at `stage` (and `token`); the stage is always explicit."""
    args = {"SecretId": arn, "VersionStage": stage}
    if token:
        args["VersionId"] = token
    return json.loads(secrets.get_secret_value(**args)["SecretString"])


def create_secret(secrets: Any, arn: str, token: str) -> None:
    """Make the pending version once: a new password, everything else copied from current."""
    current = read(secrets, arn, CURRENT)
    try:
        read(secrets, arn, PENDING, token)
        logger.info("createSecret: pending version %s of %s already exists", token, arn)
        return
    except ClientError as err:
        if err.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
    password = secrets.get_random_password(
        PasswordLength=int(os.environ.get("PASSWORD_LENGTH", "32")),
        ExcludeCharacters=os.environ.get("EXCLUDE_CHARACTERS", DEFAULT_EXCLUDE),
    )["RandomPassword"]
    secrets.put_secret_value(
        SecretId=arn,
        ClientRequestToken=token,
        SecretString=json.dumps({**current, "password": password}),
        VersionStages=[PENDING],
    )
    logger.info("createSecret: created pending version %s of %s", token, arn)


def cluster_of(secret: dict[str, Any], arn: str) -> str:
    cluster = secret.get("dbClusterIdentifier")
    if not cluster:
        raise ValueError(f"secret {arn} has no dbClusterIdentifier: is it attached to the cluster?")
    return str(cluster)


def set_secret(secrets: Any, arn: str, token: str) -> None:
    """Give the cluster the pending password; repeating it sets the same password again."""
    current = read(secrets, arn, CURRENT)
    pending = read(secrets, arn, PENDING, token)
    cluster = cluster_of(pending, arn)
    if cluster != cluster_of(current, arn) or pending.get("username") != current.get("username"):
        raise ValueError(f"pending version {token} of {arn} names another cluster or user")
    rds = rds_client()
    wait_until_settled(rds, cluster, "setSecret")
    rds.modify_db_cluster(
        DBClusterIdentifier=cluster, MasterUserPassword=pending["password"], ApplyImmediately=True
    )
    logger.info("setSecret: master password change requested on cluster %s", cluster)


def test_secret(secrets: Any, arn: str, token: str) -> None:
    """The pending password is in force once the cluster is available with nothing pending."""
    cluster = cluster_of(read(secrets, arn, PENDING, token), arn)
    wait_until_settled(rds_client(), cluster, "testSecret")
    logger.info("testSecret: cluster %s reports the password change applied", cluster)


def wait_until_settled(rds: Any, cluster: str, step: str) -> None:
    """Poll with backoff until the cluster is available with no pending password, twice in a row.

    Two consecutive observations guard against reading the state from before ModifyDBCluster.
    """
    deadline = time.monotonic() + float(os.environ.get("MAX_WAIT_SECONDS", "240"))
    delay, streak, status = float(os.environ.get("FIRST_POLL_SECONDS", "2")), 0, "unknown"
    while True:
        described = rds.describe_db_clusters(DBClusterIdentifier=cluster)["DBClusters"][0]
        status = described.get("Status", "unknown")
        pending = described.get("PendingModifiedValues", {}).get("MasterUserPassword")
        streak = streak + 1 if status == "available" and not pending else 0
        if streak >= 2:
            return
        if time.monotonic() + delay > deadline:
            raise TimeoutError(
                f"{step}: cluster {cluster} still {status!r} (password pending: {bool(pending)})"
            )
        time.sleep(delay)
        delay = min(delay * 2, 30.0)


def finish_secret(secrets: Any, arn: str, token: str) -> None:
    """Move AWSCURRENT to the new version; Secrets Manager moves AWSPREVIOUS with it."""
    stages = secrets.describe_secret(SecretId=arn)["VersionIdsToStages"]
    current = next((v for v, s in stages.items() if CURRENT in s), None)
    if current == token:
        logger.info("finishSecret: version %s of %s is already AWSCURRENT", token, arn)
        return
    secrets.update_secret_version_stage(
        SecretId=arn, VersionStage=CURRENT, MoveToVersionId=token, RemoveFromVersionId=current
    )
    logger.info("finishSecret: version %s of %s is now AWSCURRENT (was %s)", token, arn, current)
