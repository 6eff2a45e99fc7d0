"""`loanstack verify` (SPEC D8): an export reconciled line by line with the decisions table,
independently of the function's reports; a tampered row and a tampered export are each found."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import boto3
import pytest

from loanstack.emulator.mariadb import string_literal
from loanstack.ops import export as migrate
from loanstack.ops import verify
from loanstack.testing import loanbook as exports
from tests.integration.conftest import BUCKET
from tests.integration.test_loan_batch_files import s3_event


def migrated(loans: Any, path: Path, rows: int = 15) -> None:
    """migrate's chunks through the function, as S3 would deliver them (no stack needed)."""
    export = migrate.inspect(path)
    export.chunk_rows = rows
    s3 = boto3.client("s3")
    for chunk, body in migrate.chunks(export, rows):
        with body:
            s3.put_object(Bucket=BUCKET, Key=chunk.key(export), Body=body.read())
        loans.handler(s3_event(chunk.key(export)), None)
    export.handle.close()  # type: ignore[union-attr]


def database(loans: Any, page_rows: int = 7) -> verify.Database:
    return verify.Database(
        loans.rds_data_client(),
        os.environ["DB_CLUSTER_ARN"],
        os.environ["DB_SECRET_ARN"],
        page_rows=page_rows,
    )


def sql(loans: Any, statement: str) -> None:
    with loans.bridge.server.connect() as conn, conn.cursor() as cur:
        cur.execute(statement)
        conn.commit()


@pytest.fixture
def book(loans: Any, tmp_path: Path) -> tuple[Path, exports.Expected]:
    path = tmp_path / "book.csv"
    expected = exports.write_export(path, 40, every=10)
    migrated(loans, path)
    return path, expected


def test_d8_a_migrated_export_reconciles_and_the_counts_add_up_to_the_file(
    loans: Any, book: tuple[Path, exports.Expected]
) -> None:
    path, expected = book
    db = database(loans)
    found = verify.reconcile(path, db, loans.thresholds())
    assert found.reconciled, found.issues
    assert found.lines == expected.rows == sum(found.counts.values())
    assert found.counts[verify.INVALID] == expected.summary["INVALID"]
    assert found.counts[verify.DUPLICATE] == expected.summary["CONFLICT"]
    assert db.calls >= 40 // 7  # read in pages, not one answer
    assert [i["state"] for i in found.issues] == [verify.DUPLICATE]


def test_d8_tampered_rows_are_each_reported_by_line(
    loans: Any, book: tuple[Path, exports.Expected], tmp_path: Path
) -> None:
    path, _ = book
    lines = path.read_bytes().split(b"\n")
    line_of = {text.split(b",")[0].decode(): n for n, text in enumerate(lines, start=1)}
    sql(loans, "UPDATE loan_decisions SET decision = 'APPROVED' WHERE loan_id = 'M-0000005'")
    sql(loans, "DELETE FROM loan_decisions WHERE loan_id = 'M-0000011'")
    sql(loans, "UPDATE loan_decisions SET application_sha256 = REPEAT('0', 64), decision = 'APPROVED'"
               " WHERE loan_id = 'M-0000020'")  # fmt: skip
    sql(
        loans,
        "INSERT INTO loan_decisions SELECT 'M-9999999', applicant_id, loan_type, loan_amount,"
        " decision, reasons, monthly_payment, debt_to_income, loan_to_value, application_sha256,"
        " result_json, source, decided_at FROM loan_decisions WHERE loan_id = 'M-0000001'",
    )
    found = verify.reconcile(path, database(loans), loans.thresholds(), tmp_path / "issues.jsonl")
    assert not found.reconciled
    states = {(i.get("line"), i.get("loanId"), i["state"]) for i in found.issues}
    assert {
        (line_of["M-0000005"], "M-0000005", verify.UNEXPECTED),
        (line_of["M-0000011"], "M-0000011", verify.MISSING),
        (line_of["M-0000020"], "M-0000020", verify.CHANGED),
        (None, "M-9999999", verify.EXTRA),
    } <= states
    assert found.lines == sum(found.counts[s] for s in verify.STATES)
    assert len((tmp_path / "issues.jsonl").read_text().splitlines()) == len(found.issues)


def test_d8_tampered_rows_holding_separators_are_reported_as_stored(
    loans: Any, book: tuple[Path, exports.Expected]
) -> None:
    """A stored id that, read unescaped, would be a whole row and the start of the next (and
    ids with the page's other separators), and a decision holding a quote and a comma: each is
    reported with its text as stored, and the rows around them still reconcile."""
    path, _ = book
    lines = path.read_bytes().split(b"\n")
    line_of = {text.split(b",")[0].decode(): n for n, text in enumerate(lines, start=1)}
    injected = 'M-0000002","f","APPROVED",true,"1.00"],["M-0000003'
    added = [injected, "M-0000004,M-0000005", 'M-0000007"]', "M-0000008\\"]
    for loan_id in added:
        sql(
            loans,
            f"INSERT INTO loan_decisions SELECT {string_literal(loan_id)}, applicant_id,"
            " loan_type, loan_amount, decision, reasons, monthly_payment, debt_to_income,"
            " loan_to_value, application_sha256, result_json, source, decided_at"
            " FROM loan_decisions WHERE loan_id = 'M-0000001'",
        )
    sql(
        loans, """UPDATE loan_decisions SET decision = 'APPROVED","X' WHERE loan_id = 'M-0000006'"""
    )
    found = verify.reconcile(path, database(loans), loans.thresholds())
    assert not found.reconciled
    issues = [i for i in found.issues if i["state"] != verify.DUPLICATE]
    assert sorted(issues, key=lambda i: i["loanId"]) == sorted(
        [{"loanId": i, "state": verify.EXTRA, "recorded": "APPROVED"} for i in added]
        + [{"line": line_of["M-0000006"], "loanId": "M-0000006", "state": verify.UNEXPECTED,
            "expected": "APPROVED", "recorded": 'APPROVED","X'}],
        key=lambda i: str(i["loanId"]),
    )  # fmt: skip
    assert found.counts[verify.EXTRA] == len(added) and found.counts[verify.UNEXPECTED] == 1
    assert found.lines == sum(found.counts[s] for s in verify.STATES)


def test_d8_a_tampered_export_is_reported_by_line(
    loans: Any, book: tuple[Path, exports.Expected], tmp_path: Path
) -> None:
    path, _ = book
    lines = path.read_bytes().split(b"\n")
    changed = next(n for n, t in enumerate(lines) if t.startswith(b"M-0000003,"))
    lines[changed] = lines[changed].replace(b"M-0000003,A-M-0000003,", b"M-0000003,A-other,")
    lines.insert(-1, exports.row("M-0000777"))
    tampered = tmp_path / "book.csv"
    tampered.write_bytes(b"\n".join(lines))
    found = verify.reconcile(tampered, database(loans), loans.thresholds())
    states = {(i["line"], i["state"]) for i in found.issues}
    assert (changed + 1, verify.CHANGED) in states
    assert (len(lines) - 1, verify.MISSING) in states
    assert not found.reconciled


def test_d8_verify_is_a_command_with_one_line_errors(tmp_path: Path) -> None:
    from tests.support.cli import ci_env, loanstack, one_error_line

    run = loanstack(ci_env(tmp_path), "verify", str(tmp_path / "gone.csv"))
    assert run.code == 2 and "cannot read export" in one_error_line(run)
