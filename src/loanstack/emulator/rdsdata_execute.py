"""One Data API call run on MariaDB: a pooled connection, the statement (or a batch in one
transaction), and the answer in the Data API's shape; the MariaDB round trips timed on the way.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pymysql

from loanstack.emulator.faults import DEADLOCK, DEADLOCK_MESSAGE
from loanstack.emulator.mariadb import DATABASE, MariaDB, statement_timeout
from loanstack.emulator.rdsdata_errors import (
    PROVISIONED,
    STATEMENT_TIMED_OUT,
    DataApiError,
    database_error,
    from_mysql,
)
from loanstack.emulator.rdsdata_limits import check_formatted, check_request, check_response
from loanstack.emulator.rdsdata_values import bind, json_value, to_field
from loanstack.emulator.state import STATE


class RoundTrips:
    """Time spent in MariaDB's round trips: from sending a statement to reading the last packet
    of its result (PyMySQL's `execute`, which reads the whole result).

    The bench's "Data API time" also carries what the emulator does around each call (checks,
    the pool, binding, building the answer), which AWS does not add; this is the database's
    part of it, so the bench can show the two apart (docs/benchmarks.md).
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.statements = 0

    @contextlib.contextmanager
    def timing(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - start
            self.statements += 1


def execute(
    server: MariaDB,
    operation: str,
    params: dict[str, Any],
    credentials: tuple[str, ...],
    kind: str = PROVISIONED,
    sql_mode: str | None = None,
    request_bytes: int | None = None,
    schema: str | None = None,
    round_trips: RoundTrips | None = None,
) -> tuple[int, dict[str, Any]]:
    """One Data API call on MariaDB: (HTTP status, response body in the Data API's shape).

    Runs on a pooled connection of its own (`MariaDB.pool`), so concurrent calls run at once,
    as on Aurora; a fault a test injected (`faults.Faults`) answers first. `schema` is the
    cluster's own schema for the call's database (`clusterdata.schema`); None: the database
    name as it is (the test bridge, which has no cluster). `round_trips`, when given, adds the
    time of the call's statements.
    """
    arn = str(params.get("resourceArn", ""))
    faults = STATE.faults
    try:
        check_request(params, len(json.dumps(params)) if request_bytes is None else request_bytes)
        injected = faults.before_call(arn, str(credentials[0]) if credentials else "")
        if injected is not None:
            if injected.mysql_error is not None:
                raise database_error(injected.mysql_error, injected.message, kind)
            raise DataApiError(injected.code, injected.message)
        with server.pool.connection(arn, credentials, sql_mode) as conn:
            try:
                use_schema(conn, schema or params.get("database") or DATABASE)
                if faults.take_deadlock(arn):  # InnoDB rolls the victim's transaction back
                    raise pymysql.err.OperationalError(DEADLOCK, DEADLOCK_MESSAGE)
                with conn.cursor() as cur:
                    return run(conn, cur, operation, params, round_trips or RoundTrips())
            except pymysql.MySQLError:
                conn.loanstack_schema = None  # where a failed statement left it: not known
                if conn.open:
                    with contextlib.suppress(pymysql.MySQLError):
                        conn.rollback()  # a failed batch leaves nothing on the pooled connection
                raise
    except pymysql.MySQLError as err:
        failure = from_mysql(err, kind)
        return failure.status, {"__type": failure.code, "message": str(failure)}
    except DataApiError as err:
        return err.status, {"__type": err.code, "message": str(err)}


# A statement that may change or unset the connection's default database (`USE`, `DROP
# DATABASE`, also inside a longer statement): the next call on that connection selects its
# database again. Over-matching (a `USE INDEX` hint, `SELECT DATABASE()`) only costs that one
# round trip.
USE = re.compile(r"\b(?:use|database|schema)\b", re.IGNORECASE)


def use_schema(conn: Any, schema: str) -> None:
    """Select the call's database, unless the pooled connection is already on it.

    Selecting it on every call was one more MariaDB round trip per call (COM_INIT_DB), which the
    bench counted as the database's share; the connection remembers what it selected, and a
    statement that may have changed it (`USE`, `DROP DATABASE`) or failed makes the next call select it again.
    """
    if getattr(conn, "loanstack_schema", None) != schema:
        conn.loanstack_schema = None
        conn.select_db(schema)
        conn.loanstack_schema = schema


def run(
    conn: Any, cur: Any, operation: str, params: dict[str, Any], clock: RoundTrips
) -> tuple[int, dict[str, Any]]:
    if operation == "BatchExecuteStatement":
        sets = params.get("parameterSets", [])
        with clock.timing():
            conn.begin()  # like Aurora's Data API: one batch, one transaction
        if USE.search(params["sql"]):
            conn.loanstack_schema = None
        for parameters in sets:
            sql = bind(conn, params["sql"], parameters)
            with clock.timing():
                cur.execute(sql)
        with clock.timing():
            conn.commit()
        return 200, {"updateResults": [{"generatedFields": []} for _ in sets]}
    sql = bind(conn, params["sql"], params.get("parameters", []))
    if USE.search(params["sql"]):
        conn.loanstack_schema = None
    settings = hinted(sql)
    if params.get("continueAfterTimeout"):  # the statement goes on past the call's timeout
        settings.append("max_statement_time = 0")
    if settings:
        sql = f"SET STATEMENT {', '.join(settings)} FOR {sql}"
    started = time.monotonic()
    with clock.timing():
        cur.execute(sql)
    if time.monotonic() - started > statement_timeout():  # it went on: the call had timed out
        raise DataApiError("StatementTimeoutException", STATEMENT_TIMED_OUT)
    # a SELECT updates nothing: Aurora answers 0 (pymysql's rowcount is the rows read)
    updated = 0 if cur.description else max(cur.rowcount, 0)
    if cur.description and params.get("formatRecordsAs") == "JSON":
        return 200, {"numberOfRecordsUpdated": 0, "formattedRecords": formatted(cur)}
    records = [[to_field(v) for v in row] for row in cur.fetchall()] if cur.description else []
    check_response(records)
    return 200, {"numberOfRecordsUpdated": updated, "records": records}


# MySQL 8.0 reads `/*+ SET_VAR(name = value) */` right after a statement's first keyword as that
# variable's session value for the statement alone; MariaDB reads it as a comment, so the
# emulator runs such a SELECT as MariaDB's `SET STATEMENT name = value FOR ...`, which does the
# same. Only variables MySQL lets SET_VAR set (and MariaDB has), with a number (K, M, G allowed)
# for a value: MySQL
# ignores a hint for any other with a warning, and so does the emulator (the comment stays one).
# The variables below are those of MySQL's SET_VAR list with a numeric value (checked against
# the list in MySQL's announcement of the hint, 8.0.3).
# https://dev.mysql.com/doc/refman/8.0/en/optimizer-hints.html#optimizer-hints-set-var
# https://dev.mysql.com/blog-archive/new-optimizer-hint-for-changing-the-session-system-variable
# https://mariadb.com/kb/en/set-statement/
HINT = re.compile(r"\A\s*SELECT\s*/\*\+(?P<hints>.*?)\*/", re.IGNORECASE | re.DOTALL)
SET_VAR = re.compile(
    r"\bSET_VAR\s*\(\s*(?P<name>\w+)\s*=\s*(?P<value>\d+)(?P<unit>[KMG]?)\s*\)", re.IGNORECASE
)
SET_VAR_VARIABLES = frozenset(
    {
        "group_concat_max_len",
        "join_buffer_size",
        "max_heap_table_size",
        "max_join_size",
        "max_sort_length",
        "read_rnd_buffer_size",
        "sort_buffer_size",
        "sql_select_limit",
        "tmp_table_size",
    }
)


def hinted(sql: str) -> list[str]:
    """The `name = value` settings a leading SELECT's SET_VAR hints ask for, as MySQL 8.0 would
    apply them to that statement."""
    found = HINT.match(sql)
    if found is None:
        return []
    return [
        f"{m['name'].lower()} = {number(m['value'], m['unit'])}"
        for m in SET_VAR.finditer(found["hints"])
        if m["name"].lower() in SET_VAR_VARIABLES
    ]


def number(digits: str, unit: str) -> int:
    """A hint's number: its K, M or G multiplies it by 1024 once, twice, three times."""
    return int(digits) << 10 * " kmg".index(unit.lower() or " ")


def formatted(cur: Any) -> str:
    """A SELECT's rows as one JSON string (`formatRecordsAs: JSON`): an array of objects keyed by
    the column labels, numbers as JSON numbers, DECIMAL and text as strings, NULL as null, in
    place of `records`; the 64 KB row and 1 MiB response limits apply as to `records`.
    https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api-json.html
    """
    labels = [column[0] for column in cur.description]
    rows: list[tuple[Any, ...]] = list(cur.fetchall())
    if not all(PLAIN.issuperset(map(type, column)) for column in zip(*rows, strict=True)):
        rows = [tuple(map(json_value, row)) for row in rows]
    return check_formatted(labels, rows)


# Values a JSON result carries as they are (json_value's identity cases): a page of `loanstack
# verify` is thousands of rows of these, and building a field per value cost ~10 µs a row, a
# cost AWS's server has not and the bench's two cores would count against the tool.
PLAIN = frozenset({str, int, float, bool, type(None)})
