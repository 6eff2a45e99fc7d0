"""verify_db.DIGEST on MariaDB through the emulator's Data API: each group's count, last id, the
SHA-256 of its rows' text (what verify_digest computes from the export for plain values), the
exact sum of its amounts, and `ok` false whenever GROUP_CONCAT was cut (the hint not honoured)."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

import pytest

from loanstack.emulator.mariadb import MariaDB
from loanstack.ops import verify_db
from loanstack.ops.verify_db import Database
from tests.integration.test_verify_pages import MINE, DataApi, insert_separated, insert_widest

PLAIN_IDS = [f"M-{k:03d}" for k in range(70)] + ["M-005,x"]


def text(rows: list[tuple[str, str, str, bool, str]]) -> str:
    """A group's rows as verify_digest writes them (plain values: JSON_QUOTE adds quotes only)."""
    return "\n".join(f'"{i}","{s}","{d}"' for i, s, d, _m, _a in rows)


def test_d8_the_database_digest_is_the_text_the_tool_hashes(mariadb: MariaDB) -> None:
    rows = [r for r in insert_separated(mariadb, PLAIN_IDS) if '"' not in r[2]]
    with mariadb.connect() as conn, conn.cursor() as cur:  # plain decisions only
        cur.execute("DELETE FROM loan_decisions WHERE decision LIKE '%\"%'")
        cur.execute("UPDATE loan_decisions SET loan_amount = 12.34 WHERE loan_id = 'M-001'")
        conn.commit()
    rows = [(i, s, d, m, "12.34" if i == "M-001" else a) for i, s, d, m, a in rows]
    for page_rows in (5, 4000):
        database = Database(DataApi(mariadb), "arn:c1", "arn:s", "loans", page_rows=page_rows)
        groups = database.digests("", MINE)
        size = verify_db.GROUP_SIZE
        chunks = [rows[:page_rows][k : k + size] for k in range(0, min(page_rows, len(rows)), size)]
        assert [(g[0], g[1]) for g in groups] == [(len(c), c[-1][0]) for c in chunks]
        for (_n, _last, digest, amount, ok), chunk in zip(groups, chunks, strict=True):
            assert ok and digest.lower() == hashlib.sha256(text(chunk).encode()).hexdigest()
            assert Decimal(str(amount)) == sum(Decimal(a) for *_r, a in chunk)
        ahead = database.digests("", MINE, page_rows - 1, 1)  # the page asked ahead
        if page_rows < len(rows):
            assert ahead[0][:2] == (1, rows[page_rows - 1][0]) and ahead[1][1] > ahead[0][1]


def test_d8_a_group_cut_without_the_hint_is_never_ok(
    mariadb: MariaDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The widest rows: ~3 KB a group; with the hint each group is whole, without it MariaDB
    keeps MySQL's 1,024 bytes, cuts every group, and `ok` says so."""
    insert_widest(mariadb, 2 * verify_db.GROUP_SIZE + 3)
    database = Database(DataApi(mariadb), "arn:c1", "arn:s", "loans")
    assert all(g[4] for g in database.digests("", MINE))
    hint = "/*+ SET_VAR(group_concat_max_len = 1048576) */"
    assert hint in verify_db.DIGEST
    monkeypatch.setattr(verify_db, "DIGEST", verify_db.DIGEST.replace(hint, ""))
    groups = database.digests("", MINE)
    assert len(groups) == 3 and not any(g[4] for g in groups)
    assert json.dumps(groups)  # counts and ids still read
