"""The emulator shows Aurora's timing of a master password change (issue 11, item 6): after
ModifyDBCluster the change is pending for a configurable time, then applies everywhere at once;
the Data API's check refuses the old password from that moment."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from loanstack.emulator import ACCOUNT_ID, install
from loanstack.emulator import rds as rds_model
from loanstack.emulator.rdsdata import check_access
from loanstack.emulator.rdsdata_errors import DataApiError

REGION, CLUSTER = "us-east-1", "aurora-timing"


@pytest.fixture
def rds(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv(rds_model.APPLY_SECONDS_VARIABLE, "0.4")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    install()
    with mock_aws():
        client = boto3.client("rds", region_name=REGION)
        client.create_db_cluster(
            DBClusterIdentifier=CLUSTER,
            Engine="aurora-mysql",
            MasterUsername="loanadmin",
            MasterUserPassword="old-password-0001",
        )
        yield client


def described(rds: Any) -> dict[str, Any]:
    return dict(rds.describe_db_clusters(DBClusterIdentifier=CLUSTER)["DBClusters"][0])


def test_d2_a_password_change_is_pending_then_applies(rds: Any) -> None:
    reply = rds.modify_db_cluster(
        DBClusterIdentifier=CLUSTER, MasterUserPassword="new-password-0002", ApplyImmediately=True
    )["DBCluster"]
    assert reply["Status"] == "resetting-master-credentials"
    assert reply["PendingModifiedValues"] == {"MasterUserPassword": "****"}
    assert described(rds)["Status"] == "resetting-master-credentials"
    assert rds_model.master_password(ACCOUNT_ID, REGION, CLUSTER) == "old-password-0001"
    time.sleep(0.5)
    after = described(rds)
    assert after["Status"] == "available" and not after.get("PendingModifiedValues")
    assert rds_model.master_password(ACCOUNT_ID, REGION, CLUSTER) == "new-password-0002"


def test_d2_the_change_applies_on_time_even_when_nobody_looks(rds: Any) -> None:
    rds.modify_db_cluster(
        DBClusterIdentifier=CLUSTER, MasterUserPassword="new-password-0002", ApplyImmediately=True
    )
    time.sleep(0.6)  # the emulator's timer applied it; no read triggered it
    from moto.rds.models import rds_backends

    cluster = rds_backends[ACCOUNT_ID][REGION].clusters[CLUSTER]
    assert cluster._master_user_password == "new-password-0002"


def test_d2_a_second_change_is_refused_while_one_is_pending(rds: Any) -> None:
    rds.modify_db_cluster(
        DBClusterIdentifier=CLUSTER, MasterUserPassword="new-password-0002", ApplyImmediately=True
    )
    with pytest.raises(rds.exceptions.InvalidDBClusterStateFault):
        rds.modify_db_cluster(
            DBClusterIdentifier=CLUSTER,
            MasterUserPassword="new-password-0003",
            ApplyImmediately=True,
        )


def test_d2_the_data_api_refuses_the_old_password_from_the_moment_the_change_applies(
    rds: Any,
) -> None:
    from moto.rds.models import rds_backends

    rds_backends[ACCOUNT_ID][REGION].clusters[CLUSTER]._enable_http_endpoint = True
    sm = boto3.client("secretsmanager", region_name=REGION)
    arn = sm.create_secret(
        Name="timing",
        SecretString=json.dumps({"username": "loanadmin", "password": "old-password-0001"}),
    )["ARN"]
    params = {
        "resourceArn": f"arn:aws:rds:{REGION}:{ACCOUNT_ID}:cluster:{CLUSTER}",
        "secretArn": arn,
    }
    rds.modify_db_cluster(
        DBClusterIdentifier=CLUSTER, MasterUserPassword="new-password-0002", ApplyImmediately=True
    )
    check_access(ACCOUNT_ID, REGION, params)  # pending: the old password still opens it
    time.sleep(0.5)
    with pytest.raises(DataApiError, match="Access denied for user 'loanadmin'"):
        check_access(ACCOUNT_ID, REGION, params)


def test_d2_the_delay_is_configurable(rds: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(rds_model.APPLY_SECONDS_VARIABLE, "0")
    rds.modify_db_cluster(
        DBClusterIdentifier=CLUSTER, MasterUserPassword="new-password-0002", ApplyImmediately=True
    )
    assert rds_model.master_password(ACCOUNT_ID, REGION, CLUSTER) == "new-password-0002"
