"""The RDS Data API on a private MariaDB server: Aurora MySQL's SQL, for real, on any machine.

The loan validation function talks to Aurora only through `rds-data` (D1). Its statements run on
MariaDB with PyMySQL (`:name` parameters and Data API field values translated both ways) and are
answered in the Data API's response shape. Two ways in, one execution path (`execute`):

- `serve`: the emulator's rds-data endpoint (moto's own only echoes canned results). Like Aurora,
  it refuses a cluster without the Data API and a secret whose password the cluster does not
  accept, so a broken rotation shows as a failing Data API call.
- `DataApiBridge`: a botocore hook on one client, for tests that use moto's in-memory mocks.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import re
import time
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pymysql
from pymysql.constants import SERVER_STATUS

from loanstack.emulator.clusterdata import data_api_schema
from loanstack.emulator.faults import ACCESS_DENIED, DEADLOCK, DEADLOCK_MESSAGE
from loanstack.emulator.mariadb import DATABASE_USER, MariaDB, statement_timeout, string_literal
from loanstack.emulator.rds import master_password
from loanstack.emulator.state import STATE

PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def from_field(field: dict[str, Any], hint: str | None) -> Any:
    if field.get("isNull"):
        return None
    for key in ("stringValue", "longValue", "doubleValue", "booleanValue", "blobValue"):
        if key in field:
            value = field[key]
            return Decimal(value) if hint == "DECIMAL" else value
    raise ValueError(f"unsupported Data API value {field}")


def to_field(value: Any) -> dict[str, Any]:
    if value is None:
        return {"isNull": True}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"longValue": value}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, bytes):
        return {"blobValue": value}
    if isinstance(value, datetime.datetime):
        return {"stringValue": value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]}
    return {"stringValue": str(value)}  # DECIMAL and text come back as strings, as from Aurora


def bind(conn: Any, sql: str, parameters: list[dict[str, Any]]) -> str:
    """The statement with its `:name` parameters as SQL literals, ready to send.

    The Data API binds parameters on the server side, at no cost to the caller; PyMySQL's own
    escaping of a string walks it in Python (about 0.3 µs a character: ~50 µs per row of a
    chunk document), a cost AWS does not have that the bench would count as the database's.
    Strings are escaped with C-level replaces instead (`mariadb.string_literal`), to the same
    result; other types keep PyMySQL's literals.
    """
    values = {p["name"]: from_field(p["value"], p.get("typeHint")) for p in parameters}
    no_backslash = bool(conn.server_status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES)

    def literal(match: re.Match[str]) -> str:
        value = values[match.group(1)]
        if isinstance(value, str):
            return string_literal(value, no_backslash)
        return str(conn.escape(value))

    return PARAMETER.sub(literal, sql)


class DataApiBridge:
    """Answers rds-data calls from a MariaDB connection; counts the calls made."""

    def __init__(self, server: MariaDB, measure: bool = True) -> None:
        self.server, self.measure = server, measure
        self.calls: dict[str, int] = {"ExecuteStatement": 0, "BatchExecuteStatement": 0}
        self.statements: list[str] = []  # the SQL of each call, in order
        self.largest = {"request": 0, "response": 0}  # bytes of the JSON bodies, as sent
        self.seconds = 0.0  # spent answering, i.e. inside the stand-in for the Data API
        self.cpu_seconds = 0.0  # of it, the calling thread's CPU time (pymysql's side of the calls)

    def install(self, client: Any) -> Any:
        for operation in self.calls:
            client.meta.events.register(f"before-parameter-build.rds-data.{operation}", self.keep)
            client.meta.events.register(f"before-call.rds-data.{operation}", self.answer)
        return client

    @staticmethod
    def keep(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """At before-call the request is already serialised; keep the API parameters for it."""
        context["data_api_params"] = dict(params)

    def answer(
        self, model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> tuple[Any, dict[str, Any]]:
        """`params` is botocore's serialised request: its size is the request's, as sent."""
        start, cpu = time.perf_counter(), time.thread_time()
        self.calls[model.name] += 1
        api_params = context["data_api_params"]
        self.statements.append(api_params.get("sql", ""))
        size = request_size(params.get("body") or b"", params.get("headers") or {})
        status, body = execute(self.server, model.name, api_params, ("bridge",), request_bytes=size)
        self.seconds += time.perf_counter() - start
        self.cpu_seconds += time.thread_time() - cpu
        if self.measure:  # sizes as sent, to hold the function to the Data API's limits
            self.largest["request"] = max(self.largest["request"], size)
            self.largest["response"] = max(self.largest["response"], len(json.dumps(body)))
        if status != 200:
            body = {"Error": {"Code": body["__type"], "Message": body["message"]}}
        return SimpleNamespace(status_code=status), body


def request_size(body: bytes | str, headers: Any) -> int:
    """Bytes of a request as the Data API's 4 MiB limit counts them: the body and the headers."""
    head = sum(len(str(k)) + len(str(v)) + 4 for k, v in dict(headers).items())  # "k: v\r\n"
    return (len(body.encode()) if isinstance(body, str) else len(body)) + head


# The HTTP status of each Data API error, as the service model gives it
# (https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/CommonErrors.html and each
# operation's Errors section); moto takes the status from the response headers.
STATUS = {
    "BadRequestException": 400,
    "DatabaseErrorException": 400,
    "DatabaseNotFoundException": 404,
    "DatabaseResumingException": 400,
    "DatabaseUnavailableException": 504,
    "HttpEndpointNotEnabledException": 400,
    "InternalServerErrorException": 500,
    "InvalidSecretException": 400,
    "NotFoundException": 404,
    "SecretsErrorException": 400,
    "StatementTimeoutException": 400,
}
PROVISIONED, SERVERLESS_V1 = "provisioned", "serverless"


class DataApiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    @property
    def status(self) -> int:
        return STATUS.get(self.code, 400)


def database_error(number: int, text: str, kind: str = PROVISIONED) -> DataApiError:
    """A SQL or login failure as the Data API reports it: `DatabaseErrorException` on
    provisioned and Serverless v2 clusters, `BadRequestException` only on Serverless v1 ("This
    error only appears in calls from Aurora Serverless v1 databases"), with MySQL's error number
    in the message as Aurora words it.
    https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/API_ExecuteStatement.html
    """
    code = "BadRequestException" if kind == SERVERLESS_V1 else "DatabaseErrorException"
    return DataApiError(code, f"Database error code: {number}. Message: {text}")


def from_mysql(err: pymysql.MySQLError, kind: str) -> DataApiError:
    number = err.args[0] if err.args and isinstance(err.args[0], int) else 0
    text = str(err.args[1]) if len(err.args) > 1 else str(err)
    return database_error(number, text, kind)


def execute(
    server: MariaDB,
    operation: str,
    params: dict[str, Any],
    credentials: tuple[str, ...],
    kind: str = PROVISIONED,
    sql_mode: str | None = None,
    request_bytes: int | None = None,
    schema: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """One Data API call on MariaDB: (HTTP status, response body in the Data API's shape).

    Runs on a pooled connection of its own (`MariaDB.pool`), so concurrent calls run at once,
    as on Aurora; a fault a test injected (`faults.Faults`) answers first. `schema` is the
    cluster's own schema for the call's database (`clusterdata.schema`); None: the database
    name as it is (the test bridge, which has no cluster).
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
                conn.select_db(schema or params.get("database") or "loans")
                if faults.take_deadlock(arn):  # InnoDB rolls the victim's transaction back
                    raise pymysql.err.OperationalError(DEADLOCK, DEADLOCK_MESSAGE)
                with conn.cursor() as cur:
                    return run(conn, cur, operation, params)
            except pymysql.MySQLError:
                if conn.open:
                    with contextlib.suppress(pymysql.MySQLError):
                        conn.rollback()  # a failed batch leaves nothing on the pooled connection
                raise
    except pymysql.MySQLError as err:
        failure = from_mysql(err, kind)
        if err.args and err.args[0] in TIMED_OUT_ERRORS:
            failure = DataApiError("StatementTimeoutException", STATEMENT_TIMED_OUT)
        return failure.status, {"__type": failure.code, "message": str(failure)}
    except DataApiError as err:
        return err.status, {"__type": err.code, "message": str(err)}


def run(conn: Any, cur: Any, operation: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    if operation == "BatchExecuteStatement":
        sets = params.get("parameterSets", [])
        conn.begin()  # like Aurora's Data API: one batch, one transaction
        for parameters in sets:
            cur.execute(bind(conn, params["sql"], parameters))
        conn.commit()
        return 200, {"updateResults": [{"generatedFields": []} for _ in sets]}
    sql = bind(conn, params["sql"], params.get("parameters", []))
    if params.get("continueAfterTimeout"):  # the statement goes on past the call's timeout
        sql = f"SET STATEMENT max_statement_time = 0 FOR {sql}"
    started = time.monotonic()
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


def formatted(cur: Any) -> str:
    """A SELECT's rows as one JSON string (`formatRecordsAs: JSON`): an array of objects keyed by
    the column labels, numbers as JSON numbers, DECIMAL and text as strings, NULL as null, in
    place of `records`; the 64 KB row and 1 MiB response limits apply as to `records`.
    https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api-json.html
    """
    labels = [column[0] for column in cur.description]
    encode = ROW_JSON.encode  # json.dumps's defaults, without its per-call set-up
    rows = [
        encode(dict(zip(labels, row if PLAIN.issuperset(map(type, row)) else map(json_value, row), strict=True)))
        for row in cur
    ]  # fmt: skip
    for row in rows:
        if len(row) > ROW_LIMIT:
            raise DataApiError(
                "DatabaseErrorException",
                f"Packet for query is too large ({len(row)} > {ROW_LIMIT}): a row of the result "
                "exceeds the Data API's 64 KB",
            )
    text = "[" + ",".join(rows) + "]"
    if len(text) > RESPONSE_LIMIT:
        raise DataApiError(
            "DatabaseErrorException", "Database returned more than the allowed response size limit"
        )
    return text


# Values a JSON result carries as they are (json_value's identity cases): a page of `loanstack
# verify` is 4,000 rows of these, and building a field per value cost ~10 µs a row, a cost AWS's
# server has and the bench's two cores would count against the tool.
PLAIN = frozenset({str, int, float, bool, type(None)})
ROW_JSON = json.JSONEncoder()


def json_value(value: Any) -> Any:
    """One value of a JSON-formatted result: what `to_field` would carry, unwrapped."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return next(iter(to_field(value).values()))


# The Data API's documented limits:
# https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.limitations.html (1 MiB
# response, 64 KB per row), https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.html
# (45 s per call, continueAfterTimeout), the `sql` member's length in the API reference
# (https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/API_ExecuteStatement.html), and
# the 4 MiB request, headers and JSON included (the Data API's request quota).
REQUEST_LIMIT = 4 * 1024 * 1024
RESPONSE_LIMIT = 1024 * 1024
ROW_LIMIT = 64 * 1024
SQL_LIMIT = 65536
STATEMENT_TIMED_OUT = "The statement ran past the Data API's call timeout and was stopped"
TIMED_OUT_ERRORS = (1969, 3024)  # MariaDB's max_statement_time, MySQL's max_execution_time


def check_request(params: dict[str, Any], request_bytes: int) -> None:
    """Refuse what AWS refuses before running anything."""
    if request_bytes > REQUEST_LIMIT:
        raise DataApiError(
            "BadRequestException",
            f"Request size {request_bytes} bytes exceeds the limit of {REQUEST_LIMIT} bytes",
        )
    if len(str(params.get("sql", ""))) > SQL_LIMIT:
        raise DataApiError(
            "BadRequestException",
            "1 validation error detected: Value at 'sql' failed to satisfy constraint: "
            f"Member must have length less than or equal to {SQL_LIMIT}",
        )


def check_response(records: list[list[dict[str, Any]]]) -> None:
    """Refuse a result AWS would not return (sizes as the JSON of the records)."""
    total = 0
    for row in records:
        size = len(json.dumps(row))
        if size > ROW_LIMIT:
            raise DataApiError(
                "DatabaseErrorException",
                f"Packet for query is too large ({size} > {ROW_LIMIT}): a row of the result "
                "exceeds the Data API's 64 KB",
            )
        total += size
    if total > RESPONSE_LIMIT:
        raise DataApiError(
            "DatabaseErrorException", "Database returned more than the allowed response size limit"
        )


# --- the emulator's endpoint --------------------------------------------------------------------


def serve(server: MariaDB) -> None:
    """Answer rds-data on the emulator from `server` (the routes and handlers are patches.py's)."""
    STATE.serve(server)


def execute_statement(response: Any) -> Any:
    return respond(response, "ExecuteStatement")


def batch_execute_statement(response: Any) -> Any:
    return respond(response, "BatchExecuteStatement")


def respond(response: Any, operation: str) -> Any:
    params = json.loads(response.body or "{}")
    try:
        credentials = check_access(response.current_account, response.region, params)
        server = STATE.mariadb
        if server is None:
            raise DataApiError(
                "InternalServerErrorException", "the emulator's Data API has no MariaDB server"
            )
        kind, sql_mode = cluster_settings(response.current_account, response.region, params)
        size = request_size(response.body or b"", getattr(response, "headers", None) or {})
        schema = data_api_schema(
            find_cluster(response.current_account, response.region, params), params
        )
        status, body = execute(server, operation, params, credentials, kind, sql_mode, size, schema)
    except DataApiError as err:
        status, body = err.status, {"__type": err.code, "message": str(err)}
    # moto takes the HTTP status from the headers' "status" (else 200: errors looked like success)
    return status, {"Content-Type": "application/json", "status": str(status)}, json.dumps(body)


def find_cluster(account_id: str, region: str, params: dict[str, Any]) -> Any:
    from moto.rds.models import rds_backends

    cluster_id = str(params.get("resourceArn", "")).rsplit(":", 1)[-1]
    try:
        return rds_backends[account_id][region].clusters.get(cluster_id)
    except KeyError:  # a region moto does not serve
        return None


def cluster_settings(
    account_id: str, region: str, params: dict[str, Any]
) -> tuple[str, str | None]:
    """The cluster's kind (Serverless v1 or not: it decides the error codes) and the sql_mode
    its cluster parameter group sets (None: Aurora's default)."""

    cluster = find_cluster(account_id, region, params)
    if cluster is None:
        return PROVISIONED, None
    kind = SERVERLESS_V1 if getattr(cluster, "engine_mode", "") == SERVERLESS_V1 else PROVISIONED
    groups = cluster.backend.db_cluster_parameter_groups
    group = groups.get(str(getattr(cluster, "parameter_group", "") or "").lower())
    value = group.parameters.get("sql_mode", {}).get("ParameterValue") if group else None
    return kind, (str(value) if value is not None else None)


def check_access(account_id: str, region: str, params: dict[str, Any]) -> tuple[str, ...]:
    """What Aurora checks before every statement: the cluster, its Data API, the secret.

    Returns the credentials, which select the pooled connections: the master user's (checked
    here against the cluster's master password; it runs as MariaDB's root, Aurora's master has
    every privilege the functions use), or another user's, marked `DATABASE_USER`, which the pool
    logs in as, so MariaDB itself authenticates it and enforces its grants. Error codes as the
    ExecuteStatement API reference lists them (NotFoundException, HttpEndpointNotEnabledException,
    SecretsErrorException, InvalidSecretException; a wrong password is MySQL's 1045):
    https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/API_ExecuteStatement.html
    https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.troubleshooting.html
    """
    from moto.rds.models import rds_backends
    from moto.secretsmanager.models import secretsmanager_backends

    cluster = find_cluster(account_id, region, params)
    if cluster is None:
        raise DataApiError("NotFoundException", f"DB cluster {params.get('resourceArn')} not found")
    cluster_id = cluster.db_cluster_identifier
    if not cluster._enable_http_endpoint:
        raise DataApiError(
            "HttpEndpointNotEnabledException",
            f"HttpEndpoint is not enabled for cluster {cluster_id}",
        )
    from loanstack.emulator.capacity import CapacityError, admit

    try:
        admit(rds_backends[account_id][region], cluster)
    except CapacityError as err:
        raise DataApiError(err.code, str(err)) from err
    secrets: Any = secretsmanager_backends[account_id][region]
    try:
        secret = secrets.get_secret_value(params.get("secretArn", ""), None, "AWSCURRENT")
    except Exception as exc:
        raise DataApiError(
            "SecretsErrorException", f"cannot read secret {params.get('secretArn')}: {exc}"
        ) from exc
    try:
        credentials = json.loads(secret["SecretString"])
        username, password = credentials["username"], credentials["password"]
    except (KeyError, TypeError, ValueError) as exc:
        raise DataApiError(
            "InvalidSecretException",
            f"secret {params.get('secretArn')} holds no JSON username and password",
        ) from exc
    if username != cluster.master_username:
        # Any other user is one of the database's own (created by SQL the functions sent): MariaDB
        # checks its password when the pool logs in as it, and its grants on every statement
        # (MySQL's 1045 and 1142, as Aurora answers them).
        return str(username), str(password), DATABASE_USER
    accepted = (cluster.master_username, master_password(account_id, region, cluster_id))
    if (username, password) != accepted:
        kind = cluster_settings(account_id, region, params)[0]
        raise database_error(
            ACCESS_DENIED, f"Access denied for user '{username}'@'%' (using password: YES)", kind
        )
    return str(accepted[0]), accepted[1]
