"""`loanstack rotate`: recover an interrupted rotation, rotate a database secret now, prove it.

Two secrets (docs/operations.md, "Rotation"): `master` (the cluster's master user, single-user
rotation through the RDS API) and `app` (the validation function's own user, alternating users
`loan_app` / `loan_app_clone` through the Data API as the master). `both` rotates the master first:
the application's rotation logs in as the master, so it then uses the master's new password.
"""

from __future__ import annotations

import json
import time
from typing import Any

from botocore.exceptions import ClientError
from rich.console import Console

from loanstack import functions
from loanstack.aws.outputs import StackRecord, read_stack
from loanstack.aws.target import Target, again
from loanstack.errors import DeployError
from loanstack.names import APP_SECRET_ARN, MASTER_SECRET_ARN

# The rotation function's custom staging label: setSecret applied this version to the cluster.
APPLIED: str = functions.contract(functions.ROTATION).APPLIED
# Secrets Manager retries a failed rotation on its own; a pending version younger than two of
# the rotation function's timeouts (900 s) may belong to a rotation still running.
ROTATION_IN_FLIGHT_SECONDS = 1800
RESUME_SECONDS = 90  # a paused Serverless v2 cluster takes ~15 s to resume, more after long idle
# `--secret`: which output names each secret's ARN
SECRETS = {"master": MASTER_SECRET_ARN, "app": APP_SECRET_ARN}
CHOICES = ("master", "app", "both")


def rotate_secrets(
    target: Target, console: Console, which: str, timeout: float = 600
) -> dict[str, dict[str, Any]]:
    """`--secret master|app|both`: each one recovered, rotated and proved, the master first."""
    names = ["master", "app"] if which == "both" else [which]
    return {name: rotate(target, console, timeout, which=name) for name in names}


def rotate(
    target: Target, console: Console, timeout: float = 600, which: str = "master"
) -> dict[str, Any]:
    """Recover an interrupted rotation first (Secrets Manager refuses a new one while it is
    left over), then rotate the database secret (`master` or `app`) now and wait until the new
    version is AWSCURRENT; then prove the database takes it (a Data API call authenticates with
    it)."""
    stack = read_stack(target.outputs_file)
    key = SECRETS[which]
    secret = stack.output(key)
    sm = target.client("secretsmanager")
    recover_rotation(target, console, stack, timeout, key)
    try:
        token = sm.rotate_secret(SecretId=secret)["VersionId"]
    except ClientError as exc:
        raise DeployError(f"rotation refused: {exc.response['Error']['Message']}") from exc
    deadline = time.monotonic() + timeout
    while True:
        stages = sm.describe_secret(SecretId=secret).get("VersionIdsToStages", {})
        if "AWSCURRENT" in stages.get(token, []):
            break
        if time.monotonic() > deadline:
            raise DeployError(
                f"rotation {token} not finished after {timeout:.0f} s: read the rotation function's "
                f"log group, then run `{again(target, 'rotate')}` to finish or clear it"
            )
        time.sleep(target.poll_seconds)
    previous = next((v for v, s in stages.items() if "AWSPREVIOUS" in s), None)
    if not database_takes_awscurrent(target, stack, key):
        raise DeployError(
            f"rotated, but the Data API is refused with AWSCURRENT: run `{again(target, 'rotate')}`"
        )
    console.print(
        f"rotated: AWSCURRENT is version {token}, AWSPREVIOUS {previous}; the Data API opens the database with it"
    )
    return {"current": token, "previous": previous}


def recover_rotation(
    target: Target,
    console: Console,
    stack: StackRecord,
    timeout: float,
    key: str = MASTER_SECRET_ARN,
) -> None:
    """An AWSPENDING on a version other than AWSCURRENT is an interrupted rotation: finish it
    with its own token when setSecret had applied it, else put the database back on AWSCURRENT's
    password and clear it, both done by the rotation function (its steps, and its own
    `recoverSecret`), so this caller needs no RDS permission beyond the Data API (SPEC D2).
    For the application's secret (alternating users) AWSCURRENT's user was never changed:
    clearing only takes AWSPENDING away."""
    secret = stack.output(key)
    sm = target.client("secretsmanager")
    stages = sm.describe_secret(SecretId=secret).get("VersionIdsToStages", {})
    left = [v for v, s in stages.items() if "AWSPENDING" in s and "AWSCURRENT" not in s]
    if not left:
        console.print("no interrupted rotation found")
        return
    token = left[0]
    age = pending_age(sm, secret, token)
    if age is not None and age < ROTATION_IN_FLIGHT_SECONDS:
        raise DeployError(
            f"a rotation started {age:.0f} s ago (version {token}) may still be running, or "
            f"Secrets Manager may be retrying it: wait for it, then run `{again(target, 'rotate')}` "
            f"(a pending version older than {ROTATION_IN_FLIGHT_SECONDS} s counts as interrupted)"
        )
    if APPLIED in stages[token]:
        console.print(
            f"found an interrupted rotation: version {token} is AWSPENDING and setSecret had applied it"
        )
        function = stack.rotation_function_arn
        for step in ("setSecret", "testSecret", "finishSecret"):
            invoke_rotation_step(target, function, secret, token, step)
        console.print(f"finished it with the same token: version {token} is AWSCURRENT")
        return
    console.print(
        f"found an interrupted rotation: version {token} is AWSPENDING, setSecret had not applied it"
    )
    function = stack.rotation_function_arn
    invoke_rotation_step(target, function, secret, token, "recoverSecret")
    cluster = stack.cluster_arn.rpartition(":")[2]
    if key == MASTER_SECRET_ARN:
        console.print(
            f"the rotation function's recoverSecret put cluster {cluster} back on AWSCURRENT's "
            "password"
        )
    console.print(f"cleared it: AWSPENDING removed from version {token}")


def pending_age(sm: Any, secret: str, token: str) -> float | None:
    """Seconds since the pending version was created (None when Secrets Manager does not say)."""
    request: dict[str, Any] = {"SecretId": secret, "IncludeDeprecated": True}
    while True:
        page = sm.list_secret_version_ids(**request)
        for version in page.get("Versions", []):
            created = version.get("CreatedDate")
            if version.get("VersionId") == token and created is not None:
                age: float = time.time() - created.timestamp()
                return age
        if not page.get("NextToken"):
            return None
        request["NextToken"] = page["NextToken"]


def invoke_rotation_step(target: Target, function: str, secret: str, token: str, step: str) -> None:
    """One step, synchronously: setSecret may wait up to the function's 900 s, and a retried
    Invoke would run the step twice, so the client waits that long and never retries."""
    from botocore.config import Config

    lam = target.session.client(
        "lambda",
        endpoint_url=target.endpoint_url,
        config=Config(read_timeout=910, retries={"max_attempts": 1, "mode": "standard"}),
    )
    event = {"Step": step, "SecretId": secret, "ClientRequestToken": token}
    reply = lam.invoke(FunctionName=function, Payload=json.dumps(event).encode())
    if reply.get("FunctionError"):
        body = json.loads(reply["Payload"].read() or b"null")
        message = body.get("errorMessage") if isinstance(body, dict) else body
        raise DeployError(f"rotation function failed in {step}: {message}")


def database_takes_awscurrent(
    target: Target, stack: StackRecord, key: str = MASTER_SECRET_ARN
) -> bool:
    """A Data API call authenticates with the secret's AWSCURRENT: MySQL's 1045 means it no
    longer matches the database's password."""
    deadline = time.monotonic() + RESUME_SECONDS
    while True:
        try:
            target.client("rds-data").execute_statement(
                resourceArn=stack.cluster_arn,
                secretArn=stack.output(key),
                database=functions.contract(functions.VALIDATION).DATABASE_NAME,
                sql="SELECT 1",
            )
            return True
        except ClientError as exc:
            error = exc.response["Error"]
            if "Access denied for user" in str(error.get("Message", "")):
                return False
            if error.get("Code") == "DatabaseResumingException" and time.monotonic() < deadline:
                time.sleep(target.poll_seconds)  # a paused dev cluster (0 ACU) is waking up
                continue
            raise DeployError(f"the Data API failed: {error.get('Message')}") from exc
