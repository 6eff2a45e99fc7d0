"""`loanstack restore`: the restore drill (issue 22 item 7). Restores the stack's Aurora cluster
to a point in time or from a snapshot as a NEW cluster beside the old one, adds a writer and the
Data API, reconciles `loan_decisions` (the control totals `loanstack verify` and the migration
manifest use) and measures the drill: the RTO (how long until the restored cluster answered
with its totals) and the RPO (how far the restore point lies behind the start).

It never touches the old cluster or the stack: pointing the stack at the restored cluster is a
manual runbook (docs/audit-and-recovery.md), since the template names its cluster
(`aurora-loanprocessing-<suffix>`) and CloudFormation cannot adopt another one in place.
"""

from __future__ import annotations

import datetime
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from rich.console import Console
from rich.text import Text

from loanstack.errors import DeployError, UsageError
from loanstack.names import ENVIRONMENT_TYPE, MASTER_SECRET_ARN, stack_name
from loanstack.ops.verify import Database, Totals

CLUSTER_PREFIX = "aurora-loanprocessing-"  # the template's DBClusterIdentifier, by suffix
IDENTIFIER_CHARS = 63  # DBClusterIdentifier: 1 to 63 letters, digits or hyphens
# https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_RestoreDBClusterFromSnapshot.html
DEFAULT_TIMEOUT = 3600.0  # a restore of a large volume takes tens of minutes (aurora-pitr.html)
SERVERLESS = "db.serverless"


@dataclass
class Request:
    """What to restore: exactly one of `to_time`, `latest`, `snapshot`."""

    suffix: str
    env: str = ""  # dev or prod: checked against the deployed stack's EnvironmentType
    to_time: datetime.datetime | None = None
    latest: bool = False
    snapshot: str | None = None
    new_cluster_id: str | None = None
    subnet_group: str | None = None  # when the old cluster is gone (a destroyed stack)
    security_groups: list[str] = field(default_factory=list)
    timeout: float = DEFAULT_TIMEOUT

    @property
    def cluster_id(self) -> str:
        return CLUSTER_PREFIX + self.suffix


@dataclass
class Source:
    """Where the data comes from and the settings the new cluster copies."""

    engine: str
    engine_version: str | None
    kms_key: str | None
    master_username: str
    restore_point: datetime.datetime
    cluster: dict[str, Any] | None  # the old cluster, when it still exists
    secret_arn: str | None  # the stack's master secret, when the stack still exists


def check_request(request: Request) -> None:
    """One source, and a new identifier RDS accepts, before any call."""
    chosen = [request.to_time is not None, request.latest, request.snapshot is not None]
    if sum(chosen) != 1:
        raise UsageError("give exactly one of --to-time ISO, --latest, --snapshot ID")
    new = new_cluster_id(request, datetime.datetime.now(datetime.UTC))
    valid = new[:1].isalpha() and all(c.isalnum() or c == "-" for c in new)
    if not valid or len(new) > IDENTIFIER_CHARS or "--" in new or new.endswith("-"):
        raise UsageError(
            f"--new-cluster-id {new!r}: 1 to 63 letters, digits or hyphens, starting with a "
            "letter, no two hyphens in a row, not ending with one"
        )
    if new == request.cluster_id:
        raise UsageError("--new-cluster-id must differ from the stack's cluster")


def new_cluster_id(request: Request, now: datetime.datetime) -> str:
    return request.new_cluster_id or f"{request.cluster_id}-r{now:%m%d%H%M%S}"


def old_cluster(rds: Any, cluster_id: str) -> dict[str, Any] | None:
    try:
        return dict(rds.describe_db_clusters(DBClusterIdentifier=cluster_id)["DBClusters"][0])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "DBClusterNotFoundFault":
            return None
        raise


def stack_secret(target: Any, request: Request) -> str | None:
    """The stack's master secret (its DBSecretArn output), or None when the stack is gone; a
    stack of the other environment than --env is refused (the drill's evidence names it)."""
    name = stack_name(request.suffix)
    try:
        stack = target.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as exc:
        if "does not exist" in str(exc.response.get("Error", {}).get("Message", "")):
            return None
        raise
    params = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}
    deployed = params.get(ENVIRONMENT_TYPE)
    if request.env and deployed and deployed != request.env:
        raise UsageError(f"stack {name} is a {deployed} stack, not --env {request.env}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return outputs.get(MASTER_SECRET_ARN)


def find_source(target: Any, request: Request) -> Source:
    """The restore point and the settings to copy, refused in one line when missing."""
    rds = target.client("rds")
    cluster = old_cluster(rds, request.cluster_id)
    secret = stack_secret(target, request)
    if request.snapshot is None:
        if cluster is None:
            raise DeployError(
                f"cluster {request.cluster_id} does not exist in {target.region}: a point-in-time "
                "restore needs it; restore its final snapshot with --snapshot ID "
                "(`aws rds describe-db-cluster-snapshots` lists them)"
            )
        point = request.to_time or cluster["LatestRestorableTime"]
        return Source(
            cluster["Engine"], cluster.get("EngineVersion"), cluster.get("KmsKeyId"),
            cluster["MasterUsername"], point, cluster, secret,
        )  # fmt: skip
    try:
        found = rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=request.snapshot)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "DBClusterSnapshotNotFoundFault":
            raise DeployError(
                f"no cluster snapshot {request.snapshot} in {target.region}: "
                "`aws rds describe-db-cluster-snapshots` lists them"
            ) from exc
        raise
    snap = found["DBClusterSnapshots"][0]
    return Source(
        snap["Engine"], snap.get("EngineVersion"), snap.get("KmsKeyId"), snap["MasterUsername"],
        snap["SnapshotCreateTime"], cluster, secret,
    )  # fmt: skip


def settings(request: Request, source: Source) -> dict[str, Any]:
    """The old cluster's network, key, scaling and parameter group for the new one (the given
    subnet group and security groups when the old cluster is gone)."""
    wanted: dict[str, Any] = {}
    old = source.cluster or {}
    subnet_group = request.subnet_group or old.get("DBSubnetGroup")
    groups = request.security_groups or [
        g["VpcSecurityGroupId"] for g in old.get("VpcSecurityGroups", [])
    ]
    if subnet_group:
        wanted["DBSubnetGroupName"] = subnet_group
    if groups:
        wanted["VpcSecurityGroupIds"] = groups
    if source.kms_key:
        wanted["KmsKeyId"] = source.kms_key
    scaling = old.get("ServerlessV2ScalingConfiguration")
    if scaling:
        wanted["ServerlessV2ScalingConfiguration"] = {
            k: scaling[k]
            for k in ("MinCapacity", "MaxCapacity", "SecondsUntilAutoPause")
            if k in scaling
        }
    if old.get("DBClusterParameterGroup"):
        wanted["DBClusterParameterGroupName"] = old["DBClusterParameterGroup"]
    # what the restore APIs do not carry over by themselves: the audit log exports (prod's
    # audit trail), IAM authentication, the backup retention, tags on snapshots
    if old.get("EnabledCloudwatchLogsExports"):
        wanted["EnableCloudwatchLogsExports"] = list(old["EnabledCloudwatchLogsExports"])
    for key in ("IAMDatabaseAuthenticationEnabled", "CopyTagsToSnapshot"):
        if old.get(key):
            name = "EnableIAMDatabaseAuthentication" if key.startswith("IAM") else key
            wanted[name] = True
    if old.get("BackupRetentionPeriod"):
        wanted["BackupRetentionPeriod"] = int(old["BackupRetentionPeriod"])
    return wanted


def start_restore(rds: Any, request: Request, source: Source, new_id: str) -> dict[str, Any]:
    options = settings(request, source)
    if request.snapshot is not None:
        reply = rds.restore_db_cluster_from_snapshot(
            DBClusterIdentifier=new_id,
            SnapshotIdentifier=request.snapshot,
            Engine=source.engine,
            **({"EngineVersion": source.engine_version} if source.engine_version else {}),
            **options,
        )
    else:
        when: dict[str, Any] = (
            {"RestoreToTime": request.to_time}
            if request.to_time
            else {"UseLatestRestorableTime": True}
        )
        reply = rds.restore_db_cluster_to_point_in_time(
            DBClusterIdentifier=new_id,
            SourceDBClusterIdentifier=request.cluster_id,
            RestoreType="full-copy",
            **when,
            **options,
        )
    return dict(reply["DBCluster"])


def wait_until(
    describe: Callable[[], str],
    what: str,
    deadline: float,
    console: Console,
    poll: float,
) -> None:
    """Poll until `describe()` says available, printing each new status; bounded."""
    seen = ""
    started = time.monotonic()
    while True:
        status = describe()
        if status != seen:
            console.print(Text(f"{what}: {status} ({time.monotonic() - started:.0f} s)"))
            seen = status
        if status == "available":
            return
        if status in ("failed", "incompatible-restore", "inaccessible-encryption-credentials"):
            raise DeployError(f"{what} is {status}: see its events (`aws rds describe-events`)")
        if time.monotonic() > deadline:
            raise DeployError(
                f"{what} still {status} after the timeout: it goes on in AWS; raise --timeout, "
                "or watch it with `aws rds describe-db-clusters`"
            )
        time.sleep(poll)


def cluster_status(rds: Any, cluster_id: str) -> str:
    return str(rds.describe_db_clusters(DBClusterIdentifier=cluster_id)["DBClusters"][0]["Status"])


def instance_status(rds: Any, instance_id: str) -> str:
    found = rds.describe_db_instances(DBInstanceIdentifier=instance_id)["DBInstances"][0]
    return str(found["DBInstanceStatus"])


def writer_class(rds: Any, cluster: dict[str, Any] | None) -> str:
    """The old writer's instance class (db.serverless when it is gone)."""
    for member in (cluster or {}).get("DBClusterMembers", []):
        if member.get("IsClusterWriter"):
            instance_id = member["DBInstanceIdentifier"]
            found = rds.describe_db_instances(DBInstanceIdentifier=instance_id)["DBInstances"]
            return str(found[0]["DBInstanceClass"])
    return SERVERLESS


def new_secret(target: Any, new_id: str, source: Source) -> str:
    """A master secret for a cluster restored after its stack (and secret) were deleted: a new
    password, encrypted with the kept key, set on the restored cluster by the caller."""
    password = secrets.token_urlsafe(24)  # letters, digits, - and _: none RDS refuses
    created = target.client("secretsmanager").create_secret(
        Name=f"restored/{new_id}",
        Description=f"master credentials of {new_id}, restored by loanstack restore",
        SecretString=json.dumps({"username": source.master_username, "password": password}),
        **({"KmsKeyId": source.kms_key} if source.kms_key else {}),
    )
    return str(created["ARN"])


def set_master_password(target: Any, new_id: str, secret_arn: str) -> None:
    """A restored snapshot keeps the password of its time; the secret's current one applies."""
    value = target.client("secretsmanager").get_secret_value(SecretId=secret_arn)
    password = json.loads(value["SecretString"])["password"]
    target.client("rds").modify_db_cluster(
        DBClusterIdentifier=new_id, MasterUserPassword=password, ApplyImmediately=True
    )


def control_totals(target: Any, cluster_arn: str, secret_arn: str) -> dict[str, Any]:
    """Row count, sum of loan amounts and hash total of loan ids of `loan_decisions`, read
    through the Data API and computed as `loanstack verify` computes them (verify.Totals)."""
    totals = Totals()
    database = Database(target.client("rds-data"), cluster_arn, secret_arn)
    totals.add_all((row[0], row[4]) for row in database.rows(""))
    return totals.as_dict()


def iso(moment: datetime.datetime) -> str:
    utc = moment.astimezone(datetime.UTC) if moment.tzinfo else moment
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def writer_id(new_id: str) -> str:
    return f"{new_id[: IDENTIFIER_CHARS - 7].rstrip('-')}-writer"


def totals_when_ready(
    target: Any, cluster_arn: str, secret_arn: str, deadline: float, poll: float
) -> dict[str, Any]:
    """The control totals, waiting out a Serverless v2 cluster resuming from auto-pause."""
    while True:
        try:
            return control_totals(target, cluster_arn, secret_arn)
        except DeployError as exc:
            if "resuming" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(poll)


def switch_over(request: Request, new_id: str) -> list[str]:
    """The manual runbook, in short (in full: docs/audit-and-recovery.md, "Switch-over")."""
    old, writer = request.cluster_id, f"aurora-writer-{request.suffix}"
    return [
        f"the template names its cluster {old}: no change set can point the stack at {new_id}; "
        "the switch is a rename swap (docs/audit-and-recovery.md, Switch-over):",
        "1. stop writes: aws lambda put-function-concurrency --function-name "
        "<LoanValidationFunctionName> --reserved-concurrent-executions 0",
        f"2. aws rds modify-db-cluster --db-cluster-identifier {old} --new-db-cluster-identifier "
        f"{old}-old --apply-immediately (its instances likewise, e.g. {writer} -> {writer}-old)",
        f"3. the same for {new_id} -> {old} and its writer -> {writer}; add the reader the "
        "template declares",
        "4. loanstack verify, then lift the concurrency limit (put-function-concurrency with the "
        f"stack's ValidationReservedConcurrency); delete {old}-old after a final snapshot",
    ]


def provision(
    target: Any, request: Request, source: Source, new_id: str, deadline: float, console: Console
) -> tuple[str, str, str]:
    """The new cluster, its writer, its Data API and the secret it takes: (ARN, writer, secret)."""
    rds = target.client("rds")
    poll = float(target.poll_seconds)
    created = start_restore(rds, request, source, new_id)
    wait_until(lambda: cluster_status(rds, new_id), f"cluster {new_id}", deadline, console, poll)
    writer = writer_id(new_id)
    rds.create_db_instance(
        DBInstanceIdentifier=writer,
        DBClusterIdentifier=new_id,
        Engine=source.engine,
        DBInstanceClass=writer_class(rds, source.cluster),
    )
    wait_until(lambda: instance_status(rds, writer), f"writer {writer}", deadline, console, poll)
    arn = str(created["DBClusterArn"])
    rds.enable_http_endpoint(ResourceArn=arn)
    secret = source.secret_arn
    if request.snapshot is not None:
        secret = secret or new_secret(target, new_id, source)
        set_master_password(target, new_id, secret)
        wait_until(
            lambda: cluster_status(rds, new_id), f"cluster {new_id}", deadline, console, poll
        )
    if secret is None:  # restore() refuses this before acting; kept for the type
        raise DeployError(f"no master secret to read {new_id} with")
    return arn, writer, secret


def restore(target: Any, request: Request, console: Console) -> dict[str, Any]:
    """The drill: restore, writer, Data API, control totals, RTO and RPO, the runbook."""
    check_request(request)
    started, began = time.monotonic(), datetime.datetime.now(datetime.UTC)
    deadline = started + request.timeout
    source = find_source(target, request)
    if request.snapshot is None and source.secret_arn is None:
        raise DeployError(
            f"stack {stack_name(request.suffix)} has no DBSecretArn output, so the restored "
            "cluster could not be read: deploy the stack, or restore a snapshot (--snapshot ID)"
        )
    new_id = new_cluster_id(request, began)
    origin = f"snapshot {request.snapshot}" if request.snapshot else (
        f"{request.cluster_id} at {iso(source.restore_point)}"
    )  # fmt: skip
    console.print(Text(f"restoring {origin} into a new cluster {new_id}"))
    arn, writer, secret = provision(target, request, source, new_id, deadline, console)
    poll = float(target.poll_seconds)
    restored = totals_when_ready(target, arn, secret, deadline, poll)
    rto = time.monotonic() - started
    old = None
    if source.cluster is not None and source.secret_arn is not None:
        old = totals_when_ready(
            target, source.cluster["DBClusterArn"], source.secret_arn, deadline, poll
        )
    point = source.restore_point
    return {
        "stack": stack_name(request.suffix),
        "account": target.account(),
        "region": target.region,
        "source": {"cluster": request.cluster_id, "snapshot": request.snapshot},
        "restored": {"cluster": new_id, "clusterArn": arn, "writer": writer, "secretArn": secret},
        "restorePoint": iso(point),
        "rpoSeconds": round(max(0.0, (began - point).total_seconds()), 1),
        "rtoSeconds": round(rto, 1),
        "controlTotals": {"restored": restored, "oldCluster": old},
        "totalsAgree": None if old is None else old == restored,
        "switchOver": switch_over(request, new_id),
    }
