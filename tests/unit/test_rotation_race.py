"""D2 under concurrency: steps of one rotation that overlap never promote a password the
database does not have, so the Data API (which logs in with AWSCURRENT) is never locked out.

The red team's race: testSecret fails and rolls the database back to AWSCURRENT's password while
a replayed setSecret of the same token, which saw the pending password open the writer just
before, labels the version APPLIED again; finishSecret then trusted the label. The interleaving
is reproduced exactly by running the rollback inside the replayed setSecret's login.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from tests.unit import test_secret_rotation as base
from tests.unit.test_secret_rotation import (
    OLD_PASSWORD,
    Context,
    cluster_login,
    rotation,
    secret_value,
    settled_cluster_password,
    start_rotation,
    step,
    versions,
)

aws, secret_arn = base.aws, base.secret_arn  # the rotation tests' fixtures


def assert_data_api_not_locked_out(arn: str) -> None:
    assert settled_cluster_password() == secret_value(arn, "AWSCURRENT")["password"]


def test_d2_a_rollback_racing_a_replayed_set_secret_never_gets_its_password_promoted(
    secret_arn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = start_rotation(secret_arn)
    step(secret_arn, token, "createSecret")
    step(secret_arn, token, "setSecret")
    pending = secret_value(secret_arn, "AWSPENDING")["password"]
    assert settled_cluster_password() == pending and "APPLIED" in versions(secret_arn)[token]
    phase = ["replay"]

    def racing_login(secret: dict[str, Any], **_: Any) -> None:
        if phase[0] == "replay" and secret["password"] == pending:
            # the replayed setSecret sees the pending password open the writer; before it labels
            # the version, a testSecret of the same token fails and rolls the database back
            phase[0] = "test"
            with pytest.raises(TimeoutError, match="testSecret"):
                step(secret_arn, token, "testSecret", seconds=4.5)
            phase[0] = "after"
            return
        if phase[0] == "test" and secret["password"] == pending:
            raise OSError("timed out")  # testSecret's logins fail on the way
        cluster_login(secret)

    monkeypatch.setattr(rotation, "login", racing_login)
    step(secret_arn, token, "setSecret")  # the replay: it labels APPLIED after the rollback
    assert phase[0] == "after"
    assert settled_cluster_password() == OLD_PASSWORD  # the rollback landed
    assert "APPLIED" in versions(secret_arn)[token]  # and the replay's label is back on
    with pytest.raises(ValueError, match="does not open the writer"):
        step(secret_arn, token, "finishSecret")
    assert secret_value(secret_arn, "AWSCURRENT")["password"] == OLD_PASSWORD
    assert "APPLIED" not in versions(secret_arn)[token]  # no label left to trust wrongly
    assert_data_api_not_locked_out(secret_arn)


def test_d2_a_rollback_follows_awscurrent_when_finish_secret_moved_it_meanwhile(
    secret_arn: str,
) -> None:
    """A rollback that began with the old AWSCURRENT (a testSecret still running) while
    finishSecret promoted the version puts the database on the promoted password, not the old."""
    started_with = secret_value(secret_arn, "AWSCURRENT")
    token = start_rotation(secret_arn)
    for name in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        step(secret_arn, token, name)
    secrets = boto3.client("secretsmanager")
    rotation.roll_back(secrets, secret_arn, token, started_with, rotation.Clock(Context(30)))
    assert secret_value(secret_arn, "AWSCURRENT")["password"] != OLD_PASSWORD
    assert_data_api_not_locked_out(secret_arn)


def test_d2_finish_secret_waits_out_a_writer_that_cannot_be_reached_yet(
    secret_arn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transport failure (a writer resuming or restarting) is not a refusal: finishSecret
    tries the login again and completes."""
    token = start_rotation(secret_arn)
    for name in ("createSecret", "setSecret", "testSecret"):
        step(secret_arn, token, name)
    failures = [OSError("connection refused")] * 2

    def flaky(secret: dict[str, Any], **_: Any) -> None:
        if failures:
            raise failures.pop()
        cluster_login(secret)

    monkeypatch.setattr(rotation, "login", flaky)
    step(secret_arn, token, "finishSecret")
    assert not failures and "AWSCURRENT" in versions(secret_arn)[token]
    assert_data_api_not_locked_out(secret_arn)
