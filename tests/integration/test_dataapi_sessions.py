"""The emulator's Data API on MariaDB: pooled connections (one per concurrent caller, reused
across calls, retired on new credentials), the password checked on every call, errors as Aurora
reports them, and the faults a test can inject (emulator/faults.py)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from loanstack.emulator import mariadb as mariadb_module
from loanstack.emulator import rdsdata
from loanstack.emulator.mariadb import DATABASE_USER, MariaDB
from loanstack.emulator.rdsdata_errors import PROVISIONED, SERVERLESS_V1, database_error
from loanstack.emulator.rdsdata_execute import execute
from loanstack.emulator.state import STATE


def connection_id(server: MariaDB, cluster: str, credentials: tuple[str, str]) -> int:
    params = {"resourceArn": cluster, "database": "loans", "sql": "SELECT CONNECTION_ID()"}
    status, body = execute(server, "ExecuteStatement", params, credentials)
    assert status == 200, body
    return int(body["records"][0][0]["longValue"])


def test_connections_are_reused_per_cluster_and_credentials(mariadb: MariaDB) -> None:
    mariadb.reset()
    first = connection_id(mariadb, "arn:c1", ("admin", "p1"))
    assert connection_id(mariadb, "arn:c1", ("admin", "p1")) == first  # reused when idle
    other = connection_id(mariadb, "arn:c2", ("admin", "p1"))
    rotated = connection_id(mariadb, "arn:c1", ("admin", "p2"))  # a rotation: a new connection
    assert len({first, other, rotated}) == 3
    assert [k for k in mariadb.pool.idle_keys() if k[0] == "arn:c1"] == [("arn:c1", "admin", "p2")]


def test_concurrent_calls_run_at_once_on_connections_of_their_own(mariadb: MariaDB) -> None:
    """Aurora's Data API does not serialise callers: a call answers while another one's long
    statement still runs, on another connection."""
    mariadb.reset()
    slow_id: list[int] = []

    def slow() -> None:
        params = {
            "resourceArn": "arn:c1",
            "sql": "SELECT CONNECTION_ID() FROM DUAL WHERE SLEEP(3) = 0",
        }
        status, body = execute(mariadb, "ExecuteStatement", params, ("admin", "p"))
        assert status == 200, body
        slow_id.append(int(body["records"][0][0]["longValue"]))

    worker = threading.Thread(target=slow)
    worker.start()
    deadline = time.monotonic() + 10
    while mariadb.pool.in_use == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    fast = connection_id(mariadb, "arn:c1", ("admin", "p"))
    assert worker.is_alive(), "the second call waited for the first one's statement"
    worker.join()
    assert slow_id and slow_id[0] != fast
    assert mariadb.pool.peak >= 2


def test_batches_locking_rows_in_opposite_orders_deadlock_as_on_aurora(mariadb: MariaDB) -> None:
    """Two batches (one transaction each) insert ids 1 and 2 in opposite orders: InnoDB picks a
    victim (1213) and the other batch commits, as two Lambda invocations would meet on Aurora."""
    mariadb.reset()
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    sql = "INSERT INTO t SELECT :id FROM DUAL WHERE SLEEP(:pause) = 0"

    def row(id_: int, pause: float) -> list[dict[str, Any]]:
        return [{"name": "id", "value": {"longValue": id_}},
                {"name": "pause", "value": {"doubleValue": pause}}]  # fmt: skip

    results: dict[str, tuple[int, dict[str, Any]]] = {}

    def batch(name: str, first: int, second: int) -> None:
        params = {"resourceArn": "arn:c1", "sql": sql,
                  "parameterSets": [row(first, 0), row(second, 0.5)]}  # fmt: skip
        results[name] = execute(mariadb, "BatchExecuteStatement", params, ("admin", "p"))

    threads = [threading.Thread(target=batch, args=a) for a in (("a", 1, 2), ("b", 2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(status for status, _ in results.values())
    assert statuses == [200, 400], results
    [failed] = [body for status, body in results.values() if status == 400]
    assert failed["__type"] == "DatabaseErrorException", failed
    assert failed["message"].startswith("Database error code: 1213. Message: Deadlock found")
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM t")
        assert cur.fetchone()[0] == 2  # the survivor's two rows, nothing of the victim's


def test_sql_errors_are_database_errors_with_mysqls_number(mariadb: MariaDB) -> None:
    """DatabaseErrorException on provisioned and Serverless v2 clusters, BadRequestException
    only on Serverless v1, the message as Aurora words it."""
    mariadb.reset()
    params = {"resourceArn": "arn:c1", "sql": "SELECT * FROM nope"}
    status, body = execute(mariadb, "ExecuteStatement", params, ("admin", "p"))
    assert (status, body["__type"]) == (400, "DatabaseErrorException")
    assert body["message"] == "Database error code: 1146. Message: Table 'loans.nope' doesn't exist"
    status, body = execute(mariadb, "ExecuteStatement", params, ("admin", "p"), SERVERLESS_V1)
    assert (status, body["__type"]) == (400, "BadRequestException")


def test_a_select_updates_no_records(mariadb: MariaDB) -> None:
    mariadb.reset()
    params = {"resourceArn": "arn:c1", "sql": "SELECT 1 UNION SELECT 2"}
    status, body = execute(mariadb, "ExecuteStatement", params, ("admin", "p"))
    assert status == 200 and len(body["records"]) == 2
    assert body["numberOfRecordsUpdated"] == 0


def test_injected_faults_answer_as_aurora_does(mariadb: MariaDB) -> None:
    mariadb.reset()
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    faults = STATE.faults
    insert = {"resourceArn": "arn:aws:rds:r:1:cluster:c1", "sql": "INSERT INTO t VALUES (:id)",
              "parameters": [{"name": "id", "value": {"longValue": 1}}]}  # fmt: skip
    try:
        faults.unavailable(0.4, cluster="c1")
        status, body = execute(mariadb, "ExecuteStatement", insert, ("admin", "p"))
        assert (status, body["__type"]) == (504, "DatabaseUnavailableException")
        other = dict(insert, resourceArn="arn:aws:rds:r:1:cluster:c2", sql="SELECT 1")
        assert execute(mariadb, "ExecuteStatement", other, ("admin", "p"))[0] == 200  # c1 only
        time.sleep(0.5)
        faults.deny_access(0.4)
        status, body = execute(mariadb, "ExecuteStatement", insert, ("admin", "p"))
        assert (status, body["__type"]) == (400, "DatabaseErrorException")
        assert body["message"].startswith(
            "Database error code: 1045. Message: Access denied for user 'admin'"
        )
        time.sleep(0.5)
        faults.deadlock()
        status, body = execute(mariadb, "ExecuteStatement", insert, ("admin", "p"))
        assert body["message"].startswith("Database error code: 1213."), body
        assert execute(mariadb, "ExecuteStatement", insert, ("admin", "p"))[0] == 200  # once
        with mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM t")
            assert cur.fetchone()[0] == 1
    finally:
        faults.clear()


def test_a_failed_batch_leaves_nothing_on_the_reused_connection(mariadb: MariaDB) -> None:
    mariadb.reset()
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    value = [{"name": "id", "value": {"longValue": 1}}]
    params = {"resourceArn": "arn:c1", "sql": "INSERT INTO t VALUES (:id)",
              "parameterSets": [value, value]}  # fmt: skip
    status, _ = execute(mariadb, "BatchExecuteStatement", params, ("admin", "p"))
    assert status == 400  # the duplicate fails the batch
    count = {"resourceArn": "arn:c1", "sql": "SELECT COUNT(*) FROM t"}
    status, body = execute(mariadb, "ExecuteStatement", count, ("admin", "p"))
    assert (status, body["records"]) == (200, [[{"longValue": 0}]])


def test_the_password_is_checked_on_every_call(
    mariadb: MariaDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    mariadb.reset()
    checks: list[str] = []

    def check_access(account: str, region: str, params: dict[str, Any]) -> tuple[str, str]:
        checks.append(params["secretArn"])
        if params["secretArn"] != "good":
            raise database_error(1045, "Access denied for user 'admin'@'%'")
        return "admin", "p"

    monkeypatch.setattr(rdsdata, "check_access", check_access)
    monkeypatch.setattr(STATE, "mariadb", mariadb)

    def call(secret: str) -> tuple[int, dict[str, Any]]:
        body = {"resourceArn": "arn:c1", "secretArn": secret, "sql": "SELECT 1"}
        response = SimpleNamespace(body=json.dumps(body), current_account="1", region="r")
        status, _, text = rdsdata.respond(response, "ExecuteStatement")
        return status, json.loads(text)

    assert call("good")[0] == 200 and call("good")[0] == 200
    status, body = call("stale")
    assert (status, body["__type"]) == (400, "DatabaseErrorException")
    assert "Access denied" in body["message"]
    assert checks == ["good", "good", "stale"]
    assert [k for k in mariadb.pool.idle_keys() if k[0] == "arn:c1"] == [("arn:c1", "admin", "p")]


def test_aurora_default_sql_mode_clips_and_a_parameter_groups_strict_mode_refuses(
    mariadb: MariaDB,
) -> None:
    """Aurora MySQL 3's default parameter group leaves sql_mode without STRICT_TRANS_TABLES: an
    over-long value is cut with a warning. A template that sets a strict sql_mode in its cluster
    parameter group gets MySQL's 1406 instead (MariaDB's own default would have refused both)."""
    mariadb.reset()
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (code VARCHAR(3))")
    insert = {"resourceArn": "arn:c1", "sql": "INSERT INTO t VALUES (:code)",
              "parameters": [{"name": "code", "value": {"stringValue": "ABCDEF"}}]}  # fmt: skip
    status, body = execute(mariadb, "ExecuteStatement", insert, ("admin", "p"))
    assert status == 200, body
    read = {"resourceArn": "arn:c1", "sql": "SELECT code FROM t"}
    assert execute(mariadb, "ExecuteStatement", read, ("admin", "p"))[1]["records"] == [
        [{"stringValue": "ABC"}]
    ]
    strict = "STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION"
    status, body = execute(mariadb, "ExecuteStatement", insert, ("admin", "p"), PROVISIONED, strict)
    assert (status, body["__type"]) == (400, "DatabaseErrorException")
    assert body["message"].startswith("Database error code: 1406. Message: Data too long")


def test_the_server_runs_with_aurora_mysql_3s_character_set_and_case_sensitive_names(
    mariadb: MariaDB,
) -> None:
    params = {
        "resourceArn": "arn:c1",
        "sql": "SELECT @@character_set_server, @@lower_case_table_names",
    }
    status, body = execute(mariadb, "ExecuteStatement", params, ("admin", "p"))
    assert status == 200
    assert body["records"] == [[{"stringValue": "utf8mb4"}, {"longValue": 0}]]


def call(
    mariadb: MariaDB, sql: str, parameters: list[dict[str, Any]] | None = None, **extra: Any
) -> tuple[int, dict[str, Any]]:
    params = {"resourceArn": "arn:c1", "sql": sql, "parameters": parameters or [], **extra}
    return execute(mariadb, "ExecuteStatement", params, ("admin", "p"))


def test_the_documented_request_limits_are_enforced(mariadb: MariaDB) -> None:
    mariadb.reset()
    status, body = call(mariadb, "SELECT 1 " + " " * 65536)
    assert (status, body["__type"]) == (400, "BadRequestException")
    assert "length less than or equal to 65536" in body["message"]
    big = [{"name": "doc", "value": {"stringValue": "x" * (4 * 1024 * 1024)}}]
    status, body = call(mariadb, "SELECT LENGTH(:doc)", big)
    assert (status, body["__type"]) == (400, "BadRequestException")
    assert "exceeds the limit of 4194304 bytes" in body["message"]


def test_the_documented_response_limits_are_enforced(mariadb: MariaDB) -> None:
    mariadb.reset()
    status, body = call(mariadb, "SELECT REPEAT('x', 70000)")
    assert (status, body["__type"]) == (400, "DatabaseErrorException")
    assert body["message"].startswith("Packet for query is too large")
    rows = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20) "
    status, body = call(mariadb, rows + "SELECT REPEAT('x', 60000) FROM n")
    assert (status, body["__type"]) == (400, "DatabaseErrorException")
    assert body["message"] == "Database returned more than the allowed response size limit"
    assert call(mariadb, rows + "SELECT REPEAT('x', 40000) FROM n")[0] == 200  # 0.8 MB


def test_records_formatted_as_json_are_one_string_keyed_by_column_labels(mariadb: MariaDB) -> None:
    """formatRecordsAs JSON (https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api-json.html):
    a SELECT answers `formattedRecords`, one JSON array of objects keyed by the labels, instead
    of `records`; other statements ignore it; the response limits still apply."""
    mariadb.reset()
    sql = "SELECT 'a' AS s, 7 AS n, CAST(1.50 AS DECIMAL(5,2)) AS d, NULL AS z UNION SELECT 'b', 8, 2, NULL"
    params = {"resourceArn": "arn:c1", "sql": sql, "formatRecordsAs": "JSON"}
    status, body = execute(mariadb, "ExecuteStatement", params, ("admin", "p"))
    assert status == 200 and "records" not in body and body["numberOfRecordsUpdated"] == 0
    assert json.loads(body["formattedRecords"]) == [
        {"s": "a", "n": 7, "d": "1.50", "z": None},
        {"s": "b", "n": 8, "d": "2.00", "z": None},
    ]
    status, body = execute(mariadb, "ExecuteStatement", {**params, "sql": "DO 1"}, ("admin", "p"))
    assert status == 200 and "formattedRecords" not in body
    rows = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20) "
    big = {**params, "sql": rows + "SELECT REPEAT('x', 60000) AS x FROM n"}
    status, body = execute(mariadb, "ExecuteStatement", big, ("admin", "p"))
    assert (status, body["__type"]) == (400, "DatabaseErrorException")


def test_the_statement_timeout_stops_a_statement_unless_continue_after_timeout(
    mariadb: MariaDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """45 s on AWS (1 s here): the statement is stopped, or with continueAfterTimeout it goes on
    and commits while the call answers StatementTimeoutException."""
    mariadb.reset()
    monkeypatch.setenv("LOANSTACK_EMULATOR_STATEMENT_TIMEOUT", "1")
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    slow = "INSERT INTO t SELECT :id FROM DUAL WHERE SLEEP(1.5) = 0"
    status, body = call(mariadb, slow, [{"name": "id", "value": {"longValue": 1}}])
    assert (status, body["__type"]) == (400, "StatementTimeoutException"), body
    status, body = call(
        mariadb, slow, [{"name": "id", "value": {"longValue": 2}}], continueAfterTimeout=True
    )
    assert (status, body["__type"]) == (400, "StatementTimeoutException"), body
    status, body = call(mariadb, "SELECT id FROM t")
    assert body["records"] == [[{"longValue": 2}]]  # only the one that went on


def test_strings_are_bound_exactly_without_pymysqls_per_character_escaping(
    mariadb: MariaDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The emulator's client must not add a cost AWS does not have: PyMySQL's escape_string
    walks each character in Python (about 50 µs per row of a chunk document)."""
    import pymysql.converters

    def refuse(value: str, mapping: Any = None) -> str:
        raise AssertionError("PyMySQL's per-character escaping was used")

    monkeypatch.setattr(pymysql.converters, "escape_string", refuse)
    mariadb.reset()
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (v TEXT)")
    nasty = "a'b\"c\\d\ne\rf\x00g\x1ah %s :x ' OR 1=1 -- é€😀"
    for sql_mode in (None, "NO_BACKSLASH_ESCAPES"):
        params = {"resourceArn": "arn:c1", "sql": "INSERT INTO t VALUES (:v)",
                  "parameters": [{"name": "v", "value": {"stringValue": nasty}}]}  # fmt: skip
        status, body = execute(
            mariadb, "ExecuteStatement", params, ("admin", "p"), sql_mode=sql_mode
        )
        assert status == 200, body
    status, body = call(mariadb, "SELECT v FROM t")
    assert body["records"] == [[{"stringValue": nasty}], [{"stringValue": nasty}]]


def test_the_bridge_times_each_statements_mariadb_round_trip_apart_from_its_own_work(
    mariadb: MariaDB,
) -> None:
    """The bench's database time is MariaDB's round trips, not the emulator's checks, pool and
    binding around them: each statement is timed from sending it to its result's last packet."""
    import boto3

    from loanstack.emulator.rdsdata_bridge import DataApiBridge

    mariadb.reset()
    bridge = DataApiBridge(mariadb)
    keys = {"aws_access_key_id": "x", "aws_secret_access_key": "x"}
    client = bridge.install(boto3.client("rds-data", region_name="us-east-1", **keys))
    arn = {"resourceArn": "arn:aws:rds:us-east-1:123456789012:cluster:c1",
           "secretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:s"}  # fmt: skip
    client.execute_statement(**arn, sql="CREATE TABLE t (id INT PRIMARY KEY)")
    client.execute_statement(**arn, sql="SELECT SLEEP(0.3)")
    sets = [[{"name": "id", "value": {"longValue": i}}] for i in (1, 2)]
    client.batch_execute_statement(**arn, sql="INSERT INTO t VALUES (:id)", parameterSets=sets)
    # two statements, then BEGIN, two inserts, COMMIT: each a round trip of its own
    assert bridge.round_trips.statements == 6
    assert 0.3 <= bridge.round_trips.seconds < bridge.seconds


def test_a_pooled_connection_selects_the_calls_database_only_when_it_is_not_on_it(
    mariadb: MariaDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Selecting the database on every call was one more MariaDB round trip per call, counted as
    the database's share; a statement that moved the connection elsewhere (`USE`) or left it on
    no database (`DROP DATABASE`) makes the next call select it again."""
    import pymysql.connections

    selected: list[str] = []
    select_db = pymysql.connections.Connection.select_db

    def counted(conn: Any, db: str) -> None:
        selected.append(db)
        select_db(conn, db)

    monkeypatch.setattr(pymysql.connections.Connection, "select_db", counted)
    mariadb.reset()
    mariadb.pool.close()
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT)")
    here = "SELECT COUNT(*) FROM t"  # only `loans` has a table t
    for _ in range(3):
        assert call(mariadb, here)[1]["records"] == [[{"longValue": 0}]]
    assert selected == ["loans"]
    assert call(mariadb, "USE mysql")[0] == 200
    assert call(mariadb, here)[1]["records"] == [[{"longValue": 0}]]
    with mariadb.connect(None) as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE other")
    for sql in ("DROP DATABASE loans", "CREATE DATABASE loans"):
        params = {"resourceArn": "arn:c1", "sql": sql, "database": "other"}
        assert execute(mariadb, "ExecuteStatement", params, ("admin", "p"))[0] == 200
    assert call(mariadb, "CREATE TABLE t (id INT)")[0] == 200
    assert call(mariadb, "SELECT COUNT(*) FROM t")[1]["records"] == [[{"longValue": 0}]]
    with mariadb.connect(None) as conn, conn.cursor() as cur:
        cur.execute("DROP DATABASE other")


def test_a_socket_connection_to_a_server_without_tls_builds_no_ssl_context(
    mariadb: MariaDB,
) -> None:
    """pymysql's PREFERRED mode loads the system's CA store for every connection (32 ms of CPU,
    against 0.4 ms) although this server offers no TLS: the Data API's connections, each
    `reset` and each test's own `connect` paid it (docs/testing.md, "Keeping it fast")."""
    credentials = ("admin", "secret", DATABASE_USER)
    mariadb.reset()
    with mariadb.connect(None) as root:
        assert getattr(root, "ctx", None) is None
        with root.cursor() as cur:
            cur.execute("CREATE USER IF NOT EXISTS 'admin'@'localhost' IDENTIFIED BY 'secret'")
    with mariadb.connect_for(credentials) as own:
        assert getattr(own, "ctx", None) is None
    with mariadb.connect(None) as root, root.cursor() as cur:
        cur.execute("DROP USER 'admin'@'localhost'")


def test_socket_connections_to_the_tls_server_keep_tls_with_one_context(
    mariadb_tls: MariaDB,
) -> None:
    """The emulator's server offers TLS, so its socket's clients use it (PREFERRED did), but
    through one context for the server instead of one built per connection (32 ms of CPU each;
    about nine connections a dev deploy and destroy on the embedded emulator)."""
    with mariadb_tls.connect(None) as first, mariadb_tls.connect(None) as second:
        assert first.ctx is not None and first.ctx is second.ctx
        with second.cursor() as cur:
            cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            row = cur.fetchone()
            assert row is not None and row[1], "the socket connection is not encrypted"


def test_a_second_server_copies_the_installed_system_tables(
    mariadb: MariaDB, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mariadb-install-db` is 0.6-0.7 s of CPU, most of a server's start: it runs once per
    process (the session's server ran it) and each later server starts from a copy, with the
    settings and accounts a fresh install has."""
    commands: list[str] = []
    run = subprocess.run

    def spy(args: list[str], **kwargs: Any) -> Any:
        commands.append(Path(args[0]).name)
        return run(args, **kwargs)

    monkeypatch.setattr(mariadb_module.subprocess, "run", spy)
    second = MariaDB(Path(tmp_path_factory.mktemp("mdb2", numbered=True)))
    second.start()
    try:
        assert "mariadb-install-db" not in commands, commands
        with second.connect(None) as conn, conn.cursor() as cur:
            cur.execute("SELECT @@group_concat_max_len, @@sql_mode, @@character_set_server")
            assert cur.fetchone() == (1024, "NO_ENGINE_SUBSTITUTION", "utf8mb4")
            cur.execute("SHOW DATABASES")
            assert {row[0] for row in cur.fetchall()} == {
                "information_schema",
                "mysql",
                "performance_schema",
                "sys",
            }
    finally:
        second.stop()
