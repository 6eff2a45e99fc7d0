"""The rotation function (D2) driven the way Secrets Manager drives it, against moto.

Secrets Manager's RotateSecret stages a new version id as AWSPENDING (no value yet), then calls
the function with the same token for createSecret, setSecret, testSecret and finishSecret.
`moto`'s rotate_secret without a Lambda ARN does exactly the staging part, so the tests call the
handler for each step themselves.

Where moto differs from AWS, the tests go around it:
- reading a secret without VersionStage can return a stale value: every read names the stage;
- put_secret_value with an existing token and a different value overwrites instead of failing:
  the tests assert createSecret never calls it twice (one version per rotation);
- a modify_db_cluster that fails validation removes the cluster from moto: failures of the RDS
  call are injected in front of moto instead of provoked inside it.
- moto applies a new master password at once and never reports it pending: the emulator's RDS
  patch (`loanstack.emulator.install`) is on, so a change pends for APPLY_SECONDS and then
  applies, as on Aurora;
- there is no MySQL server here: `login` is replaced by one that accepts exactly the password the
  emulated cluster has applied (the real handshake is tested against MariaDB in
  tests/integration/test_rotation_login.py).
Every assertion about the outcome reads the password from the emulated cluster, not the secret.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.backends import get_backend

from loanstack.emulator import install, rds
from tests.support.helpers import load_function

STEPS = ["createSecret", "setSecret", "testSecret", "finishSecret"]
CLUSTER = "aurora-loanprocessing-dev42"
ACCOUNT, REGION = "123456789012", "us-east-1"
OLD_PASSWORD = "initial-password-0001"
EXCLUDED = " \"'`@/\\$&;|<>(){}[]*?!#%^~,:="

rotation = load_function("secret_rotation")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "EXCLUDE_CHARACTERS": EXCLUDED,
        "FIRST_POLL_SECONDS": "0.02",
        "ROLLBACK_RESERVE_SECONDS": "4",
        rds.APPLY_SECONDS_VARIABLE: "0.1",
    }.items():
        monkeypatch.setenv(key, value)
    install()
    monkeypatch.setattr(rotation, "login", cluster_login)
    with mock_aws():
        yield


def cluster_login(secret: dict[str, Any], **_: Any) -> None:
    """The login the cluster would answer: its applied master password, nothing else."""
    if secret["password"] != cluster_password():
        raise rotation.LoginRefused("MySQL error 1045: Access denied for user 'loanadmin'")


class Context:
    """Lambda's context: the time the invocation has left."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@pytest.fixture
def secret_arn(aws: None) -> str:
    """A cluster and its attached secret, as the template deploys them."""
    boto3.client("rds").create_db_cluster(
        DBClusterIdentifier=CLUSTER,
        Engine="aurora-mysql",
        MasterUsername="loanadmin",
        MasterUserPassword=OLD_PASSWORD,
    )
    value = {
        "engine": "mysql",
        "host": f"{CLUSTER}.cluster-x.{REGION}.rds.amazonaws.com",
        "port": 3306,
        "username": "loanadmin",
        "password": OLD_PASSWORD,
        "dbClusterIdentifier": CLUSTER,
    }
    sm = boto3.client("secretsmanager")
    return str(sm.create_secret(Name="secret-aurora-dev42", SecretString=json.dumps(value))["ARN"])


def start_rotation(arn: str, copy_current: bool = False) -> str:
    """What RotateSecret does before the first step: enable rotation, stage a new version id.

    moto's own rotate_secret, given no Lambda ARN, skips the steps and labels the new version
    AWSCURRENT at once, so the tests stage it in moto's backend the way AWS does: an AWSPENDING
    version with no value yet (or, for RotateImmediately=false, a copy of the current value).
    """
    secret = get_backend("secretsmanager")[ACCOUNT][REGION].secrets[arn]
    secret.rotation_requested = secret.rotation_enabled = True
    secret.auto_rotate_after_days = 30
    token = str(uuid.uuid4())
    version: dict[str, Any] = {
        "createdate": int(time.time()),
        "version_id": token,
        "version_stages": ["AWSPENDING"],
    }
    if copy_current:
        version["secret_string"] = secret.secret_string
    secret.remove_version_stages_from_old_versions(["AWSPENDING"])
    secret.versions[token] = version
    return token


def step(arn: str, token: str, name: str, seconds: float = 30) -> None:
    event = {"SecretId": arn, "ClientRequestToken": token, "Step": name}
    rotation.handler(event, Context(seconds))


def cluster_password() -> str:
    """What the emulated cluster accepts now (a change whose time has come is applied first)."""
    return rds.master_password(ACCOUNT, REGION, CLUSTER)


def settled_cluster_password() -> str:
    """The password once any change in flight has applied."""
    cluster = get_backend("rds")[ACCOUNT][REGION].clusters[CLUSTER]
    change = getattr(cluster, "password_change", None)
    if change:
        time.sleep(max(0.0, change[0] - time.monotonic()))
    return cluster_password()


def secret_value(arn: str, stage: str) -> dict[str, Any]:
    sm = boto3.client("secretsmanager")
    return dict(json.loads(sm.get_secret_value(SecretId=arn, VersionStage=stage)["SecretString"]))


def versions(arn: str) -> dict[str, list[str]]:
    return dict(boto3.client("secretsmanager").describe_secret(SecretId=arn)["VersionIdsToStages"])


def assert_rotated(arn: str, token: str) -> None:
    current = secret_value(arn, "AWSCURRENT")
    assert cluster_password() == current["password"] != OLD_PASSWORD
    assert secret_value(arn, "AWSPREVIOUS")["password"] == OLD_PASSWORD
    assert "AWSCURRENT" in versions(arn)[token]
    assert {k: v for k, v in current.items() if k != "password"} == {
        k: v for k, v in secret_value(arn, "AWSPREVIOUS").items() if k != "password"
    }


def test_r10_full_rotation_leaves_cluster_password_equal_to_awscurrent(secret_arn: str) -> None:
    token = start_rotation(secret_arn)
    for name in STEPS:
        step(secret_arn, token, name)
    assert_rotated(secret_arn, token)


def test_r10_new_password_is_long_and_avoids_excluded_characters(secret_arn: str) -> None:
    token = start_rotation(secret_arn)
    for name in STEPS:
        step(secret_arn, token, name)
    password = secret_value(secret_arn, "AWSCURRENT")["password"]
    assert len(password) == 32
    assert not set(password) & set(EXCLUDED)


def test_r10_each_step_run_twice_gives_the_same_end_state(secret_arn: str) -> None:
    token = start_rotation(secret_arn)
    for name in STEPS:
        step(secret_arn, token, name)
        step(secret_arn, token, name)
    assert_rotated(secret_arn, token)
    assert len(versions(secret_arn)) == 2, "one new version per rotation, never two"


@pytest.mark.parametrize("done", range(1, len(STEPS) + 1))
def test_r10_interrupted_rotation_restarted_with_same_token_completes(
    secret_arn: str, done: int
) -> None:
    token = start_rotation(secret_arn)
    for name in STEPS[:done]:
        step(secret_arn, token, name)
    first_pending = secret_value(secret_arn, "AWSCURRENT" if done == 4 else "AWSPENDING")[
        "password"
    ]
    for name in STEPS:
        step(secret_arn, token, name)
    assert_rotated(secret_arn, token)
    assert secret_value(secret_arn, "AWSCURRENT")["password"] == first_pending


class RejectingRds:
    """An RDS client whose ModifyDBCluster is refused, as AWS does for a busy cluster."""

    def __init__(self) -> None:
        self.real = boto3.client("rds")

    def describe_db_clusters(self, **kwargs: Any) -> Any:
        return self.real.describe_db_clusters(**kwargs)

    def modify_db_cluster(self, **kwargs: Any) -> Any:
        error = {"Error": {"Code": "InvalidDBClusterStateFault", "Message": "cluster is busy"}}
        raise ClientError(error, "ModifyDBCluster")


def test_r10_failed_set_secret_is_raised_logged_and_retry_completes(
    secret_arn: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    token = start_rotation(secret_arn)
    step(secret_arn, token, "createSecret")
    with monkeypatch.context() as patched:
        patched.setattr(rotation, "rds_client", RejectingRds)
        with (
            caplog.at_level(logging.ERROR),
            pytest.raises(ClientError, match="InvalidDBClusterStateFault"),
        ):
            step(secret_arn, token, "setSecret")
    assert cluster_password() == secret_value(secret_arn, "AWSCURRENT")["password"] == OLD_PASSWORD
    logged = caplog.text
    assert "setSecret" in logged and secret_arn in logged
    for name in STEPS:  # Secrets Manager retries the rotation with the same token
        step(secret_arn, token, name)
    assert_rotated(secret_arn, token)


def assert_database_on_awscurrent(arn: str) -> None:
    """SPEC D2's invariant, read from the emulated cluster once nothing is in flight."""
    assert settled_cluster_password() == secret_value(arn, "AWSCURRENT")["password"]


def test_d2_set_secret_that_runs_out_of_time_puts_the_database_back_on_awscurrent(
    secret_arn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11, case 1: the cluster applies the change after setSecret stopped waiting.

    Before: setSecret returned at once, testSecret gave up, the database kept the pending
    password while AWSCURRENT held the old one."""
    monkeypatch.setenv(rds.APPLY_SECONDS_VARIABLE, "1.0")
    token = start_rotation(secret_arn)
    step(secret_arn, token, "createSecret")
    with pytest.raises(TimeoutError, match="setSecret: the password does not open"):
        step(secret_arn, token, "setSecret", seconds=4.5)  # 0.9 s forward, 3.6 s for rollback
    assert_database_on_awscurrent(secret_arn)
    assert cluster_password() == OLD_PASSWORD
    assert versions(secret_arn)[token] == ["AWSPENDING"], "not APPLIED, still pending"
    for name in STEPS:  # Secrets Manager retries with the same token and enough time
        step(secret_arn, token, name)
    assert_rotated(secret_arn, token)


def test_d2_test_secret_without_set_secret_fails_and_finish_secret_refuses(
    secret_arn: str,
) -> None:
    """Issue 11, case 2: createSecret, testSecret, finishSecret without setSecret.

    Before: testSecret only watched the cluster's status and finishSecret promoted a password
    the database never received."""
    token = start_rotation(secret_arn)
    step(secret_arn, token, "createSecret")
    with pytest.raises(TimeoutError, match="testSecret: the password does not open"):
        step(secret_arn, token, "testSecret", seconds=4.5)
    with pytest.raises(ValueError, match="never applied to the cluster by setSecret"):
        step(secret_arn, token, "finishSecret")
    assert "AWSCURRENT" not in versions(secret_arn)[token]
    assert_database_on_awscurrent(secret_arn)
    assert cluster_password() == OLD_PASSWORD


def test_d2_finish_secret_never_moves_awscurrent_onto_a_version_without_a_value(
    secret_arn: str,
) -> None:
    """Issue 11, case 3: before, finishSecret on a fresh AWSPENDING (no value) moved AWSCURRENT
    onto it and every read of AWSCURRENT failed."""
    token = start_rotation(secret_arn)
    with pytest.raises(ValueError, match="never applied"):
        step(secret_arn, token, "finishSecret")
    assert secret_value(secret_arn, "AWSCURRENT")["password"] == OLD_PASSWORD
    assert_database_on_awscurrent(secret_arn)


def test_d2_failed_test_after_set_secret_rolls_the_database_back(
    secret_arn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """setSecret applied the password; then the login with it fails (here: someone changed the
    password behind the rotation's back). testSecret restores AWSCURRENT's password and takes
    the APPLIED label away, so finishSecret refuses."""
    token = start_rotation(secret_arn)
    step(secret_arn, token, "createSecret")
    step(secret_arn, token, "setSecret")
    assert "APPLIED" in versions(secret_arn)[token]
    boto3.client("rds").modify_db_cluster(
        DBClusterIdentifier=CLUSTER, MasterUserPassword="out-of-band-0000", ApplyImmediately=True
    )
    assert settled_cluster_password() == "out-of-band-0000"
    with pytest.raises(TimeoutError, match="testSecret"):
        step(secret_arn, token, "testSecret", seconds=4.5)
    assert_database_on_awscurrent(secret_arn)
    assert "APPLIED" not in versions(secret_arn)[token]
    with pytest.raises(ValueError, match="never applied"):
        step(secret_arn, token, "finishSecret")


def assert_database_on_awscurrent_or_finishable(arn: str, token: str) -> None:
    """Between steps the database holds AWSCURRENT's password, or the pending one and then the
    pending version is labelled APPLIED (finishSecret, or `loanstack rotate`, completes it)."""
    in_database = settled_cluster_password()
    if in_database != secret_value(arn, "AWSCURRENT")["password"]:
        assert in_database == secret_value(arn, "AWSPENDING")["password"]
        assert "APPLIED" in versions(arn)[token]


@pytest.mark.parametrize(
    "order",
    [
        ["setSecret", "createSecret", "finishSecret", "testSecret"],
        ["createSecret", "finishSecret", "setSecret", "testSecret"],
        ["testSecret", "createSecret", "testSecret", "finishSecret"],
        ["createSecret", "setSecret", "createSecret", "setSecret", "finishSecret"],
    ],
)
def test_d2_steps_out_of_order_never_part_the_database_from_awscurrent(
    secret_arn: str, order: list[str]
) -> None:
    token = start_rotation(secret_arn)
    for name in order:
        # a refused step is fine; what matters is the state it leaves
        with contextlib.suppress(ValueError, TimeoutError, ClientError):
            step(secret_arn, token, name, seconds=4.5)
        assert_database_on_awscurrent_or_finishable(secret_arn, token)
    for name in STEPS:
        step(secret_arn, token, name)
    assert_rotated(secret_arn, token)


def test_d2_wrong_token_changes_nothing(secret_arn: str) -> None:
    token = start_rotation(secret_arn)
    step(secret_arn, token, "createSecret")
    for name in STEPS:
        with pytest.raises(ValueError, match="has no stage"):
            step(secret_arn, str(uuid.uuid4()), name)
    assert_database_on_awscurrent(secret_arn)
    assert cluster_password() == OLD_PASSWORD


def test_r10_set_secret_waits_for_the_cluster_to_apply_the_change(
    secret_arn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(rds.APPLY_SECONDS_VARIABLE, "0.5")
    token = start_rotation(secret_arn)
    step(secret_arn, token, "createSecret")
    started = time.monotonic()
    step(secret_arn, token, "setSecret")
    assert time.monotonic() - started >= 0.5
    assert cluster_password() == secret_value(secret_arn, "AWSPENDING")["password"]


class LostReplyRds(RejectingRds):
    """The first ModifyDBCluster takes the change, then its reply is lost (a read timeout)."""

    calls = 0

    def modify_db_cluster(self, **kwargs: Any) -> Any:
        from botocore.exceptions import ReadTimeoutError

        LostReplyRds.calls += 1
        reply = self.real.modify_db_cluster(**kwargs)
        if LostReplyRds.calls == 1:
            raise ReadTimeoutError(endpoint_url="https://rds.us-east-1.amazonaws.com")
        return reply


def test_d2_a_lost_reply_to_modify_db_cluster_is_rolled_back(
    secret_arn: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    token = start_rotation(secret_arn)
    step(secret_arn, token, "createSecret")
    with monkeypatch.context() as patched, caplog.at_level(logging.WARNING):
        patched.setattr(rotation, "rds_client", LostReplyRds)
        with pytest.raises(Exception, match="Read timeout"):
            step(secret_arn, token, "setSecret")
    assert LostReplyRds.calls == 2, "the change, then the rollback"
    assert "back on AWSCURRENT's password" in caplog.text and "rollback failed" not in caplog.text
    assert_database_on_awscurrent(secret_arn)
    assert cluster_password() == OLD_PASSWORD


class SettlingRds:
    """Reports the change as pending twice, then applied."""

    def __init__(self) -> None:
        self.calls = 0

    def describe_db_clusters(self, **kwargs: Any) -> Any:
        self.calls += 1
        pending = {"MasterUserPassword": "****"} if self.calls <= 2 else {}
        status = "resetting-master-credentials" if pending else "available"
        return {"DBClusters": [{"Status": status, "PendingModifiedValues": pending}]}


def test_r10_a_settled_cluster_takes_two_settled_observations(aws: None) -> None:
    rds = SettlingRds()
    rotation.wait_until_settled(rds, CLUSTER, "setSecret", time.monotonic() + 5)
    assert rds.calls == 4


def test_r10_waiting_for_a_busy_cluster_is_bounded(aws: None) -> None:
    class Stuck:
        def describe_db_clusters(self, **kwargs: Any) -> Any:
            pending = {"MasterUserPassword": "****"}
            return {
                "DBClusters": [
                    {"Status": "resetting-master-credentials", "PendingModifiedValues": pending}
                ]
            }

    started = time.monotonic()
    with pytest.raises(TimeoutError, match=f"{CLUSTER}.*resetting-master-credentials"):
        rotation.wait_until_settled(Stuck(), CLUSTER, "setSecret", started + 0.3)
    assert time.monotonic() - started < 1


def test_r10_deploy_time_test_of_the_setup_passes(secret_arn: str) -> None:
    """RotateImmediatelyOnUpdate false: Secrets Manager stages a copy of current, runs testSecret."""
    token = start_rotation(secret_arn, copy_current=True)
    step(secret_arn, token, "testSecret")
    assert cluster_password() == OLD_PASSWORD


def test_r10_unknown_step_is_refused(secret_arn: str) -> None:
    token = start_rotation(secret_arn)
    with pytest.raises(ValueError, match="unknown rotation step 'dropTable'"):
        step(secret_arn, token, "dropTable")


def test_r10_token_without_a_stage_is_refused(secret_arn: str) -> None:
    start_rotation(secret_arn)
    with pytest.raises(ValueError, match="has no stage"):
        step(secret_arn, "00000000-0000-4000-8000-000000000000", "createSecret")


def test_r10_rotation_disabled_is_refused(secret_arn: str) -> None:
    token = next(iter(versions(secret_arn)))
    with pytest.raises(ValueError, match="not enabled for rotation"):
        step(secret_arn, token, "createSecret")


def test_r10_token_that_is_neither_current_nor_pending_is_refused(secret_arn: str) -> None:
    first = start_rotation(secret_arn)
    for name in STEPS:
        step(secret_arn, first, name)
    previous = next(v for v, stages in versions(secret_arn).items() if "AWSPREVIOUS" in stages)
    with pytest.raises(ValueError, match="not AWSPENDING"):
        step(secret_arn, previous, "setSecret")


def test_r10_current_token_is_a_no_op(secret_arn: str) -> None:
    token = start_rotation(secret_arn)
    for name in STEPS:
        step(secret_arn, token, name)
    password = cluster_password()
    step(secret_arn, token, "setSecret")
    assert cluster_password() == password


def test_r10_secret_not_attached_to_a_cluster_is_refused(aws: None) -> None:
    sm = boto3.client("secretsmanager")
    arn = sm.create_secret(
        Name="x", SecretString=json.dumps({"username": "u", "password": OLD_PASSWORD})
    )["ARN"]
    token = start_rotation(arn)
    step(arn, token, "createSecret")
    with pytest.raises(ValueError, match="dbClusterIdentifier"):
        step(arn, token, "setSecret")
