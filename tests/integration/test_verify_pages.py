"""verify reads the table as the database's JSON_ARRAY of each row's five values, GROUP_SIZE rows a value
(verify_db.PAGE): on MariaDB, through the emulator's Data API, the rows it reads are exactly the
columns a plain SELECT gives, for ids and values JSON must escape, across page boundaries; and
the emulator's JSON records keep the Data API's 64 KB row limit however the page is encoded."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from loanstack import functions
from loanstack.emulator.mariadb import MariaDB
from loanstack.emulator.rdsdata_execute import execute
from loanstack.ops import verify_db
from loanstack.ops.verify_db import GROUP_SIZE, Database

TRICKY_IDS = [
    "L-1", 'q"uote', "back\\slash", "tab\there", "new\nline", "ctrl\x01\x1f", "é", "\u2028",
    "😀 astral", "x" * 64, "</script>", "0", "-", "[1, 2]", "null",
]  # fmt: skip
MINE = "%/incoming/abc-%"


class DataApi:
    """rds-data's execute_statement answered by the emulator's own execution path."""

    def __init__(self, mariadb: MariaDB) -> None:
        self.mariadb = mariadb

    def execute_statement(self, **params: Any) -> dict[str, Any]:
        status, body = execute(self.mariadb, "ExecuteStatement", params, ("admin", "p"))
        if status != 200:  # as botocore raises an error answer
            error = {"Code": body["__type"], "Message": body["message"]}
            raise ClientError({"Error": error}, "ExecuteStatement")  # type: ignore[arg-type]
        return dict(json.loads(json.dumps(body)))  # as the HTTP answer carries it


def test_d8_the_pages_json_arrays_are_the_tables_columns(mariadb: MariaDB) -> None:
    mariadb.reset()
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(functions.contract(functions.VALIDATION).TABLE)
        for k, loan_id in enumerate(TRICKY_IDS):
            cur.execute(
                "INSERT INTO loan_decisions (loan_id, applicant_id, loan_type, loan_amount,"
                " decision, reasons, monthly_payment, debt_to_income, application_sha256,"
                " result_json, source) VALUES (%s, 'A', 'auto', %s, %s, '', 1, 1, %s, '{}', %s)",
                (
                    loan_id,
                    ["0.00", "-1.50", "9999999999999.99", "25000.00"][k % 4],
                    ["APPROVED", "MANUAL_REVIEW", 'RE"JECTED', "é"][k % 4],
                    ("f" * 64, "\\" * 3 + '"', "")[k % 3],
                    (None, "s3://b/incoming/abc-1.csv", "s3://b/incoming/other.csv")[k % 3],
                ),
            )
        cur.execute(
            "SELECT loan_id, application_sha256, decision, COALESCE(source LIKE %s, 0),"
            " CAST(loan_amount AS CHAR) FROM loan_decisions ORDER BY loan_id",
            (MINE,),
        )
        expected = [(i, s, d, bool(m), a) for i, s, d, m, a in cur.fetchall()]
    for page_rows in (1, 4, 4000):
        database = Database(DataApi(mariadb), "arn:c1", "arn:s", "loans", page_rows=page_rows)
        assert list(database.rows(MINE)) == expected
    assert len(expected) == len(TRICKY_IDS) and sum(row[3] for row in expected) == 5


# Ids and decisions a tamperer could write to break a page's text apart: separators of the
# page's JSON and of its groups, quotes of SQL and JSON, and an id that, written unescaped, is
# itself a whole row and the start of another (INJECTED).
INJECTED = 'M-3","f","APPROVED",true,"1.00"],["M-4'
SEPARATED = [
    INJECTED, 'M-1","M-2', "M-3,M-4", "M-5],[", 'M-6"]', "M-7\\", "M-8'", '["M-9"]',
    "M-10\\u002c", "M-11\n,M-12", "M-13 ,", "M-14",
]  # fmt: skip
DECISIONS = ['APPROVED","X', "APPROVED,X", "APPROVED", "]"]  # within VARCHAR(16)


def insert_separated(mariadb: MariaDB, ids: list[str]) -> list[tuple[str, str, str, bool, str]]:
    """`ids` stored (recorded by the export MINE names), as a plain SELECT reads them back."""
    mariadb.reset()
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(functions.contract(functions.VALIDATION).TABLE)
        for k, loan_id in enumerate(ids):
            cur.execute(
                "INSERT INTO loan_decisions (loan_id, applicant_id, loan_type, loan_amount,"
                " decision, reasons, monthly_payment, debt_to_income, application_sha256,"
                " result_json, source) VALUES (%s, 'A', 'auto', '1.00', %s, '', 1, 1, %s, '{}',"
                " 's3://b/incoming/abc-1.csv')",
                (loan_id, DECISIONS[k % 4], f"{k:064x}"),
            )
        conn.commit()
        cur.execute(
            "SELECT loan_id, application_sha256, decision FROM loan_decisions ORDER BY loan_id"
        )
        return [(i, s, d, True, "1.00") for i, s, d in cur.fetchall()]


def test_d8_ids_and_decisions_holding_separators_are_read_as_stored(
    mariadb: MariaDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each stored row is read as one row with its id and decision as stored, on one page and
    across pages and groups, grouped or one row per value."""
    expected = insert_separated(mariadb, SEPARATED)
    assert sorted(row[0] for row in expected) == sorted(SEPARATED)
    for page_rows in (1, 3, 4000):
        database = Database(DataApi(mariadb), "arn:c1", "arn:s", "loans", page_rows=page_rows)
        assert list(database.rows(MINE)) == expected, page_rows
    rows_only = Database(DataApi(mariadb), "arn:c1", "arn:s", "loans", grouped=False)
    assert list(rows_only.rows(MINE)) == expected
    monkeypatch.setattr(verify_db, "GROUP_SIZE", 2)  # groups meet within the page
    assert list(Database(DataApi(mariadb), "arn:c1", "arn:s", "loans").rows(MINE)) == expected


def test_d8_an_id_written_unescaped_would_be_read_as_two_rows(
    mariadb: MariaDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the escaping prevents: the same table, its id written without JSON_QUOTE, reads
    one stored row as two (a loan never recorded, M-3, reported as recorded), with no error;
    grouped, the count catches it and the page is read one row per value, where it does not."""
    expected = insert_separated(mariadb, [INJECTED])
    escaped = Database(DataApi(mariadb), "arn:c1", "arn:s", "loans")
    assert list(escaped.rows(MINE)) == expected and len(expected) == 1
    unescaped = "CONCAT('\"', id, '\"')"
    for sql in ("PAGE", "ROWS"):
        text = getattr(verify_db, sql)
        assert "COALESCE(JSON_QUOTE(id), 'null')" in text
        monkeypatch.setattr(
            verify_db, sql, text.replace("COALESCE(JSON_QUOTE(id), 'null')", unescaped)
        )
    misread = list(Database(DataApi(mariadb), "arn:c1", "arn:s", "loans").rows(MINE))
    assert [row[0] for row in misread] == ["M-3", "M-4"]


def test_the_json_records_keep_the_64_kb_row_limit(mariadb: MariaDB) -> None:
    """Characters JSON escapes count as their escapes: 20,000 'é' are 120,000 characters of
    JSON (over 64 KB), 20,000 'x' are not."""
    mariadb.reset()
    sql = "SELECT 1 AS n, REPEAT(:c, 20000) AS s UNION ALL SELECT 2, 'short'"
    for char, ok in (("x", True), ("é", False), ("😀", False)):
        params = {
            "resourceArn": "arn:c1",
            "sql": sql,
            "parameters": [{"name": "c", "value": {"stringValue": char}}],
            "formatRecordsAs": "JSON",
        }
        status, body = execute(mariadb, "ExecuteStatement", params, ("admin", "p"))
        if ok:
            assert status == 200 and json.loads(body["formattedRecords"])[0]["s"] == char * 20000
        else:
            assert (status, body["__type"]) == (400, "DatabaseErrorException"), body
            assert body["message"].startswith("Packet for query is too large")


def insert_widest(mariadb: MariaDB, count: int) -> list[tuple[str, str, str, bool, str]]:
    """`count` rows as wide as the table lets a page's row be once JSON escapes it: every
    character of the id, fingerprint and decision outside the BMP (12 bytes of the answer each)."""
    mariadb.reset()
    rows = [
        ("😀" * 63 + chr(0x1F600 + k), "😀" * 64, "😀" * 16, k % 2 == 0, "-9999999999999.99")
        for k in range(count)
    ]
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(functions.contract(functions.VALIDATION).TABLE)
        for loan_id, sha, decision, mine, amount in rows:
            cur.execute(
                "INSERT INTO loan_decisions (loan_id, applicant_id, loan_type, loan_amount,"
                " decision, reasons, monthly_payment, debt_to_income, application_sha256,"
                " result_json, source) VALUES (%s, 'A', 'auto', %s, %s, '', 1, 1, %s, '{}', %s)",
                (loan_id, amount, decision, sha, "s3://b/incoming/abc-1.csv" if mine else None),
            )
        conn.commit()
    return rows


def test_d8_a_group_of_the_widest_rows_keeps_the_64_kb_row_limit(mariadb: MariaDB) -> None:
    """GROUP_SIZE rows make one value of the answer: as wide as rows can be, the value still
    fits the Data API's 64 KB per row (the emulator refuses a wider one), on one page and across
    pages."""
    expected = insert_widest(mariadb, 2 * GROUP_SIZE + 3)
    for page_rows in (GROUP_SIZE + 1, 4000):
        database = Database(DataApi(mariadb), "arn:c1", "arn:s", "loans", page_rows=page_rows)
        assert list(database.rows(MINE)) == expected


def test_d8_the_emulator_keeps_mysqls_group_limit_unless_set_var_raises_it(
    mariadb: MariaDB,
) -> None:
    """Aurora MySQL 3's group_concat_max_len is 1,024 bytes; a leading SET_VAR hint raises it
    for its statement (MySQL 8.0), with continueAfterTimeout too; a hint for a variable SET_VAR
    cannot set stays a comment."""
    mariadb.reset()

    def limit(sql: str, **more: Any) -> int:
        params = {"resourceArn": "arn:c1", "sql": sql, "formatRecordsAs": "JSON", **more}
        status, body = execute(mariadb, "ExecuteStatement", params, ("admin", "p"))
        assert status == 200, body
        return int(json.loads(body["formattedRecords"])[0]["v"])

    assert limit("SELECT @@group_concat_max_len AS v") == 1024
    hinted = "SELECT /*+ SET_VAR(group_concat_max_len = 1048576) */ @@group_concat_max_len AS v"
    assert limit(hinted) == 1048576
    assert limit(hinted, continueAfterTimeout=True) == 1048576
    assert limit(hinted.replace("1048576", "2M").lower()) == 2 * 1048576
    assert limit("SELECT @@group_concat_max_len AS v") == 1024  # for that statement alone
    assert limit("SELECT /*+ SET_VAR(max_statement_time = 7) */ @@max_statement_time AS v") != 7
    assert limit("SELECT 1 AS v /*+ SET_VAR(group_concat_max_len = 4096) */") == 1


def test_d8_the_widest_rows_are_read_in_groups_through_the_hint(mariadb: MariaDB) -> None:
    """On the strict emulator the page's hint is what keeps its groups whole."""
    expected = insert_widest(mariadb, 2 * GROUP_SIZE + 3)
    database = Database(DataApi(mariadb), "arn:c1", "arn:s", "loans")
    assert list(database.rows(MINE)) == expected
    assert database.grouped


def test_d8_groups_cut_short_without_the_hint_are_read_one_row_per_value(
    mariadb: MariaDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hint not reaching the database (nothing documents that the Data API passes it):
    GROUP_CONCAT cuts each group at 1,024 bytes, and verify reads the page again one row per
    value, as every page after it: every row is read, once."""
    expected = insert_widest(mariadb, 2 * GROUP_SIZE + 3)
    plain = verify_db.PAGE.replace("/*+ SET_VAR(group_concat_max_len = 1048576) */", "")
    assert plain != verify_db.PAGE
    monkeypatch.setattr(verify_db, "PAGE", plain)
    for page_rows in (GROUP_SIZE + 1, 4000):
        database = Database(DataApi(mariadb), "arn:c1", "arn:s", "loans", page_rows=page_rows)
        assert list(database.rows(MINE)) == expected
        assert not database.grouped


def test_d8_a_page_over_the_1_mib_response_is_read_in_halves(mariadb: MariaDB) -> None:
    """700 rows whose every character escapes to 12 bytes are ~1.3 MB of answer, over the Data
    API's 1 MiB response (the emulator refuses it): the page is asked again in halves."""
    expected = insert_widest(mariadb, 700)
    database = Database(DataApi(mariadb), "arn:c1", "arn:s", "loans")
    assert list(database.rows(MINE)) == expected
    assert database.calls > 2


def test_json_records_of_wide_rows_are_the_rows_json(mariadb: MariaDB) -> None:
    """Rows measured one by one (their bound passes the 64 KB) are joined into the same text
    one encoding of the records gives."""
    sql = "SELECT 1 AS n, REPEAT(:c, 6000) AS s, NULL AS z UNION ALL SELECT 2, 'q\"\\\\', 1.5"
    params = {
        "resourceArn": "arn:c1",
        "sql": sql,
        "parameters": [{"name": "c", "value": {"stringValue": "é"}}],
        "formatRecordsAs": "JSON",
    }
    status, body = execute(mariadb, "ExecuteStatement", params, ("admin", "p"))
    assert status == 200, body
    records = [{"n": 1, "s": "é" * 6000, "z": None}, {"n": 2, "s": 'q"\\', "z": "1.5"}]
    assert body["formattedRecords"] == json.dumps(records)
