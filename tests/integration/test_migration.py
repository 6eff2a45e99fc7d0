"""`loanstack migrate` end to end on the emulator (SPEC D6): the dev stack deployed, a generated
export cut into chunks, S3 running the function on them concurrently, one merged report.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from loanstack.aws.outputs import read_stack
from loanstack.aws.target import EMULATOR_URL_VARIABLE, Target
from loanstack.emulator import Emulator, awslambda, awslambda_async
from loanstack.emulator.state import STATE
from loanstack.ops import migrate
from loanstack.ops.export import BATCH
from loanstack.stack import deploy
from loanstack.stack.destroy import destroy
from loanstack.testing import loanbook
from tests.support import stacks

REGION = "us-east-1"


@pytest.fixture(scope="module")
def outputs(target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The stack lives as long as this module."""
    target.outputs_file = Path(tmp_path_factory.mktemp("out")) / "mig42.json"
    d = deploy.Deployment(
        target,
        "dev",
        "mig42",
        deploy.parameters_for("dev", "mig42", {}),
        Console(record=True, width=200),
    )
    yield deploy.deploy(d, confirm=lambda: True)
    assert awslambda_async.wait_idle(60)
    # the emulator's backends outlive it in this process: leave no reservation behind
    destroy(target, "mig42", Console(record=True, width=200))


@pytest.fixture(scope="module")
def big_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, loanbook.Expected]:
    path = Path(tmp_path_factory.mktemp("export")) / "loanbook.csv"
    return path, loanbook.write_export(path, 100_000)


def quiet() -> Console:
    return Console(record=True, width=200)


def stored_ids(target: Target, outputs: dict[str, str]) -> list[str]:
    """The loan ids the batch path stored (a batch file's rows carry its key as their source)."""
    return stacks.stored_ids(target, outputs, "source LIKE '%/incoming/%'")


def forget_after(
    target: Target, outputs: dict[str, str], stack: migrate.BatchPath, mid: str, kept: int
) -> None:
    """As if the migration had been stopped once its first `kept` chunks were uploaded, each
    decided by the function meanwhile: the later chunks gone with their reports and rows, and
    the merged report and problem file, which only a run that gets to the end writes."""
    for key in migrate.existing(stack, f"incoming/{mid}/"):
        if int(key.rsplit("part-", 1)[1].split(".")[0]) > kept:
            target.client("rds-data").execute_statement(
                resourceArn=outputs["DBClusterArn"],
                secretArn=outputs["DBSecretArn"],
                database="loans",
                sql="DELETE FROM loan_decisions WHERE source = :source",
                parameters=[
                    {"name": "source", "value": {"stringValue": f"s3://{stack.bucket}/{key}"}}
                ],
            )
            stack.s3.delete_object(Bucket=stack.bucket, Key=key)
    decided = {BATCH.report_key(f"incoming/{mid}/part-{n:05d}.csv") for n in range(1, kept + 1)}
    for key in migrate.existing(stack, f"reports/{mid}/"):
        if key not in decided:
            stack.s3.delete_object(Bucket=stack.bucket, Key=key)


def test_r11_d6_a_100000_row_export_gives_one_report_that_adds_up_to_the_file(
    target: Target,
    outputs: dict[str, str],
    big_export: tuple[Path, loanbook.Expected],
) -> None:
    path, expected = big_export
    stack = migrate.stack_of(target, read_stack(target.outputs_file))
    report = migrate.migrate(path, stack, quiet(), migrate.Options(chunk_rows=10_000))
    assert report["chunks"] == 11  # 100,000 rows and 100 blank lines, 10,000 lines a chunk
    assert report["rows"] == expected.rows == 100_000
    assert report["summary"] == dict(expected.summary)
    listed = list(migrate.problems(stack, report))
    assert {p["line"]: p["decision"] for p in listed} == expected.problems
    assert [p["line"] for p in listed] == sorted(expected.problems)  # in export line order
    assert report["problemsFile"]["rows"] == len(listed)
    assert report["firstProblems"] == listed[: migrate.SHOWN]
    assert report["failedChunks"] == []
    assert report["sortedByLoanId"] is True  # issue 23 item 15: the generated ids are in order
    lines = path.read_bytes().split(b"\n")
    for problem in listed:
        text = lines[problem["line"] - 1]
        if "loanId" in problem and problem["decision"] != "CONFLICT":
            assert text.startswith(problem["loanId"].encode() + b","), problem
    # the function ran chunks side by side, up to the dev stack's reserved concurrency (10)
    arn = outputs["LoanValidationFunctionArn"]
    assert 1 < STATE.invocations.peak[arn] <= 10
    ids = stored_ids(target, outputs)
    assert len(ids) == len(set(ids)) and set(ids) == expected.loan_ids
    # run again: nothing uploaded, the same report
    again = migrate.migrate(path, stack, quiet(), migrate.Options(chunk_rows=10_000))
    assert again == report


class Interrupt:
    """Ctrl-C after `after` chunk uploads (the upload before it completed)."""

    def __init__(self, s3: Any, after: int) -> None:
        self.s3, self.after, self.calls = s3, after, 0

    def upload_fileobj(self, *args: Any, **kwargs: Any) -> None:
        if self.calls == self.after:
            raise KeyboardInterrupt
        self.calls += 1
        self.s3.upload_fileobj(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.s3, name)


def test_r11_an_interrupted_migration_resumed_gives_the_same_report_and_one_row_per_loan(
    target: Target,
    outputs: dict[str, str],
    big_export: tuple[Path, loanbook.Expected],
) -> None:
    """Ctrl-C during the upload, then the same command again. The migration above is taken back
    to where a run stopped after 7 of its 11 chunks leaves it (what came after forgotten: S3
    objects and rows), rather than to nothing: the state is the same as after a run stopped
    there, and 4 chunks are decided again (30,100 lines of the export), not 11 (100,100 lines:
    about 9 s of CPU less). The Ctrl-C itself is real: the run that meets it finds 7 chunks,
    uploads the 8th and is stopped at the 9th."""
    path, expected = big_export
    stack = migrate.stack_of(target, read_stack(target.outputs_file))
    options = migrate.Options(chunk_rows=10_000)
    uninterrupted = migrate.migrate(path, stack, quiet(), options)  # stored by the test above
    mid = uninterrupted["migration"]
    forget_after(target, outputs, stack, mid, kept=7)
    assert len(migrate.existing(stack, f"incoming/{mid}/")) == 7
    assert len(stored_ids(target, outputs)) < len(expected.loan_ids)

    cut = migrate.BatchPath(
        Interrupt(stack.s3, after=1), stack.sqs, stack.bucket, stack.dead_letter_url
    )
    with pytest.raises(KeyboardInterrupt):
        migrate.migrate(path, cut, quiet(), options)
    assert len(migrate.existing(stack, f"incoming/{mid}/")) == 8
    assert awslambda_async.wait_idle(120)  # the uploaded chunk is decided meanwhile

    counting = Interrupt(stack.s3, after=-1)
    resumed = migrate.migrate(
        path,
        migrate.BatchPath(counting, stack.sqs, stack.bucket, stack.dead_letter_url),
        quiet(),
        options,
    )
    assert counting.calls == 11 - 8 + 1  # the missing chunks, then the merged report
    assert resumed == uninterrupted
    ids = stored_ids(target, outputs)
    assert len(ids) == len(set(ids)) and set(ids) == expected.loan_ids


def test_a_chunk_that_keeps_failing_is_listed_and_retry_failed_sends_it_again(
    target: Target,
    outputs: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "small.csv"
    expected = loanbook.write_export(path, 300, every=100, prefix="F")
    stack = migrate.stack_of(target, read_stack(target.outputs_file))
    monkeypatch.setenv("MOTO_LAMBDA_ASYNC_RETRY_SECONDS", "0.05")
    original_load = awslambda.load
    attempts: list[str] = []

    def failing_second_chunk(fn: Any) -> Any:
        """Fault injection: the function fails on part-00002, as it would with the database
        gone; every attempt is counted."""
        module = original_load(fn)
        handler = module.__dict__["__handler__"]

        def handle(event: Any, context: Any) -> Any:
            key = event["Records"][0]["s3"]["object"]["key"]
            if key.endswith("part-00002.csv"):
                attempts.append(key)
                raise RuntimeError("database unavailable")
            return handler(event, context)

        module.__dict__["__handler__"] = handle
        return module

    monkeypatch.setattr(awslambda, "load", failing_second_chunk)
    options = migrate.Options(chunk_rows=100, timeout=60, poll=0.1)
    report = migrate.migrate(path, stack, quiet(), options)
    assert len(attempts) == 3  # the first attempt and Lambda's two retries
    [failed] = report["failedChunks"]
    assert failed["key"].endswith("part-00002.csv")
    # the cause, from the dead letter's ErrorMessage, and where the function's log is
    assert failed["error"] == "database unavailable"
    shown = quiet()
    migrate.print_summary(shown, report, logs="loanstack logs --suffix mig42 --region us-east-1")
    said = shown.export_text()
    assert "database unavailable" in said
    assert "`loanstack logs --suffix mig42 --region us-east-1`" in said
    assert report["rows"] == expected.rows - 100  # chunk 2: rows 100-199
    mid = report["migration"]
    assert f"reports/{mid}/migration.report.json" not in migrate.existing(stack, "reports/")

    monkeypatch.setattr(awslambda, "load", original_load)
    retried = migrate.migrate(
        path,
        stack,
        quiet(),
        migrate.Options(chunk_rows=100, retry_failed=True, timeout=60, poll=0.1),
    )
    assert retried["failedChunks"] == [] and retried["rows"] == expected.rows
    assert retried["summary"] == dict(expected.summary)
    assert not migrate.dead_letters(stack, f"incoming/{mid}/")


def test_the_migrate_command_prints_one_json_document_and_a_whole_summary(
    emulator: Emulator,
    target: Target,
    outputs: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from loanstack import cli

    monkeypatch.setenv(EMULATOR_URL_VARIABLE, emulator.url)
    monkeypatch.setenv("LOANSTACK_OUTPUTS_FILE", str(target.outputs_file))
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.chdir(tmp_path)  # the problem file's default place
    path = tmp_path / "cli.csv"
    expected = loanbook.write_export(path, 2000, every=500, prefix="C")
    assert cli.main(["migrate", str(path), "--chunk-rows", "700", "--output", "json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["rows"] == 2000 and report["summary"] == dict(expected.summary)
    assert "chunks decided 3/3" in captured.err
    proof = report["verify"]  # D8: migrate ends with `verify`, independent of the reports
    assert proof["reconciled"] and proof["sha256"] == report["sha256"]
    assert proof["lines"] == 2000 == sum(proof["counts"].values())
    assert proof["counts"]["duplicate"] == expected.summary["CONFLICT"]
    assert "every line reconciles" in captured.err

    assert (
        cli.main(["migrate", str(path), "--chunk-rows", "700", "--suffix", "mig42", "--no-verify"])
        == 0
    )  # again: the same report
    text = capsys.readouterr().out
    assert "already migrated" in text and "\u2026" not in text
    assert "reconciles" not in text  # --no-verify
    for line, decision in expected.problems.items():
        assert any(
            row.replace("\u2502", " ").split()[:3][0::2] == [str(line), decision]
            or row.replace("\u2502", " ").split()[:2] == [str(line), decision]
            for row in text.splitlines()
        ), (line, decision, text)
    # every problem row is in the file (the current directory's, by default); --show N prints N
    [listed] = tmp_path.glob("migration-*.problems.jsonl")
    rows = [json.loads(line) for line in listed.read_text().splitlines()]
    assert {r["line"]: r["decision"] for r in rows} == expected.problems
    argv = ["migrate", str(path), "--chunk-rows", "700", "--no-verify", "--show", "1"]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert f"and {len(rows) - 1:,} more" in text and listed.name in text
