"""Rotate the Aurora credentials held in Secrets Manager, without a database driver (D2).

Two strategies, chosen by the secret itself
(https://docs.aws.amazon.com/secretsmanager/latest/userguide/rotation-strategy.html):
- single user (the master secret): the master password changes through the RDS API, as below;
- alternating users (a secret that names its master secret in `masterarn`: the application's):
  as the master, through the Data API, the user AWSCURRENT does not name (`loan_app` <->
  `loan_app_clone`) gets a new password and the current user's grants, so AWSCURRENT's user is
  never touched and a caller never meets a password the database does not have.
The same function answers CloudFormation's custom resource `AppDatabaseSetup`: it creates the
application's table and first user, as the master, before the validation function exists.

Secrets Manager calls this function four times per rotation with the same ClientRequestToken:
createSecret, setSecret, testSecret, finishSecret. Each step checks version staging first and
is idempotent, so Secrets Manager may retry any of them.

The one outcome that must never happen is a database password that differs from AWSCURRENT
(SPEC D2). So: setSecret changes the password with rds:ModifyDBCluster (ApplyImmediately), waits
until the pending password really opens the writer (a TLS login, as AWS's own rotation functions
test it), and only then labels the pending version APPLIED; finishSecret promotes only a version
that carries that label; and any failure after the change was requested puts the database back
on AWSCURRENT's password before the step raises. Every wait is bounded by the time the
invocation has left (`context`), keeping ROLLBACK_RESERVE_SECONDS for the way back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import ssl
import struct
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import boto3
from botocore.exceptions import ClientError

logger = logging.getLogger()  # Lambda's JSON log format and ApplicationLogLevel apply to it

CURRENT, PENDING = "AWSCURRENT", "AWSPENDING"
# Custom staging label: setSecret saw this version's password open the database. Secrets Manager
# allows custom labels next to AWSPENDING (up to 20 per version):
# https://docs.aws.amazon.com/secretsmanager/latest/userguide/whats-in-a-secret.html
APPLIED = "APPLIED"
DEFAULT_EXCLUDE = " \"'`@/\\$&;|<>(){}[]*?!#%^~,:="


class LoginRefused(Exception):
    """The server answered the handshake with an error (wrong password, unknown user...)."""


def secrets_client() -> Any:
    return boto3.client("secretsmanager")


def rds_client() -> Any:
    return boto3.client("rds")


def rds_data_client() -> Any:
    return boto3.client("rds-data")


class Clock:
    """Deadlines from the invocation's remaining time: the forward work gets what is left after
    the rollback reserve, so a failure always has time to restore AWSCURRENT's password."""

    def __init__(self, context: Any) -> None:
        left = context.get_remaining_time_in_millis() / 1000.0
        reserve = min(float(os.environ.get("ROLLBACK_RESERVE_SECONDS", "300")), left * 0.8)
        now = time.monotonic()
        self.forward = now + left - reserve
        self.end = now + left - min(5.0, left / 10)  # Lambda must still return and log


class RotationEvent(TypedDict):
    """What Secrets Manager invokes the function with, once per step (and `loanstack rotate`
    with its recoverSecret step):
    https://docs.aws.amazon.com/secretsmanager/latest/userguide/rotate-secrets_lambda.html"""

    Step: str  # createSecret | setSecret | testSecret | finishSecret | recoverSecret (ours)
    SecretId: str
    ClientRequestToken: str  # the version being rotated
    RotationToken: NotRequired[str]  # sent by Secrets Manager, not used here


def handler(event: RotationEvent | dict[str, Any], context: Any) -> None:
    if "RequestType" in event:  # CloudFormation's custom resource, not Secrets Manager
        answer_setup(dict(event))
        return
    arn, token, step = event["SecretId"], event["ClientRequestToken"], event["Step"]
    steps = {
        "createSecret": create_secret,
        "setSecret": set_secret,
        "testSecret": test_secret,
        "finishSecret": finish_secret,
        "recoverSecret": recover_secret,  # not Secrets Manager's: `loanstack rotate` sends it
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
        steps[step](secrets, arn, token, Clock(context))
    except Exception:
        logger.exception("rotation step %s failed for secret %s version %s", step, arn, token)
        raise


def read(secrets: Any, arn: str, stage: str, token: str | None = None) -> dict[str, Any]:
    """The secret's JSON at `stage` (and `token`); the stage is always explicit."""
    args = {"SecretId": arn, "VersionStage": stage}
    if token:
        args["VersionId"] = token
    secret: dict[str, Any] = json.loads(secrets.get_secret_value(**args)["SecretString"])
    return secret


def create_secret(secrets: Any, arn: str, token: str, clock: Clock) -> None:
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
        PasswordLength=password_length(),
        ExcludeCharacters=os.environ.get("EXCLUDE_CHARACTERS", DEFAULT_EXCLUDE),
    )["RandomPassword"]
    new = {**current, "password": password}
    if is_multi_user(current):  # the other user of the pair gets the new password
        new["username"] = alternate(str(current["username"]))
    secrets.put_secret_value(
        SecretId=arn,
        ClientRequestToken=token,
        SecretString=json.dumps(new),
        VersionStages=[PENDING],
    )
    logger.info("createSecret: created pending version %s of %s", token, arn)


def password_length() -> int:
    """Aurora MySQL takes master passwords of 8 to 41 printable characters (ModifyDBCluster,
    MasterUserPassword): a longer one would only be refused in setSecret."""
    length = int(os.environ.get("PASSWORD_LENGTH", "32"))
    if not 8 <= length <= 41:
        raise ValueError(f"PASSWORD_LENGTH={length}: Aurora MySQL master passwords are 8-41 long")
    return length


def cluster_of(secret: dict[str, Any], arn: str) -> str:
    cluster = secret.get("dbClusterIdentifier")
    if not cluster:
        raise ValueError(f"secret {arn} has no dbClusterIdentifier: is it attached to the cluster?")
    return str(cluster)


def set_secret(secrets: Any, arn: str, token: str, clock: Clock) -> None:
    """Give the cluster the pending password and see it open the writer; then label it APPLIED."""
    current = read(secrets, arn, CURRENT)
    pending = read(secrets, arn, PENDING, token)
    if is_multi_user(current):
        set_user_secret(secrets, arn, token, current, pending, clock)
        return
    cluster = cluster_of(pending, arn)
    same = all(pending.get(k) == current.get(k) for k in ("username", "host", "port"))
    if not same or cluster != cluster_of(current, arn):
        raise ValueError(f"pending version {token} of {arn} names another cluster or user")
    if opens(pending, clock.forward):
        logger.info("setSecret: the pending password already opens cluster %s", cluster)
    else:
        rds = rds_client()
        wait_until_settled(rds, cluster, "setSecret", clock.forward)
        try:
            rds.modify_db_cluster(
                DBClusterIdentifier=cluster,
                MasterUserPassword=pending["password"],
                ApplyImmediately=True,
            )
        except ClientError:
            raise  # RDS refused the change: nothing changed, nothing to undo
        except Exception:
            roll_back(secrets, arn, token, current, clock)  # the reply may be lost, not the change
            raise
        logger.info("setSecret: master password change requested on cluster %s", cluster)
        try:
            wait_until_opens(pending, "setSecret", clock.forward)
            label_applied(secrets, arn, token)
        except Exception:
            roll_back(secrets, arn, token, current, clock)
            raise
    label_applied(secrets, arn, token)
    logger.info("setSecret: version %s of %s applied to cluster %s", token, arn, cluster)


def label_applied(secrets: Any, arn: str, token: str) -> None:
    """Attach APPLIED to `token` once; a label on another version must be named to move it."""
    stages = secrets.describe_secret(SecretId=arn)["VersionIdsToStages"]
    holder = next((v for v, s in stages.items() if APPLIED in s), None)
    if holder == token:
        return
    move = {"RemoveFromVersionId": holder} if holder else {}
    secrets.update_secret_version_stage(
        SecretId=arn, VersionStage=APPLIED, MoveToVersionId=token, **move
    )


def test_secret(secrets: Any, arn: str, token: str, clock: Clock) -> None:
    """Log in to the writer over TLS with the pending credentials, as AWS's own functions do."""
    pending = read(secrets, arn, PENDING, token)
    try:
        wait_until_opens(pending, "testSecret", clock.forward)
    except Exception:
        current = read(secrets, arn, CURRENT)
        # alternating users: AWSCURRENT's user was never touched, there is nothing to undo
        if current.get("password") != pending.get("password") and not is_multi_user(current):
            roll_back(secrets, arn, token, current, clock)
        raise
    logger.info("testSecret: the pending password of %s opens the writer", arn)


def finish_secret(secrets: Any, arn: str, token: str, clock: Clock) -> None:
    """Move AWSCURRENT to the new version, only if setSecret applied it to the cluster and its
    password opens the writer now.

    The label alone is not proof: a testSecret rolling back while a replayed setSecret of the same
    token labels it again leaves APPLIED on a password the database no longer has, and promoting
    it would lock the Data API out. So the pending password must log in first (SPEC D2)."""
    stages = secrets.describe_secret(SecretId=arn)["VersionIdsToStages"]
    if APPLIED not in stages.get(token, []):
        raise ValueError(
            f"finishSecret: version {token} of {arn} was never applied to the cluster by "
            "setSecret; refusing to promote it (run `loanstack rotate` to recover)"
        )
    pending = read(secrets, arn, PENDING, token)
    if not proves(pending, "finishSecret", clock.forward):
        unlabel(secrets, arn, token)
        raise ValueError(
            f"finishSecret: the password of version {token} of {arn} does not open the writer; "
            "refusing to promote it (run `loanstack rotate` to recover)"
        )
    current = next((v for v, s in stages.items() if CURRENT in s), None)
    secrets.update_secret_version_stage(
        SecretId=arn, VersionStage=CURRENT, MoveToVersionId=token, RemoveFromVersionId=current
    )
    unlabel(secrets, arn, token)
    logger.info("finishSecret: version %s of %s is now AWSCURRENT (was %s)", token, arn, current)


def unlabel(secrets: Any, arn: str, token: str) -> None:
    """Take APPLIED off `token`, if it carries it."""
    stages = secrets.describe_secret(SecretId=arn)["VersionIdsToStages"]
    if APPLIED in stages.get(token, []):
        secrets.update_secret_version_stage(
            SecretId=arn, VersionStage=APPLIED, RemoveFromVersionId=token
        )


def recover_secret(secrets: Any, arn: str, token: str, clock: Clock) -> None:
    """Clear an interrupted rotation that setSecret had not applied (`loanstack rotate` sends
    this step): the database back on AWSCURRENT's password, then AWSPENDING taken off `token`,
    so Secrets Manager accepts a new rotation (SPEC D2). The caller needs no rds permission of
    its own. A version setSecret applied is finished with its token, never cleared here: its
    password may be the one the database has."""
    if APPLIED in secrets.describe_secret(SecretId=arn)["VersionIdsToStages"].get(token, []):
        raise ValueError(
            f"recoverSecret: version {token} of {arn} was applied by setSecret: finish it "
            "(setSecret, testSecret, finishSecret with the same token), do not clear it"
        )
    current = read(secrets, arn, CURRENT)
    if not is_multi_user(current):  # alternating users: AWSCURRENT's user was never touched
        roll_back(secrets, arn, token, current, clock)
    secrets.update_secret_version_stage(
        SecretId=arn, VersionStage=PENDING, RemoveFromVersionId=token
    )
    logger.info(
        "recoverSecret: cleared version %s of %s; the database is on AWSCURRENT", token, arn
    )


def roll_back(secrets: Any, arn: str, token: str, current: dict[str, Any], clock: Clock) -> None:
    """Put the database on AWSCURRENT's password and take the APPLIED label away.

    Waits for the change in flight to land first (until then the old password may still open
    the writer, and RDS refuses another ModifyDBCluster), then proves AWSCURRENT opens it.
    AWSCURRENT is read again before each change (a concurrent finishSecret may have moved it, and
    the database must follow it, not the value this step started with), and APPLIED is taken
    away again at the end: a concurrent setSecret may have put it back while the database moved.
    """
    cluster = cluster_of(current, arn)
    try:
        unlabel(secrets, arn, token)
        rds = rds_client()
        wait_until_settled(rds, cluster, "rollback", clock.end)  # a change in flight lands first
        for _ in range(3):
            target = read(secrets, arn, CURRENT)
            if opens(target, clock.end):
                break
            rds.modify_db_cluster(
                DBClusterIdentifier=cluster,
                MasterUserPassword=target["password"],
                ApplyImmediately=True,
            )
            wait_until_opens(target, "rollback", clock.end)
        else:
            raise RuntimeError(f"rollback: AWSCURRENT of {arn} kept moving")
        unlabel(secrets, arn, token)
    except Exception:
        logger.exception(
            "rollback failed: cluster %s may not be on AWSCURRENT's password of %s; "
            "run `loanstack rotate` to recover",
            cluster,
            arn,
        )
        raise
    logger.warning("rollback: cluster %s is back on AWSCURRENT's password of %s", cluster, arn)


# --- alternating users (the application's secret) ----------------------------------------------
# AWS's alternating-users strategy: the secret names its master secret (`masterarn`); each
# rotation gives the user AWSCURRENT does not name a new password and the current user's grants,
# then makes it AWSCURRENT, so the previous credentials keep working while callers move over:
# https://docs.aws.amazon.com/secretsmanager/latest/userguide/rotation-strategy.html#rotating-secrets-two-users
CLONE_SUFFIX = "_clone"
# MySQL 8.0 user names: at most 32 characters; letters, digits, "_" and the suffix's "-" (quoted)
USER_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
GRANTEE = "`{}`@`%`"  # how SHOW GRANTS names an account, on MySQL 8.0 and MariaDB
# A GRANT's password clause (MariaDB's SHOW GRANTS prints the hash): never copied to the clone
PASSWORD_CLAUSE = re.compile(r"\s+IDENTIFIED\s+(?:BY|VIA|WITH)\b.*$", re.I | re.S)


def is_multi_user(secret: dict[str, Any]) -> bool:
    """A secret that names its master secret is rotated with alternating users."""
    return bool(secret.get("masterarn"))


def alternate(username: str) -> str:
    """The other user of the pair: `loan_app` <-> `loan_app_clone`."""
    other = (
        username.removesuffix(CLONE_SUFFIX)
        if username.endswith(CLONE_SUFFIX)
        else username + CLONE_SUFFIX
    )
    if not USER_NAME.fullmatch(other):
        raise ValueError(f"user name {other!r} is not 1-32 letters, digits, '_' or '-'")
    return other


def account(username: str) -> str:
    """`'name'@'%'` for SQL; the name is checked, never escaped, and must be the application's
    pair (APP_USERNAME and its clone): a secret rewritten to name another user (the master, say)
    never makes this function create, grant or set a password for it (a confused deputy)."""
    if not USER_NAME.fullmatch(username):
        raise ValueError(f"user name {username!r} is not 1-32 letters, digits, '_' or '-'")
    expected = os.environ.get("APP_USERNAME", "")
    if not expected or username not in (expected, expected + CLONE_SUFFIX):
        raise ValueError(
            f"user {username!r} is not the application's ({expected or 'APP_USERNAME unset'}"
            f" or its {CLONE_SUFFIX}): refused"
        )
    return f"'{username}'@'%'"


def identified(password: str) -> str:
    """The account's password as its mysql_native_password hash, never the password itself:
    the cluster's audit log records DCL statements' text (server_audit_events QUERY_DCL), and
    MySQL rewrites passwords only in the general and slow logs and the binary log
    (https://dev.mysql.com/doc/refman/8.0/en/password-logging.html). MySQL 8.0 and MariaDB both
    take `IDENTIFIED WITH mysql_native_password AS '*<SHA1(SHA1(password))>'`."""
    password_literal(password)  # the same refusals as before
    # SHA-1 is the mysql_native_password protocol's own hash (mandated, not our choice)
    inner = hashlib.sha1(password.encode(), usedforsecurity=False).digest()
    outer = hashlib.sha1(inner, usedforsecurity=False).hexdigest().upper()
    return f"IDENTIFIED WITH mysql_native_password AS '*{outer}'"


def password_literal(password: str) -> str:
    """The password as a SQL string literal. The generated passwords exclude quotes and
    backslashes (EXCLUDE_CHARACTERS); one that has them is refused, never escaped by hand."""
    if not password or any(c in password for c in "'\\") or not password.isprintable():
        raise ValueError("the password has a quote, a backslash or an unprintable character")
    return f"'{password}'"


def cluster_arn(secret_arn: str, cluster: str) -> str:
    """The cluster's ARN in the secret's partition, region and account (the Data API wants it)."""
    _, partition, _, region, account_id = secret_arn.split(":")[:5]
    return f"arn:{partition}:rds:{region}:{account_id}:cluster:{cluster}"


# The Data API's answers while the writer is resuming or restarting: "Wait a few seconds and try
# again" (https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/CommonErrors.html)
WAIT_FOR_WRITER = ("DatabaseResumingException", "DatabaseUnavailableException")


def as_master(secret: dict[str, Any], arn: str, statement: str, database: str | None = None) -> Any:
    """One statement through the Data API with the master secret the application's secret names:
    the master password is used here and by the master's own rotation, nowhere else."""
    request = {
        "resourceArn": cluster_arn(str(secret["masterarn"]), cluster_of(secret, arn)),
        "secretArn": str(secret["masterarn"]),
        "sql": statement,
    }
    if database:
        request["database"] = database
    client = rds_data_client()
    deadline = time.monotonic() + float(os.environ.get("RESUME_WAIT_SECONDS", "90"))
    delay = 1.0
    while True:
        try:
            return client.execute_statement(**request)
        except ClientError as err:  # a paused dev writer resumes in ~15 s; a restart takes longer
            code = err.response.get("Error", {}).get("Code", "")
            if code not in WAIT_FOR_WRITER or time.monotonic() + delay > deadline:
                raise
            logger.info("Data API %s: trying again in %.0f s", code, delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


def set_user_secret(
    secrets: Any,
    arn: str,
    token: str,
    current: dict[str, Any],
    pending: dict[str, Any],
    clock: Clock,
) -> None:
    """Give the pending user its password and the current user's grants (as the master), see the
    pending credentials open the writer, then label the version APPLIED. AWSCURRENT's user is
    never changed, so a failure leaves nothing to roll back."""
    same = all(pending.get(k) == current.get(k) for k in ("host", "port", "masterarn"))
    if not same or cluster_of(pending, arn) != cluster_of(current, arn):
        raise ValueError(f"pending version {token} of {arn} names another cluster or master")
    if pending.get("username") != alternate(str(current["username"])):
        raise ValueError(f"pending version {token} of {arn} is not the other user of the pair")
    if opens(pending, clock.forward):
        logger.info("setSecret: user %s already opens the writer", pending["username"])
    else:
        for statement in clone_user(current, pending, arn):
            as_master(current, arn, statement)
        logger.info("setSecret: user %s has the pending password", pending["username"])
        wait_until_opens(pending, "setSecret", clock.forward)
    label_applied(secrets, arn, token)
    logger.info("setSecret: version %s of %s applied (user %s)", token, arn, pending["username"])


def clone_user(current: dict[str, Any], pending: dict[str, Any], arn: str) -> list[str]:
    """The statements that make the pending user: created if missing, the current user's grants,
    then the new password (last: a GRANT never sets it)."""
    source, target = str(current["username"]), str(pending["username"])
    password = identified(str(pending["password"]))
    shown = as_master(current, arn, f"SHOW GRANTS FOR {account(source)}")
    statements = [f"CREATE USER IF NOT EXISTS {account(target)} {password}"]
    for row in shown.get("records", []):
        grant = PASSWORD_CLAUSE.sub("", str(row[0].get("stringValue", "")))
        if grant.upper().startswith("GRANT USAGE ON *.*"):
            continue  # no privilege: CREATE USER already gave it
        if f" TO {GRANTEE.format(source)}" not in grant:
            raise ValueError(f"cannot read the grant {grant!r} of user {source}")
        statements.append(grant.replace(f" TO {GRANTEE.format(source)}", f" TO {account(target)}"))
    statements.append(f"ALTER USER {account(target)} {password}")
    return statements


# --- the application's database, before its first call (custom resource AppDatabaseSetup) -----
# The validation function's table (its own source, lib/functions/loan_validation, holds the same
# text; a unit test keeps the two equal). Only the master creates it: the application's user has
# no DDL privilege.
TABLES = {
    "loan_decisions": """CREATE TABLE IF NOT EXISTS loan_decisions (
 loan_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
 applicant_id VARCHAR(64) NOT NULL,
 loan_type VARCHAR(16) NOT NULL,
 loan_amount DECIMAL(15,2) NOT NULL,
 decision VARCHAR(16) NOT NULL,
 reasons VARCHAR(512) NOT NULL,
 monthly_payment DECIMAL(15,2) NOT NULL,
 debt_to_income DECIMAL(20,4) NOT NULL,
 loan_to_value DECIMAL(20,4) NULL,
 application_sha256 CHAR(64) NOT NULL,
 result_json TEXT NOT NULL,
 source VARCHAR(1100) NULL,
 decided_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""
}
DATA_PRIVILEGES = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})  # never DDL, never admin


def answer_setup(event: dict[str, Any]) -> None:
    """Answer CloudFormation on Create, Update and Delete, success or failure: a custom resource
    that never hears back holds the stack for an hour.
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html"""
    status, reason, data = "SUCCESS", "", {}
    physical = (
        event.get("PhysicalResourceId") or f"{event['LogicalResourceId']}-{event['RequestId']}"
    )
    try:
        if event["RequestType"] in ("Create", "Update"):
            data = set_up_database(event.get("ResourceProperties", {}))
        # Delete: the schema and its users go with the cluster; nothing to undo here
    except Exception as err:
        logger.exception("AppDatabaseSetup %s failed", event["RequestType"])
        status, reason = "FAILED", f"{type(err).__name__}: {err}"[:1000]
    body = {
        "Status": status,
        "Reason": reason or "see the rotation function's log group",
        "PhysicalResourceId": physical,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "Data": data,
    }
    request = urllib.request.Request(  # noqa: S310 (CloudFormation's pre-signed https URL)
        event["ResponseURL"],
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Content-Type": ""},
    )
    with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310 (as above)
        reply.read()


def set_up_database(props: dict[str, Any]) -> dict[str, str]:
    """Create (if missing) the database, its tables, and AWSCURRENT's user of the application's
    secret with only the data privileges asked for, as the master. Idempotent, and the user ends
    with AWSCURRENT's password (SPEC D2: the database follows AWSCURRENT), also when it already
    existed with another (a replaced secret); grants are only added."""
    secrets = secrets_client()
    arn = str(props["AppSecretArn"])
    app = read(secrets, arn, CURRENT)
    if not is_multi_user(app):
        raise ValueError(f"secret {arn} names no master secret (masterarn)")
    database, tables = str(props["DatabaseName"]), list(props["Tables"])
    privileges = [str(p).upper() for p in props["Privileges"]]
    if not re.fullmatch(r"\w{1,64}", database) or not set(privileges) <= DATA_PRIVILEGES:
        raise ValueError(f"database {database!r} or privileges {privileges} refused")
    if not set(tables) <= set(TABLES):
        raise ValueError(f"tables {tables} refused: this function defines {sorted(TABLES)}")
    user, password = account(str(app["username"])), identified(str(app["password"]))
    as_master(app, arn, f"CREATE DATABASE IF NOT EXISTS `{database}`")
    for table in tables:
        as_master(app, arn, TABLES[table], database)
    as_master(app, arn, f"CREATE USER IF NOT EXISTS {user} {password}")
    as_master(app, arn, f"ALTER USER {user} {password}")
    for table in tables:  # tbl_name alone: the table in the call's default database (MySQL 8.0
        # GRANT, "Table Privileges"), so the grant names the database the call runs in
        as_master(app, arn, f"GRANT {', '.join(privileges)} ON `{table}` TO {user}", database)
    logger.info("AppDatabaseSetup: %s may %s on %s", user, privileges, tables)
    return {"Username": str(app["username"])}


def wait_until_settled(rds: Any, cluster: str, step: str, deadline: float) -> None:
    """Poll with backoff until the cluster is available with no pending password, twice in a row.

    Two consecutive observations guard against reading the state from before ModifyDBCluster.
    """
    delay, streak, status = float(os.environ.get("FIRST_POLL_SECONDS", "2")), 0, "unknown"
    while True:
        described = rds.describe_db_clusters(DBClusterIdentifier=cluster)["DBClusters"][0]
        status = described.get("Status", "unknown")
        pending = described.get("PendingModifiedValues", {}).get("MasterUserPassword")
        streak = streak + 1 if status == "available" and not pending else 0
        if streak >= 2:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(
                f"{step}: cluster {cluster} still {status!r} (password pending: {bool(pending)})"
            )
        time.sleep(min(delay, left))
        delay = min(delay * 2, 15.0)


def wait_until_opens(secret: dict[str, Any], step: str, deadline: float) -> None:
    """Poll the login with backoff until the password opens the writer; the last try is at the
    deadline."""
    delay = float(os.environ.get("FIRST_POLL_SECONDS", "2"))
    while True:
        try:
            login(secret, timeout=login_timeout(deadline))
            return
        except (LoginRefused, OSError) as err:
            reason = f"{type(err).__name__}: {err}"
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{step}: the password does not open {secret.get('host')}: {reason}")
        time.sleep(min(delay, left))
        delay = min(delay * 2, 15.0)


def proves(secret: dict[str, Any], step: str, deadline: float) -> bool:
    """True when the password opens the writer, False when the server refuses it; a transport
    failure (a writer restarting) is tried again until the deadline, then raised."""
    delay = float(os.environ.get("FIRST_POLL_SECONDS", "2"))
    while True:
        try:
            login(secret, timeout=login_timeout(deadline))
            return True
        except LoginRefused:
            return False
        except OSError as err:
            reason = f"{type(err).__name__}: {err}"
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{step}: cannot reach {secret.get('host')}: {reason}")
        time.sleep(min(delay, left))
        delay = min(delay * 2, 15.0)


def opens(secret: dict[str, Any], deadline: float | None = None) -> bool:
    try:
        login(secret, timeout=login_timeout(deadline))
    except (LoginRefused, OSError):
        return False
    return True


def login_timeout(deadline: float | None = None) -> float:
    """Seconds a login may wait for the server: long enough for a paused Aurora Serverless v2
    writer to resume ("can take up to 15 seconds", longer after a long pause), which accepts the
    connection only then, so a paused dev cluster is not mistaken for a wrong password
    (https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-serverless-v2-auto-pause.html);
    never past `deadline`."""
    seconds = float(os.environ.get("LOGIN_TIMEOUT_SECONDS", "30"))
    if deadline is not None:
        seconds = min(seconds, max(1.0, deadline - time.monotonic()))
    return seconds


# --- a minimal MySQL login over TLS (client/server protocol, standard library only) ----------
# https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html
# Aurora MySQL 3's default_authentication_plugin is mysql_native_password
# (https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/AuroraMySQL.Compare-80-v3.html);
# caching_sha2_password is answered too (fast path, or the password over the TLS channel).

CLIENT_LONG_PASSWORD, CLIENT_PROTOCOL_41, CLIENT_SSL = 0x1, 0x200, 0x800
CLIENT_SECURE_CONNECTION, CLIENT_PLUGIN_AUTH = 0x8000, 0x80000
CAPABILITIES = (
    CLIENT_LONG_PASSWORD
    | CLIENT_PROTOCOL_41
    | CLIENT_SSL
    | CLIENT_SECURE_CONNECTION
    | CLIENT_PLUGIN_AUTH
)
CHARSET_UTF8 = 33


def login(secret: dict[str, Any], cafile: str | None = None, timeout: float | None = None) -> None:
    """Open a TLS session to the secret's host and authenticate with its credentials; raises
    LoginRefused when the server says no, OSError (ssl.SSLError included) on transport errors
    and on a reply that is not the MySQL protocol. `timeout` bounds each wait for the server
    (login_timeout() when not given)."""
    try:
        handshake(secret, trust(cafile), login_timeout() if timeout is None else timeout)
    except ssl.SSLError:
        raise  # an OSError already (SSLCertVerificationError is a ValueError too)
    except (struct.error, IndexError, ValueError, UnicodeDecodeError) as err:
        raise OSError(f"unreadable reply from the server: {err!r}") from err


RDS_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/{region}/{region}-bundle.pem"


def trust(cafile: str | None = None) -> ssl.SSLContext:
    """Certificates the database's may chain to: DB_CA_FILE when set (the emulator's CA), else
    the region's RDS bundle. The Lambda runtime's own store lacks the RDS CAs (G1 roots), so the
    bundle AWS publishes per region is fetched once per environment over HTTPS, which the
    runtime's store does verify (Amazon Aurora user guide, "Using SSL/TLS to encrypt a connection
    to a DB cluster": https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/UsingWithRDS.SSL.html)."""
    explicit = cafile or os.environ.get("DB_CA_FILE")
    if explicit:
        return ssl.create_default_context(cafile=explicit)
    context = ssl.create_default_context()
    context.load_verify_locations(cadata=rds_bundle())
    return context


def rds_bundle() -> str:
    cache = Path(tempfile.gettempdir()) / "rds-ca-bundle.pem"
    if cache.exists():
        return cache.read_text()
    region = os.environ.get("AWS_REGION", "us-east-1")
    url = os.environ.get("RDS_CA_BUNDLE_URL") or RDS_BUNDLE_URL.format(region=region)
    with urllib.request.urlopen(url, timeout=10) as reply:  # noqa: S310 (AWS's https bundle URL, or the operator's override)
        text: str = reply.read().decode("ascii")
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise OSError(f"{url} did not return PEM certificates")
    cache.write_text(text)
    logger.info("fetched the RDS certificate bundle for %s", region)
    return text


def handshake(secret: dict[str, Any], context: ssl.SSLContext, timeout: float) -> None:
    host, port = str(secret["host"]), int(secret.get("port", 3306))
    with socket.create_connection((host, port), timeout=timeout) as raw:
        greeting = Packets(raw).read()
        if greeting[0] == 0xFF:
            raise LoginRefused(error_text(greeting))
        nonce, plugin, server_caps = parse_greeting(greeting)
        if not server_caps & CLIENT_SSL:
            raise OSError(f"{host}:{port} does not offer TLS")
        prefix = struct.pack("<IIB23x", CAPABILITIES, 1 << 24, CHARSET_UTF8)
        Packets(raw, 1).write(prefix)  # SSLRequest, then the TLS handshake on the same socket
        with context.wrap_socket(raw, server_hostname=host) as tls:
            channel = Packets(tls, 2)
            scramble = auth_response(plugin, secret["password"], nonce)
            channel.write(
                prefix
                + str(secret["username"]).encode()
                + b"\0"
                + bytes([len(scramble)])
                + scramble
                + plugin.encode()
                + b"\0"
            )
            authenticate(channel, secret["password"])
            channel.seq = 0
            channel.write(b"\x01")  # COM_QUIT


def authenticate(channel: Packets, password: str) -> None:
    """Follow the server's answers until OK (0x00) or an error (0xFF)."""
    while True:
        reply = channel.read()
        if reply[0] == 0x00:
            return
        if reply[0] == 0xFF:
            raise LoginRefused(error_text(reply))
        if reply[0] == 0xFE:  # AuthSwitchRequest: plugin name, then its nonce
            name, _, data = reply[1:].partition(b"\0")
            channel.write(auth_response(name.decode(), password, data[:20]))
        elif reply[:2] == b"\x01\x04":  # caching_sha2_password wants the password: TLS carries it
            channel.write(password.encode() + b"\0")
        elif reply[:2] != b"\x01\x03":  # 0x01 0x03: fast authentication succeeded, OK follows
            raise LoginRefused(f"unexpected authentication packet {reply[:1].hex()}")


def parse_greeting(packet: bytes) -> tuple[bytes, str, int]:
    """Protocol::HandshakeV10: the 20-byte nonce, the server's auth plugin, its capabilities."""
    if packet[0] != 10:
        raise OSError(f"unsupported MySQL protocol version {packet[0]}")
    at = packet.index(b"\0", 1) + 1 + 4  # server version, connection id
    nonce = packet[at : at + 8]
    at += 9
    caps = struct.unpack_from("<H", packet, at)[0]
    at += 2 + 1 + 2
    caps |= struct.unpack_from("<H", packet, at)[0] << 16
    data_length = packet[at + 2]
    at += 3 + 10
    rest = max(13, data_length - 8)
    nonce += packet[at : at + rest - 1]  # the last byte is a NUL terminator
    plugin = "mysql_native_password"
    if caps & CLIENT_PLUGIN_AUTH:
        plugin = packet[at + rest :].split(b"\0", 1)[0].decode() or plugin
    return nonce[:20], plugin, caps


def auth_response(plugin: str, password: str, nonce: bytes) -> bytes:
    secret = password.encode()
    if plugin == "mysql_native_password":
        stage1 = hashlib.sha1(secret, usedforsecurity=False).digest()
        mask = hashlib.sha1(
            nonce[:20] + hashlib.sha1(stage1, usedforsecurity=False).digest(),
            usedforsecurity=False,  # mysql_native_password: SHA-1 is the protocol's, mandated
        ).digest()
        return bytes(a ^ b for a, b in zip(stage1, mask, strict=True))
    if plugin == "caching_sha2_password":
        stage1 = hashlib.sha256(secret).digest()
        mask = hashlib.sha256(hashlib.sha256(stage1).digest() + nonce[:20]).digest()
        return bytes(a ^ b for a, b in zip(stage1, mask, strict=True))
    raise LoginRefused(f"authentication plugin {plugin!r} is not supported")


def error_text(packet: bytes) -> str:
    code = struct.unpack_from("<H", packet, 1)[0]
    message = packet[9:] if packet[3:4] == b"#" else packet[3:]
    return f"MySQL error {code}: {message.decode(errors='replace')}"


class Packets:
    """MySQL packet framing: 3-byte little-endian length, 1-byte sequence number, payload."""

    def __init__(self, sock: Any, seq: int = 0) -> None:
        self.sock, self.seq = sock, seq

    def read(self) -> bytes:
        header = self.exactly(4)
        self.seq = (header[3] + 1) % 256
        payload = self.exactly(int.from_bytes(header[:3], "little"))
        if not payload:
            raise OSError("empty packet from the server")
        return payload

    def write(self, payload: bytes) -> None:
        self.sock.sendall(len(payload).to_bytes(3, "little") + bytes([self.seq]) + payload)
        self.seq = (self.seq + 1) % 256

    def exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise OSError("the server closed the connection")
            data += chunk
        return data
