"""`loanstack restore`'s pure parts: what the new cluster copies from the old one, and the
requests refused before any call (the drill itself: tests/integration/test_restore_on_emulator.py)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from loanstack.errors import UsageError
from loanstack.ops import restore

KEY = "arn:aws:kms:us-east-1:123456789012:key/k"
OLD: dict[str, object] = {
    "DBSubnetGroup": "dbsubnets-prod42",
    "VpcSecurityGroups": [{"VpcSecurityGroupId": "sg-1", "Status": "active"}],
    "KmsKeyId": KEY,
    "ServerlessV2ScalingConfiguration": {"MinCapacity": 0.5, "MaxCapacity": 4.0},
    "DBClusterParameterGroup": "aurora-params-prod42",
    "EnabledCloudwatchLogsExports": ["audit", "error"],
    "IAMDatabaseAuthenticationEnabled": True,
    "CopyTagsToSnapshot": True,
    "BackupRetentionPeriod": 35,
}


def source(cluster: dict[str, Any] | None) -> restore.Source:
    now = datetime.datetime.now(datetime.UTC)
    return restore.Source("aurora-mysql", "8.0", KEY, "admin", now, cluster, None)


def test_the_new_cluster_copies_network_key_scaling_logs_and_retention() -> None:
    wanted = restore.settings(restore.Request("prod42", latest=True), source(OLD))
    assert wanted == {
        "DBSubnetGroupName": "dbsubnets-prod42",
        "VpcSecurityGroupIds": ["sg-1"],
        "KmsKeyId": KEY,
        "ServerlessV2ScalingConfiguration": {"MinCapacity": 0.5, "MaxCapacity": 4.0},
        "DBClusterParameterGroupName": "aurora-params-prod42",
        "EnableCloudwatchLogsExports": ["audit", "error"],
        "EnableIAMDatabaseAuthentication": True,
        "CopyTagsToSnapshot": True,
        "BackupRetentionPeriod": 35,
    }


def test_after_a_destroy_the_given_network_is_used() -> None:
    request = restore.Request(
        "prod42", snapshot="s", subnet_group="other", security_groups=["sg-9"]
    )
    wanted = restore.settings(request, source(None))
    assert wanted == {
        "DBSubnetGroupName": "other",
        "VpcSecurityGroupIds": ["sg-9"],
        "KmsKeyId": KEY,
    }


@pytest.mark.parametrize(
    ("request_", "said"),
    [
        (restore.Request("prod42"), "exactly one of"),
        (restore.Request("prod42", latest=True, snapshot="s"), "exactly one of"),
        (restore.Request("prod42", latest=True, new_cluster_id="1abc"), "starting with a letter"),
        (restore.Request("prod42", latest=True, new_cluster_id="a--b"), "no two hyphens"),
        (restore.Request("prod42", latest=True, new_cluster_id="a" * 64), "1 to 63"),
        (
            restore.Request("prod42", latest=True, new_cluster_id="aurora-loanprocessing-prod42"),
            "must differ",
        ),
    ],
)
def test_requests_rds_would_refuse_are_refused_first(request_: restore.Request, said: str) -> None:
    with pytest.raises(UsageError, match=said):
        restore.check_request(request_)


def test_default_identifiers_fit_rds_limits() -> None:
    request = restore.Request("p" * 28, latest=True)
    new = restore.new_cluster_id(request, datetime.datetime(2026, 11, 30, 9, 0, 0))
    restore.check_request(request)
    assert len(new) <= 63 and len(restore.writer_id(new)) <= 63
    assert restore.writer_id(new).endswith("-writer")
