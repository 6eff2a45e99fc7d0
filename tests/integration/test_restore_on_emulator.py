"""`loanstack restore` on the emulator (issue 22 item 7): a prod stack records loans through
`loanstack migrate`; the drill restores its cluster to the latest restorable time as a NEW
cluster with the same control totals as the migration's and the old cluster's, leaves the old
cluster untouched, and a later write to the old cluster is not in the new one (each cluster has
its own data); refused inputs answer in one line; after a prod destroy, the final snapshot
restores with the same totals. Through `cli.main`, as a user runs it.
"""

from __future__ import annotations

import contextlib
import io
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


def deployed(target: Target, suffix: str, out: Path) -> dict[str, str]:
    target.outputs_file = out / f"{suffix}.json"
    params = deploy.parameters_for("prod", suffix, {"AlarmEmail": "ops@example.com"})
    d = deploy.Deployment(target, "prod", suffix, params, Console(record=True, width=200))
    return deploy.deploy(d, confirm=lambda: True)


def cli_json(argv: list[str]) -> tuple[int, dict[str, Any], str]:
    """`cli.main` with stdout (the JSON document) and stderr (one-line refusals) captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    text = out.getvalue().strip()
    return code, (json.loads(text) if code == 0 and text.startswith("{") else {}), err.getvalue()


@contextlib.contextmanager
def pointed_at(emulator: Emulator, target: Target) -> Iterator[None]:
    """`cli.main` pointed at this module's emulator and the stack's outputs file."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(EMULATOR_URL_VARIABLE, emulator.url)
        patch.setenv("LOANSTACK_OUTPUTS_FILE", str(target.outputs_file))
        patch.setenv("COLUMNS", "200")
        yield


def migrate_loans(directory: Path, prefix: str) -> dict[str, Any]:
    """600 lines through `loanstack migrate`; the recorded control totals it reports."""
    path = directory / f"{prefix}.csv"
    loanbook.write_export(path, 600, every=200, prefix=prefix)
    problems = directory / f"{prefix}.problems.jsonl"  # not the working directory's default
    argv = ["migrate", str(path), "--chunk-rows", "200", "--problems", str(problems)]
    code, report, err = cli_json([*argv, "--output", "json"])
    assert code == 0 and awslambda_async.wait_idle(60), err
    return dict(report["verify"]["controlTotals"]["recorded"])


@pytest.fixture(scope="module")
def drill(
    emulator: Emulator, target: Target, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A prod stack with recorded loans, restored to the latest time into RESTORED; then a row
    deleted from the old cluster. Every test of the stack's drill reads this."""
    work = Path(tmp_path_factory.mktemp("drill"))
    outputs = deployed(target, SUFFIX, work)
    outputs_file = target.outputs_file
    with pointed_at(emulator, target):
        recorded = migrate_loans(work, "R")
        before = control_totals(target, outputs["DBClusterArn"], outputs["DBSecretArn"])
        argv = ["restore", "--suffix", SUFFIX, "--env", "prod", "--latest"]
        code, summary, err = cli_json([*argv, "--new-cluster-id", RESTORED, "--output", "json"])
    assert code == 0, err
    untouched = control_totals(target, outputs["DBClusterArn"], outputs["DBSecretArn"])
    sql(target, outputs["DBClusterArn"], outputs["DBSecretArn"],
        "DELETE FROM loan_decisions WHERE loan_id = 'R-0000002'")  # fmt: skip
    return {
        "outputs": outputs, "recorded": recorded, "before": before, "summary": summary,
        "err": err, "untouched": untouched, "outputsFile": outputs_file,
        "after": control_totals(target, outputs["DBClusterArn"], outputs["DBSecretArn"]),
    }  # fmt: skip


@pytest.fixture
def command(emulator: Emulator, target: Target, drill: dict[str, Any]) -> Iterator[Target]:
    """`cli.main` pointed at the drill's stack."""
    target.outputs_file = drill["outputsFile"]
    with pointed_at(emulator, target):
        yield target


def sql(target: Target, arn: str, secret: str, statement: str) -> list[Any]:
    reply = target.client("rds-data").execute_statement(
        resourceArn=arn, secretArn=secret, database="loans", sql=statement
    )
    return list(reply.get("records", []))


def test_restore_latest_brings_the_same_totals_into_a_new_cluster(
    target: Target, drill: dict[str, Any]
) -> None:
    outputs, summary, before = drill["outputs"], drill["summary"], drill["before"]
    assert drill["recorded"]["rows"] > 500
    assert f"target: local emulator {target.endpoint_url}, account {ACCOUNT_ID}" in drill["err"]
    assert summary["controlTotals"]["restored"] == drill["recorded"] == before
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
    assert new["EnabledCloudwatchLogsExports"] == old["EnabledCloudwatchLogsExports"]
    assert (
        new["ServerlessV2ScalingConfiguration"]["MaxCapacity"]
        == (old["ServerlessV2ScalingConfiguration"]["MaxCapacity"])
    )
    (writer,) = [m for m in new["DBClusterMembers"] if m["IsClusterWriter"]]
    assert writer["DBInstanceIdentifier"] == f"{RESTORED}-writer"
    assert {"EarliestRestorableTime", "LatestRestorableTime"} <= set(old)

    # the old cluster is untouched, and a write to it after the restore is not in the new one
    assert drill["untouched"] == before
    assert drill["after"]["rows"] == before["rows"] - 1
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
        (["--latest", "--env", "dev"], f"stack tapstack-{SUFFIX} is a prod stack, not --env dev"),
    ],
)
def test_refused_restores_answer_in_one_line(command: Target, extra: list[str], said: str) -> None:
    code, _, err = cli_json(["restore", "--suffix", SUFFIX, "--env", "prod", *extra])
    assert code in (1, 2)
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("target:")]
    assert len(lines) == 1 and said in lines[0], err
    assert "Traceback" not in err


def test_a_point_in_time_before_the_last_write_is_refused_by_the_emulator(
    command: Target,
) -> None:
    """The emulator keeps no transaction log: a RestoreToTime before the source's last write
    cannot be honoured, and it says so instead of restoring later data."""
    created = rds_backends[ACCOUNT_ID][REGION].clusters[CLUSTER].created
    when = created.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    code, _, err = cli_json(["restore", "--suffix", SUFFIX, "--env", "prod", "--to-time", when])
    assert code == 1 and "the emulator keeps no history" in err


def test_restore_from_the_final_snapshot_of_a_prod_destroy(
    emulator: Emulator, target: Target, tmp_path: Path
) -> None:
    """A stack of its own (the drill's stays for the other tests, in any order)."""
    suffix, cluster = "rst43", "aurora-loanprocessing-rst43"
    deployed(target, suffix, tmp_path)
    with pointed_at(emulator, target):
        recorded = migrate_loans(tmp_path, "S")
    # an operator turns prod's termination protection off before a destroy (test_stack_options)
    target.client("cloudformation").update_termination_protection(
        StackName=f"tapstack-{suffix}", EnableTerminationProtection=False
    )
    destroy(target, suffix, Console(record=True, width=200, file=io.StringIO()))
    rds = target.client("rds")
    (snapshot,) = [
        s["DBClusterSnapshotIdentifier"]
        for s in rds.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]
        if s["DBClusterIdentifier"] == cluster
    ]
    argv = ["restore", "--suffix", suffix, "--env", "prod", "--snapshot", snapshot]
    with pointed_at(emulator, target):
        code, summary, err = cli_json(
            [*argv, "--new-cluster-id", f"{cluster}-s1", "--output", "json"]
        )
    assert code == 0, err
    assert summary["controlTotals"]["restored"] == recorded
    assert summary["controlTotals"]["oldCluster"] is None and summary["totalsAgree"] is None
    assert summary["restored"]["secretArn"].split(":")[-1].startswith(f"restored/{cluster}-s1")


def test_the_text_report_names_rto_rpo_totals_and_the_runbook(command: Target) -> None:
    argv = ["restore", "--suffix", SUFFIX, "--env", "prod", "--latest"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main([*argv, "--new-cluster-id", f"{CLUSTER}-t2"]) == 0
    said = " ".join(out.getvalue().split())
    for words in (
        f"cluster {CLUSTER}-t2: available",
        "RPO of this drill",
        "RTO of this drill",
        "loan_decisions on the restored cluster:",
        "control totals agree",
        "rename swap",
    ):
        assert words in said, words
