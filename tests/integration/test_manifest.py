"""The migration manifest (issue 22 item 8) on the emulator: `loanstack migrate` writes one per
run under manifests/ of the documents bucket (and where --manifest says), with the evidence an
auditor checks: the operator, the function's code, the export's plain SHA-256 (what `sha256sum`
prints), each chunk's SHA-256 and S3 VersionId, control totals of the source and of the table,
every problem row's disposition; also when the run fails; and `loanstack verify --manifest`
checks it later against the export and the database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loanstack import cli
from loanstack.aws.outputs import read_stack
from loanstack.aws.target import EMULATOR_URL_VARIABLE, Target
from loanstack.emulator import Emulator, awslambda
from loanstack.errors import DeployError
from loanstack.ops import manifest, migrate
from loanstack.testing import loanbook
from tests.support.stacks import deploy_stack, destroy_stack

SUFFIX = "man42"


@pytest.fixture(scope="module")
def outputs(target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The module's own stack (its migrations write rows): it lives as long as this module."""
    yield deploy_stack(target, "dev", SUFFIX, Path(tmp_path_factory.mktemp("out")))
    destroy_stack(target, SUFFIX)


@pytest.fixture
def command(
    emulator: Emulator, target: Target, outputs: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Target:
    """`cli.main` pointed at this module's stack."""
    monkeypatch.setenv(EMULATOR_URL_VARIABLE, emulator.url)
    monkeypatch.setenv("LOANSTACK_OUTPUTS_FILE", str(target.outputs_file))
    monkeypatch.setenv("COLUMNS", "100")
    return target


def sql(target: Target, outputs: dict[str, str], statement: str) -> list[list[dict[str, Any]]]:
    reply = target.client("rds-data").execute_statement(
        resourceArn=outputs["DBClusterArn"],
        secretArn=outputs["DBSecretArn"],
        database="loans",
        sql=statement,
    )
    return list(reply.get("records", []))


def stored_manifests(target: Target, outputs: dict[str, str], mid: str) -> dict[str, bytes]:
    s3 = target.client("s3")
    bucket = outputs["LoanDocumentsBucketName"]
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{manifest.PREFIX}{mid}/")
    return {
        o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        for o in listed.get("Contents", [])
    }


def hash_total(ids: set[str]) -> str:
    total = sum(int(hashlib.sha256(i.encode()).hexdigest(), 16) for i in ids) % 2**256
    return f"{total:064x}"


def test_a_migration_writes_a_manifest_an_auditor_can_check_with_sha256sum(
    command: Target, outputs: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = command
    path = tmp_path / "book.csv"
    expected = loanbook.write_export(path, 1200, every=300, prefix="K")
    saved = tmp_path / "run.manifest.json"
    argv = ["migrate", str(path), "--chunk-rows", "500", "--output", "json"]
    assert cli.main([*argv, "--manifest", str(saved)]) == 0
    report = json.loads(capsys.readouterr().out)
    document = json.loads(saved.read_text())

    content = path.read_bytes()
    plain = hashlib.sha256(content).hexdigest()  # what `sha256sum book.csv` prints
    assert report["sha256"] == plain and report["bytes"] == len(content)
    assert report["migration"] == document["migration"]  # the id is still the tagged digest's
    assert report["migration"].startswith(hashlib.sha256(b"csv\0" + content).hexdigest()[:24])
    assert document["export"] == {
        "name": "book.csv",
        "format": "csv",
        "sha256": plain,
        "bytes": len(content),
        "chunkRows": 500,
    }
    assert document["outcome"] == "succeeded"
    assert document["operator"] == target.client("sts").get_caller_identity()["Arn"]
    assert document["startedAt"].endswith("Z") and document["startedAt"] <= document["endedAt"]
    assert document["tool"]["name"] == "loanstack" and document["tool"]["version"]
    assert document["tool"]["gitCommit"] is None or len(document["tool"]["gitCommit"]) == 40
    code = target.client("lambda").get_function(FunctionName=outputs["LoanValidationFunctionName"])[
        "Configuration"
    ]
    assert document["function"]["codeSha256"] == code["CodeSha256"]
    assert document["function"]["version"] == code["Version"]

    # each chunk: its bytes in S3, at the recorded version, hash to the recorded SHA-256
    s3, bucket = target.client("s3"), outputs["LoanDocumentsBucketName"]
    assert len(document["chunks"]) == report["chunks"] == 3
    for chunk in document["chunks"]:
        assert chunk["versionId"]
        body = s3.get_object(Bucket=bucket, Key=chunk["key"], VersionId=chunk["versionId"])
        assert hashlib.sha256(body["Body"].read()).hexdigest() == chunk["sha256"]

    # control totals: the source's loans and the table's agree, computed independently here
    totals = document["controlTotals"]
    assert totals["source"] == totals["recorded"]
    assert totals["source"]["rows"] == len(expected.loan_ids)
    assert totals["source"]["loanIdHashTotal"] == hash_total(expected.loan_ids)
    [[amount]] = sql(
        target, outputs, "SELECT CAST(SUM(loan_amount) AS CHAR) FROM loan_decisions "
        "WHERE loan_id LIKE 'K-%'"
    )  # fmt: skip
    assert totals["recorded"]["loanAmount"] == amount["stringValue"]

    # every problem row by reference: the file the report names, at the SHA-256 the manifest
    # keeps, and what became of each decision's rows
    problems = document["problems"]
    listed = s3.get_object(Bucket=bucket, Key=problems["file"]["key"])["Body"].read()
    assert hashlib.sha256(listed).hexdigest() == problems["file"]["sha256"]
    assert len(listed) == problems["file"]["bytes"]
    rows = [json.loads(line) for line in listed.splitlines()]
    assert saved.with_suffix(".problems.jsonl").read_bytes() == listed  # beside the manifest
    assert (
        {p["line"]: p["decision"] for p in rows}
        == expected.problems
        == {
            p["line"]: p["decision"]
            for p in migrate.problems(
                migrate.stack_of(target, read_stack(target.outputs_file)), report
            )
        }
    )
    assert problems["rows"] == len(rows) == sum(d["rows"] for d in problems["byDecision"].values())
    assert problems["byDecision"]["INVALID"]["disposition"] == manifest.DISPOSITIONS["INVALID"]

    # the same document in S3 under manifests/, beside its summary for a person
    stored = stored_manifests(target, outputs, document["migration"])
    [json_key] = [k for k in stored if k.endswith(".manifest.json")]
    assert json.loads(stored[json_key]) == document
    summary = stored[json_key.removesuffix(".json") + ".txt"].decode()
    assert plain in summary and document["operator"] in summary

    # later: the manifest checks against the export and the database
    assert cli.main(["verify", str(path), "--manifest", str(saved)]) == 0
    assert "agrees with the export and the database" in capsys.readouterr().out

    # a repeated run finds the migration done, and records that run too, with the same chunks
    again = tmp_path / "again.manifest.json"
    assert cli.main([*argv, "--manifest", str(again)]) == 0
    capsys.readouterr()
    second = json.loads(again.read_text())
    assert second["startedAt"] > document["startedAt"]
    assert second["chunks"] == document["chunks"]
    assert second["controlTotals"] == document["controlTotals"]
    assert len(stored_manifests(target, outputs, document["migration"])) == 4  # 2 runs, 2 files


def test_verify_manifest_finds_a_changed_export_and_a_changed_amount(
    command: Target, outputs: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = command
    path = tmp_path / "book.csv"
    loanbook.write_export(path, 300, every=100, prefix="T")
    saved = tmp_path / "t.manifest.json"
    assert cli.main(["migrate", str(path), "--chunk-rows", "200", "--manifest", str(saved)]) == 0
    capsys.readouterr()

    changed = tmp_path / "changed" / "book.csv"
    changed.parent.mkdir()
    changed.write_bytes(path.read_bytes() + loanbook.row("T-9999999") + b"\n")
    assert cli.main(["verify", str(changed), "--manifest", str(saved), "--output", "json"]) == 1
    found = json.loads(capsys.readouterr().out)["manifest"]
    assert not found["agrees"]
    assert any("SHA-256" in d for d in found["disagreements"])

    # an amount changed in the table behind the function's back: the line's fingerprint column
    # still matches, only the control totals show it
    sql(target, outputs, "UPDATE loan_decisions SET loan_amount = loan_amount + 1 "
        "WHERE loan_id = 'T-0000001'")  # fmt: skip
    try:
        assert cli.main(["verify", str(path), "--manifest", str(saved), "--output", "json"]) == 1
        found = json.loads(capsys.readouterr().out)["manifest"]
        assert any(d.startswith("recorded control totals") for d in found["disagreements"])
    finally:
        sql(target, outputs, "UPDATE loan_decisions SET loan_amount = loan_amount - 1 "
            "WHERE loan_id = 'T-0000001'")  # fmt: skip


def test_a_failing_migration_still_writes_its_manifest(
    command: Target,
    outputs: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The wait for the chunks fails (as a timeout or a lost connection would, after the upload):
    exit 1, one line, and the manifest in S3 says what was uploaded and why the run stopped."""
    target = command
    path = tmp_path / "fail.csv"
    loanbook.write_export(path, 400, every=100, prefix="X")
    saved = tmp_path / "fail.manifest.json"

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise DeployError("3 of 3 chunks not decided after 1 s; run the same command again")

    monkeypatch.setattr(migrate, "wait", broken)
    assert cli.main(["migrate", str(path), "--chunk-rows", "200", "--manifest", str(saved)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "not decided after" in err
    document = json.loads(saved.read_text())
    assert document["outcome"] == "failed"
    assert document["error"].startswith("DeployError: 3 of 3 chunks not decided")
    assert len(document["chunks"]) == 3  # 404 data lines (400 rows, 4 blank), 200 a chunk
    assert all(c["versionId"] and c["sha256"] for c in document["chunks"])
    assert document["report"] is None and document["controlTotals"] is None
    assert document["export"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    stored = stored_manifests(target, outputs, document["migration"])
    assert [json.loads(v) for k, v in stored.items() if k.endswith(".json")] == [document]


def test_a_migration_whose_chunks_fail_records_their_disposition(
    command: Target,
    outputs: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every chunk ends in the dead-letter queue (the function fails on each, as with the
    database gone): exit 1, and the manifest lists each failed chunk with its disposition."""
    path = tmp_path / "dead.csv"
    loanbook.write_export(path, 200, every=100, prefix="D")
    saved = tmp_path / "dead.manifest.json"
    monkeypatch.setenv("MOTO_LAMBDA_ASYNC_RETRY_SECONDS", "0.05")
    original_load = awslambda.load

    def failing(fn: Any) -> Any:
        module = original_load(fn)

        def handle(event: Any, context: Any) -> Any:
            raise RuntimeError("database unavailable")

        module.__dict__["__handler__"] = handle
        return module

    monkeypatch.setattr(awslambda, "load", failing)
    argv = ["migrate", str(path), "--chunk-rows", "150", "--timeout", "60"]
    assert cli.main([*argv, "--manifest", str(saved)]) == 1
    capsys.readouterr()
    document = json.loads(saved.read_text())
    assert document["outcome"] == "failed"
    assert len(document["failedChunks"]) == 2
    assert {c["disposition"] for c in document["failedChunks"]} == {manifest.FAILED_CHUNK}
    assert document["controlTotals"] is None  # not verified: the run did not complete


def test_an_interrupted_migration_writes_its_manifest(
    command: Target,
    outputs: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "stop.csv"
    loanbook.write_export(path, 200, every=100, prefix="S")
    saved = tmp_path / "stop.manifest.json"

    def ctrl_c(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(migrate, "wait", ctrl_c)
    assert cli.main(["migrate", str(path), "--chunk-rows", "150", "--manifest", str(saved)]) == 130
    assert "Traceback" not in capsys.readouterr().err
    document = json.loads(saved.read_text())
    assert document["outcome"] == "interrupted" and document["error"].startswith("Interrupted")
    assert len(document["chunks"]) == 2
