"""`loanstack restore` on the emulator (issue 22 item 7): a prod stack records loans through
`loanstack migrate`; the drill restores its cluster to the latest restorable time as a NEW
cluster with the same control totals as the migration's and the old cluster's, leaves the old
cluster untouched, and a later write to the old cluster is not in the new one (each cluster has
its own data); refused inputs answer in one line; after a prod destroy, the final snapshot
restores with the same totals. Through `cli.main`, as a user runs it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.rds.models import rds_backends
from rich.console import Console

from loanstack import cli
from loanstack.aws.target import EMULATOR_URL_VARIABLE, Target
from loanstack.emulator import ACCOUNT_ID, Emulator, awslambda_async
from loanstack.ops.restore import control_totals
from loanstack.stack import deploy
from loanstack.stack.destroy import destroy
from loanstack.testing import loanbook

SUFFIX = "rst42"
REGION = "us-east-1"
CLUSTER = f"aurora-loanprocessing-{SUFFIX}"
RESTORED = f"{CLUSTER}-r1"


@pytest.fixture(scope="module")
def outputs(target: Target, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A prod stack for the module (destroyed by the last test, which restores its snapshot)."""
    target.outputs_file = Path(tmp_path_factory.mktemp("out")) / f"{SUFFIX}.json"
    params = deploy.parameters_for("prod", SUFFIX, {"AlarmEmail": "ops@example.com"})
    d = deploy.Deployment(target, "prod", SUFFIX, params, Console(record=True, width=200))
    return deploy.deploy(d, confirm=lambda: True)


@pytest.fixture
def command(
    emulator: Emulator, target: Target, outputs: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Target]:
    """`cli.main` pointed at this module's emulator and stack."""
    monkeypatch.setenv(EMULATOR_URL_VARIABLE, emulator.url)
    monkeypatch.setenv("LOANSTACK_OUTPUTS_FILE", str(target.outputs_file))
    monkeypatch.setenv("COLUMNS", "200")
    yield target


@pytest.fixture(scope="module")
def migrated() -> dict[str, Any]:
    """The migration's report (its recorded control totals), filled by the first test."""
    return {}


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any], str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    out = captured.out.strip()
    return code, (json.loads(out) if code == 0 and out.startswith("{") else {}), captured.err


def sql(target: Target, arn: str, secret: str, statement: str) -> list[Any]:
    reply = target.client("rds-data").execute_statement(
        resourceArn=arn, secretArn=secret, database="loans", sql=statement
    )
    return list(reply.get("records", []))


def test_restore_latest_brings_the_same_totals_into_a_new_cluster(
    command: Target,
    outputs: dict[str, str],
    migrated: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = command
    path = tmp_path / "book.csv"
    loanbook.write_export(path, 600, every=200, prefix="R")
    code, report, _ = run(["migrate", str(path), "--chunk-rows", "200", "--output", "json"], capsys)
    assert code == 0 and awslambda_async.wait_idle(60)
    recorded = report["verify"]["controlTotals"]["recorded"]
    assert recorded["rows"] > 500
    migrated.update(recorded)
    before = control_totals(target, outputs["DBClusterArn"], outputs["DBSecretArn"])

    argv = ["restore", "--suffix", SUFFIX, "--env", "prod", "--latest"]
    code, summary, err = run([*argv, "--new-cluster-id", RESTORED, "--output", "json"], capsys)
    assert code == 0, err
    assert f"target: local emulator {target.endpoint_url}, account {ACCOUNT_ID}" in err
    assert summary["controlTotals"]["restored"] == recorded == before
    assert summary["controlTotals"]["oldCluster"] == before and summary["totalsAgree"] is True
    assert summary["restored"]["cluster"] == RESTORED and summary["rtoSeconds"] > 0
    assert summary["rpoSeconds"] >= 0 and summary["restorePoint"].endswith("Z")
    assert any("rename" in line for line in summary["switchOver"])

    rds = target.client("rds")
    old = rds.describe_db_clusters(DBClusterIdentifier=CLUSTER)["DBClusters"][0]
    new = rds.describe_db_clusters(DBClusterIdentifier=RESTORED)["DBClusters"][0]
    for key in ("DBSubnetGroup", "KmsKeyId", "EngineVersion", "DBClusterParameterGroup"):
        assert new[key] == old[key], key
    assert new["VpcSecurityGroups"] == old["VpcSecurityGroups"]
    assert (
        new["ServerlessV2ScalingConfiguration"]["MaxCapacity"]
        == (old["ServerlessV2ScalingConfiguration"]["MaxCapacity"])
    )
    (writer,) = [m for m in new["DBClusterMembers"] if m["IsClusterWriter"]]
    assert writer["DBInstanceIdentifier"] == f"{RESTORED}-writer"
    assert {"EarliestRestorableTime", "LatestRestorableTime"} <= set(old)

    # the old cluster is untouched, and a write to it after the restore is not in the new one
    assert control_totals(target, outputs["DBClusterArn"], outputs["DBSecretArn"]) == before
    sql(target, outputs["DBClusterArn"], outputs["DBSecretArn"],
        "UPDATE loan_decisions SET decision = 'REJECTED' WHERE loan_id = 'R-0000001'")  # fmt: skip
    sql(target, outputs["DBClusterArn"], outputs["DBSecretArn"],
        "DELETE FROM loan_decisions WHERE loan_id = 'R-0000002'")  # fmt: skip
    after = control_totals(target, outputs["DBClusterArn"], outputs["DBSecretArn"])
    assert after["rows"] == before["rows"] - 1
    restored_now = control_totals(target, new["DBClusterArn"], outputs["DBSecretArn"])
    assert restored_now == before, "the restored cluster shares data with the old one"
    count = "SELECT COUNT(*) FROM loan_decisions WHERE loan_id = 'R-0000002'"
    assert sql(target, new["DBClusterArn"], outputs["DBSecretArn"], count)[0][0]["longValue"] == 1


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--latest", "--new-cluster-id", RESTORED], f"DB cluster {RESTORED} already exists"),
        (["--to-time", "2020-01-01T00:00:00Z"], "outside the restorable window"),
        (["--to-time", "2020-01-01T00:00:00Z", "--new-cluster-id", "9bad"], "--new-cluster-id"),
        (["--to-time", "yesterday"], "not an ISO 8601 time"),
        (["--latest", "--db-subnet-group", "no-such-group"], "no-such-group"),
        (["--snapshot", "no-such-snapshot"], "no cluster snapshot no-such-snapshot"),
        (["--latest", "--switch"], "no change set can point the stack at a restored cluster"),
    ],
)
def test_refused_restores_answer_in_one_line(
    command: Target,
    extra: list[str],
    said: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(["restore", "--suffix", SUFFIX, "--env", "prod", *extra], capsys)
    assert code in (1, 2)
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("target:")]
    assert len(lines) == 1 and said in lines[0], err
    assert "Traceback" not in err


def test_a_point_in_time_before_the_last_write_is_refused_by_the_emulator(
    command: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    """The emulator keeps no transaction log: a RestoreToTime before the source's last write
    cannot be honoured, and it says so instead of restoring later data."""
    created = rds_backends[ACCOUNT_ID][REGION].clusters[CLUSTER].created
    when = created.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    code, _, err = run(["restore", "--suffix", SUFFIX, "--env", "prod", "--to-time", when], capsys)
    assert code == 1 and "the emulator keeps no history" in err


def test_restore_from_the_final_snapshot_of_a_prod_destroy(
    command: Target, outputs: dict[str, str], migrated: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    target = command
    rds = target.client("rds")
    # the drill's cluster goes first: the stack's subnet group cannot go while it is in use
    rds.delete_db_instance(DBInstanceIdentifier=f"{RESTORED}-writer", SkipFinalSnapshot=True)
    rds.delete_db_cluster(DBClusterIdentifier=RESTORED, SkipFinalSnapshot=True)
    before = control_totals(target, outputs["DBClusterArn"], outputs["DBSecretArn"])
    assert before["rows"] == migrated["rows"] - 1  # the first test deleted one
    assert awslambda_async.wait_idle(60)
    destroy(target, SUFFIX, Console(record=True, width=200))
    capsys.readouterr()  # what destroy said
    (snapshot,) = [
        s["DBClusterSnapshotIdentifier"]
        for s in rds.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]
        if s["DBClusterIdentifier"] == CLUSTER
    ]
    argv = ["restore", "--suffix", SUFFIX, "--env", "prod", "--snapshot", snapshot]
    code, summary, err = run(
        [*argv, "--new-cluster-id", f"{CLUSTER}-s1", "--output", "json"], capsys
    )
    assert code == 0, err
    assert summary["controlTotals"]["restored"] == before
    assert summary["controlTotals"]["oldCluster"] is None and summary["totalsAgree"] is None
    assert summary["restored"]["secretArn"].split(":")[-1].startswith(f"restored/{CLUSTER}-s1")
