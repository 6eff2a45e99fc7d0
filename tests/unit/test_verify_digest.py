"""verify compares the table a group at a time by the database's digest (verify_digest): a group
that agrees is reconciled without its rows, any other is read row by row, and each tampering is
reported exactly as the SQLite path (and the merge before digests) reports it."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from loanstack.ops import verify
from loanstack.ops.verify_db import Stored
from loanstack.testing import loanbook
from tests.unit.test_verify_merge import LIMITS, Table, both, migrated

IDS = [f"L-{i:03d}" for i in range(40)]


def book(tmp: Path, ids: list[str] = IDS, suffix: str = ".csv") -> Path:
    """An export of good lines in id order, an invalid one (no stored row) and a duplicate."""
    path = tmp / f"book{suffix}"
    if suffix == ".csv":
        text = [",".join(loanbook.COLUMNS).encode(), *(loanbook.row(i) for i in ids)]
        text.insert(5, loanbook.row(ids[3] + "a", loanType="yacht"))  # invalid: no stored row
        text.insert(9, loanbook.row(ids[6], loanAmount=250000))  # a duplicate of the id before
        path.write_bytes(b"\n".join(text) + b"\n")
    else:
        rows = [loanbook.approved_application(i, "A-1") for i in ids]
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def verdict(path: Path, table: Table, tmp: Path) -> dict[str, Any]:
    """The merge's summary, held to the SQLite path's (summary and report alike)."""
    merge, sqlite = both(path, table, tmp)
    assert merge == sqlite
    return dict(merge[0])


def changed(rows: list[Stored], loan_id: str, **values: Any) -> list[Stored]:
    fields = ("id", "sha", "decision", "mine", "amount")
    return [
        tuple(values.get(f, v) for f, v in zip(fields, row, strict=True))
        if row[0] == loan_id
        else row  # type: ignore[misc]
        for row in rows
    ]


def test_an_agreeing_table_is_reconciled_without_reading_a_row(tmp_path: Path) -> None:
    path = book(tmp_path)
    table = Table(migrated(path), 16, group=4)
    summary = verdict(path, table, tmp_path)
    assert summary["reconciled"] and summary["counts"][verify.DUPLICATE] == 1
    assert table.fetched == 0  # the merge's rows came from the digests alone


def test_a_tampered_fingerprint_is_changed(tmp_path: Path) -> None:
    path = book(tmp_path)
    table = Table(changed(migrated(path), "L-010", sha="0" * 64), 16, group=4)
    summary = verdict(path, table, tmp_path)
    assert summary["counts"][verify.CHANGED] == 1 and not summary["reconciled"]
    assert table.fetched == 1  # one group read row by row (a few groups at once)


def test_a_tampered_decision_is_unexpected(tmp_path: Path) -> None:
    path = book(tmp_path)
    table = Table(changed(migrated(path), "L-030", decision="REJECTED"), 16, group=4)
    summary = verdict(path, table, tmp_path)
    assert summary["counts"][verify.UNEXPECTED] == 1 and not summary["reconciled"]


def test_a_tampered_amount_is_in_the_recorded_total(tmp_path: Path) -> None:
    """The digest leaves amounts out: the group agrees, and its sum is the database's."""
    path = book(tmp_path)
    table = Table(changed(migrated(path), "L-020", amount="1.00"), 16, group=4)
    summary = verdict(path, table, tmp_path)
    assert not summary["reconciled"] and table.fetched == 0
    source, recorded = summary["controlTotals"]["source"], summary["controlTotals"]["recorded"]
    shown = Decimal(source["loanAmount"]) - Decimal(recorded["loanAmount"])
    assert shown == Decimal(migrated(path)[20][4]) - 1


def test_an_extra_row_and_a_row_of_an_invalid_line_are_reported(tmp_path: Path) -> None:
    """Inside ranges that would agree without them: the group then differs and is read."""
    path = book(tmp_path)
    rows = migrated(path)
    extra: Stored = ("L-012a", "f" * 64, "APPROVED", True, "5.00")
    invalid: Stored = ("L-003a", "f" * 64, "APPROVED", True, "5.00")
    table = Table([*rows, extra, invalid], 16, group=4)
    summary = verdict(path, table, tmp_path)
    assert summary["counts"][verify.EXTRA] == 1 and not summary["reconciled"]


def test_a_missing_row_is_missing(tmp_path: Path) -> None:
    path = book(tmp_path)
    rows = [row for row in migrated(path) if row[0] != "L-025"]
    summary = verdict(path, Table(rows, 16, group=4), tmp_path)
    assert summary["counts"][verify.MISSING] == 1 and not summary["reconciled"]


def test_ids_with_quotes_commas_and_non_ascii_are_read_as_stored(tmp_path: Path) -> None:
    """The function refuses such ids (INVALID lines), but the table may hold them: rows of ids
    no line holds (extra) and rows of the invalid lines' ids, among agreeing groups. A comma
    escapes to itself; a quote, a backslash or non-ASCII may not (the group is read row by
    row): the verdict is the SQLite path's either way."""
    tricky = ["L-005,x", 'L-010"q', "L-020\\b", "L-030\u00e9", "L-034\U0001f600", "L-036/y"]
    lines = sorted([*IDS, *tricky[::2]])
    path = book(tmp_path, lines, ".jsonl")
    rows = migrated(path)
    assert len(rows) == len(IDS)
    stored = [(i, "f" * 64, "APPROVED", True, "5.00") for i in tricky]
    table = Table([*rows, *stored], 16, group=4)
    summary = verdict(path, table, tmp_path)
    assert summary["counts"][verify.EXTRA] == 3 and summary["counts"][verify.INVALID] == 3
    assert summary["counts"][verify.RECONCILED] == len(IDS) and table.fetched > 0


def test_a_group_cut_short_is_never_agreeing(tmp_path: Path) -> None:
    """GROUP_CONCAT cut at MySQL's default 1,024 bytes (the hint not honoured): every group is
    read row by row, with the verdict of a whole one, tampering included."""
    path = book(tmp_path)
    rows = changed(migrated(path), "L-031", decision="REJECTED")
    cut = Table(rows, 40, group=16, limit=1024)
    summary = verdict(path, cut, tmp_path)
    assert summary["counts"][verify.UNEXPECTED] == 1 and cut.fetched > 0
    assert summary == verdict(path, Table(rows, 40, group=16), tmp_path)


def test_a_cut_group_agreeing_by_its_hash_is_still_read(tmp_path: Path) -> None:
    """Not whole (the flag) is never agreeing, whatever the digest says."""
    path = book(tmp_path)
    table = Table(migrated(path), 16, group=4)
    digests = table.digests
    table.digests = lambda *a: [(*g[:4], False) for g in digests(*a)]  # type: ignore[method-assign]
    summary = verdict(path, table, tmp_path)
    assert summary["reconciled"] and table.fetched > 0
    assert verify.reconcile(path, table, LIMITS).summary()["reconciled"]  # type: ignore[arg-type]


def test_only_values_json_quote_leaves_as_they_are_can_agree() -> None:
    from loanstack.ops.verify_digest import plain

    assert plain("L-0001APPROVEDab12 ,~")
    for value in ['q"', "b\\", "s/", "é", "\x00", "\n", "\x1f", "\x7f", "😀"]:
        assert not plain(f"L-1{value}"), value


def test_rows_no_line_holds_are_read_in_growing_calls(tmp_path: Path) -> None:
    """A table shared with other exports: their rows' groups differ one after the other and are
    read in ever larger calls, not one call a few groups; each row is counted as before."""
    path = book(tmp_path)
    others: list[Stored] = [(f"K-{k:04d}", "f" * 64, "APPROVED", False, "1.00") for k in range(400)]
    table = Table([*migrated(path), *others], 4000, group=2)
    summary = verdict(path, table, tmp_path)
    assert summary["reconciled"] and table.fetched <= 3
