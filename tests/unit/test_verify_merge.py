"""verify's streaming merge (an export in loan id order) gives the SQLite path's verdicts: the
same states, issues, counts, control totals and report, on exports with duplicates, invalid
lines and a tampered table; an export out of order falls back to SQLite."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loanstack.ops import verify, verify_digest, verify_merge
from loanstack.ops.verify_db import Group, Stored
from loanstack.ops.verify_export import read_export
from loanstack.testing import loanbook

LIMITS = verify.validation().thresholds()
IDS = [f"L-{i:02d}" for i in range(12)]
VARIANTS: list[dict[str, Any]] = [
    {},
    {"creditScore": 620},  # review
    {"creditScore": 500},  # rejected
    {"loanAmount": 30000},  # other content: a duplicate of the id
    {"loanType": "yacht"},  # invalid, its id kept
    {"applicantId": "A \xe9!"},  # invalid
]
LINE = st.tuples(st.sampled_from(IDS), st.integers(0, len(VARIANTS) - 1))


def quoted(value: str | None) -> str:
    """JSON_QUOTE's text (MariaDB's and MySQL's escape alike for what the tool compares), or
    null for NULL (COALESCE)."""
    return "null" if value is None else json.dumps(value, ensure_ascii=False)


class Table:
    """The Data API's pages of a table made up by the test: rows (Database.pages, fetch) and
    groups' digests computed as verify_db.DIGEST's SQL computes them, GROUP_CONCAT cut at
    `limit` bytes (group_concat_max_len) on a character boundary."""

    def __init__(
        self,
        rows: list[Stored],
        page_rows: int,
        swapped: bool = False,
        group: int = 3,
        limit: int = 1 << 20,
    ) -> None:
        self.rows, self.page_rows, self.swapped, self.calls = sorted(rows), page_rows, swapped, 0
        self.group, self.limit, self.fetched = group, limit, 0
        if swapped and len(rows) > 1:  # the table's answers out of loan id order
            self.rows[0], self.rows[-1] = self.rows[-1], self.rows[0]

    def fetch(self, after: str, mine: str, skip: int = 0, rows: int = 0) -> list[Stored]:
        self.fetched += 1
        found = [row for row in self.rows if row[0] > after][skip:]
        return found[: rows or self.page_rows]

    def digests(self, after: str, mine: str, skip: int = 0, lead: int = 0) -> list[Group]:
        page = self.fetch(after, mine, skip)
        self.fetched -= 1
        groups = [page[:lead]] if lead and page else []
        groups += [page[k : k + self.group] for k in range(lead, len(page), self.group)]
        return [self.digest(rows) for rows in groups if rows]

    def digest(self, rows: list[Stored]) -> Group:
        text = "\n".join(f"{quoted(i)},{quoted(s)},{quoted(d)}" for i, s, d, _m, _a in rows)
        data = text.encode()
        if len(data) > self.limit:
            data = data[: self.limit].decode(errors="ignore").encode()
        amounts = [amount for *_row, amount in rows]
        total = None if None in amounts else str(sum(map(Decimal, amounts)))
        whole = total is not None and len(data) < self.limit - 3
        return (
            len(rows),
            max(r[0] for r in rows),
            hashlib.sha256(data).hexdigest().upper(),
            total,
            whole,
        )

    def pages(self, mine: str) -> Iterator[list[Stored]]:
        rows = self.rows
        for k in range(0, len(rows), self.page_rows):
            yield rows[k : k + self.page_rows]


def write(path: Path, lines: list[tuple[str, int]], blank: bool) -> None:
    text = [",".join(loanbook.COLUMNS).encode()]
    for loan_id, variant in lines:
        text.append(loanbook.row(loan_id, **VARIANTS[variant]))
        if blank:
            text.append(b"")
    text.append(b"\xff,broken")  # not UTF-8: no id
    path.write_bytes(b"\n".join(text) + b"\n")


def migrated(path: Path) -> list[Stored]:
    """What a migration of `path` stores: the first line of each id, when valid."""
    stored: dict[str, Stored] = {}
    seen: set[str] = set()
    for _n, loan_id, sha, decision, _detail, amount in read_export(path, LIMITS, workers=1)[0]:
        if loan_id is None or loan_id in seen:
            continue
        seen.add(loan_id)
        if sha is not None and amount is not None:
            stored[loan_id] = (loan_id, sha, decision, True, amount)
    return list(stored.values())


TAMPER = st.lists(
    st.tuples(
        st.sampled_from(["drop", "sha", "decision", "null", "theirs", "amount"]), st.integers(0, 50)
    ),
    max_size=4,
)
EXTRA = st.lists(st.tuples(st.sampled_from([*IDS, "K-1", "Z-9", "0"]), st.booleans()), max_size=4)


def tampered(rows: list[Stored], tamper: list[tuple[str, int]], extra: list[Any]) -> list[Stored]:
    rows = list(rows)
    for kind, at in tamper:
        if not rows:
            break
        i = at % len(rows)
        loan_id, sha, decision, mine, amount = rows[i]
        if kind == "drop":
            del rows[i]
        elif kind == "sha":
            rows[i] = (loan_id, "0" * 64, decision, mine, amount)
        elif kind == "decision":
            other = "REJECTED" if decision != "REJECTED" else "APPROVED"
            rows[i] = (loan_id, sha, other, mine, amount)
        elif kind == "amount":  # the control totals must tell (each side summed on its own)
            rows[i] = (loan_id, sha, decision, mine, f"{Decimal(amount) + Decimal('0.01')}")
        elif kind == "null":
            rows[i] = (loan_id, None, None, mine, amount)  # type: ignore[assignment]
        else:
            rows[i] = (loan_id, sha, decision, False, amount)
    held = {r[0] for r in rows}
    for loan_id, mine in extra:
        if loan_id not in held:
            held.add(loan_id)
            rows.append((loan_id, "f" * 64, "APPROVED", mine, "1234.50"))
    return rows


def both(path: Path, table: Table, tmp: Path) -> tuple[Any, Any]:
    digest = verify.export_digest(path)
    results = []
    for name, run in (("merge", verify.reconcile_merged), ("sqlite", verify.reconcile_sqlite)):
        report = tmp / f"{name}.jsonl"
        result = run(path, table, LIMITS, report, digest)  # type: ignore[arg-type]
        results.append((result.summary() | {"report": None}, report.read_text()))
    return results[0], results[1]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(LINE, max_size=25),
    TAMPER,
    EXTRA,
    st.booleans(),
    st.sampled_from([1, 3, 4000]),
    st.sampled_from([1, 2, 3, verify_merge.BULK]),
    st.sampled_from([1, 3, 32]),
    st.sampled_from([1 << 20, 300]),
    st.sampled_from([1, 2, 512]),
)
def test_the_merge_of_an_export_in_order_is_the_sqlite_verdict(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lines: list[tuple[str, int]],
    tamper: list[tuple[str, int]],
    extra: list[Any],
    blank: bool,
    page_rows: int,
    bulk: int,
    group: int,
    limit: int,
    taken: int,
) -> None:
    """Runs of `bulk` lines (short ones too, so that runs both agree with the table and do not)
    reconciled at once give the verdict of the lines one by one; so do the table's groups
    compared by digest (of `group` rows, GROUP_CONCAT cut at `limit` bytes or not; the lines
    looked at `taken` at a time)."""
    monkeypatch.setattr(verify_merge, "BULK", bulk)
    monkeypatch.setattr(verify_digest, "TAKEN", taken)
    path = tmp_path / "book.csv"
    write(path, sorted(lines, key=lambda line: line[0]), blank)  # ids in order, repeats kept
    table = Table(tampered(migrated(path), tamper, extra), page_rows, group=group, limit=limit)
    merge, sqlite = both(path, table, tmp_path)
    assert merge == sqlite


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(LINE, min_size=2, max_size=25), TAMPER)
def test_an_export_out_of_order_is_reconciled_on_sqlite(
    tmp_path: Path, lines: list[tuple[str, int]], tamper: list[tuple[str, int]]
) -> None:
    path = tmp_path / "book.csv"
    write(path, lines, blank=False)
    table = Table(tampered(migrated(path), tamper, []), 3)
    digest = verify.export_digest(path)
    expected = verify.reconcile_sqlite(path, table, LIMITS, None, digest).summary()  # type: ignore[arg-type]
    assert verify.reconcile(path, table, LIMITS).summary() == expected  # type: ignore[arg-type]
    ordered = [line[0] for line in lines] == sorted(line[0] for line in lines)
    if not ordered:
        with pytest.raises(verify_merge.Unordered):
            verify.reconcile_merged(path, table, LIMITS, None, digest)  # type: ignore[arg-type]


def test_pages_out_of_order_fall_back_to_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "book.csv"
    write(path, [(i, 0) for i in IDS], blank=False)
    table = Table(migrated(path), 4, swapped=True)
    digest = verify.export_digest(path)
    with pytest.raises(verify_merge.Unordered, match="pages"):
        verify.reconcile_merged(path, table, LIMITS, None, digest)  # type: ignore[arg-type]
    result = verify.reconcile(path, table, LIMITS)  # type: ignore[arg-type]
    assert result.reconciled and result.counts[verify.RECONCILED] == len(IDS)
