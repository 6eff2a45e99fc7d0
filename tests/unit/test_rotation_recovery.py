"""The rotation function's own recovery step (SPEC D2): `recoverSecret`, which `loanstack rotate`
sends for an interrupted rotation that setSecret had not applied, puts the database back on
AWSCURRENT's password and clears AWSPENDING, so the tool needs no RDS permission of its own.
Driven against moto with the fixtures of test_secret_rotation (the emulated cluster's password
is the judge, not the secret)."""

from __future__ import annotations

import boto3
import pytest

from tests.unit.test_secret_rotation import CLUSTER as CLUSTER_ID
from tests.unit.test_secret_rotation import (  # noqa: F401 (fixtures)
    OLD_PASSWORD,
    aws,
    secret_arn,
    secret_value,
    settled_cluster_password,
    start_rotation,
    step,
    versions,
)


def test_d2_recover_secret_puts_the_database_back_and_clears_the_pending_version(
    secret_arn: str,  # noqa: F811
) -> None:
    """setSecret died after ModifyDBCluster, before it could label or roll back."""
    token = start_rotation(secret_arn)
    step(secret_arn, token, "createSecret")
    pending = secret_value(secret_arn, "AWSPENDING")["password"]
    boto3.client("rds").modify_db_cluster(
        DBClusterIdentifier=CLUSTER_ID, MasterUserPassword=pending, ApplyImmediately=True
    )
    assert settled_cluster_password() == pending
    step(secret_arn, token, "recoverSecret")
    assert (
        settled_cluster_password()
        == OLD_PASSWORD
        == secret_value(secret_arn, "AWSCURRENT")["password"]
    )
    assert "AWSPENDING" not in versions(secret_arn).get(token, [])
    assert "APPLIED" not in versions(secret_arn).get(token, [])


def test_d2_recover_secret_leaves_a_database_already_on_awscurrent_alone(
    secret_arn: str,  # noqa: F811
) -> None:
    token = start_rotation(secret_arn)
    step(secret_arn, token, "createSecret")
    step(secret_arn, token, "recoverSecret")
    assert settled_cluster_password() == OLD_PASSWORD
    assert "AWSPENDING" not in versions(secret_arn).get(token, [])


def test_d2_recover_secret_refuses_a_version_setsecret_applied(
    secret_arn: str,  # noqa: F811
) -> None:
    """Its password may be the database's: such a rotation is finished, never cleared."""
    token = start_rotation(secret_arn)
    step(secret_arn, token, "createSecret")
    step(secret_arn, token, "setSecret")
    pending = secret_value(secret_arn, "AWSPENDING")["password"]
    with pytest.raises(ValueError, match="was applied by setSecret: finish it"):
        step(secret_arn, token, "recoverSecret")
    assert settled_cluster_password() == pending
    assert {"AWSPENDING", "APPLIED"} <= set(versions(secret_arn)[token])
