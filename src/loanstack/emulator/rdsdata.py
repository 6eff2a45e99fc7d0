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

import datetime
import json
import re
import time
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pymysql

from loanstack.emulator.mariadb import MariaDB
from loanstack.emulator.rds import SERVED, master_password

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


def translate(sql: str, parameters: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    values = {p["name"]: from_field(p["value"], p.get("typeHint")) for p in parameters}
    return PARAMETER.sub(r"%(\1)s", sql.replace("%", "%%")), values


class DataApiBridge:
    """Answers rds-data calls from a MariaDB connection; counts the calls made."""

    def __init__(self, server: MariaDB, measure: bool = True) -> None:
        self.server, self.measure = server, measure
        self.calls: dict[str, int] = {"ExecuteStatement": 0, "BatchExecuteStatement": 0}
        self.statements: list[str] = []  # the SQL of each call, in order
        self.largest = {"request": 0, "response": 0}  # bytes of the JSON bodies, as sent
        self.seconds = 0.0  # spent answering, i.e. inside the stand-in for the Data API
        self.cpu_seconds = 0.0  # of it, this process's CPU time (pymysql's side of the calls)

    def install(self, client: Any) -> Any:
        for operation in self.calls:
            client.meta.events.register(f"before-parameter-build.rds-data.{operation}", self.keep)
            client.meta.events.register(f"before-call.rds-data.{operation}", self.answer)
        return client

    @staticmethod
    def keep(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """At before-call the request is already serialised; keep the API parameters for it."""
        context["data_api_params"] = dict(params)

    def answer(self, model: Any, context: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        start, cpu = time.perf_counter(), time.process_time()
        self.calls[model.name] += 1
        params = context["data_api_params"]
        self.statements.append(params.get("sql", ""))
        status, body = execute(self.server, model.name, params, ("bridge",))
        self.seconds += time.perf_counter() - start
        self.cpu_seconds += time.process_time() - cpu
        if self.measure:  # sizes of the JSON bodies, to hold the function to the Data API's limits
            self.largest["request"] = max(self.largest["request"], len(json.dumps(params)))
            self.largest["response"] = max(self.largest["response"], len(json.dumps(body)))
        if status != 200:
            body = {"Error": {"Code": body["__type"], "Message": body["message"]}}
        return SimpleNamespace(status_code=status), body


class DataApiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def execute(
    server: MariaDB, operation: str, params: dict[str, Any], credentials: tuple[str, ...]
) -> tuple[int, dict[str, Any]]:
    """One Data API call on MariaDB: (HTTP status, response body in the Data API's shape).

    Runs on the caller's reused connection (`MariaDB.session`), keyed by cluster and credentials.
    """
    with server.lock:
        conn = None
        try:
            conn = server.session(str(params.get("resourceArn", "")), credentials)
            conn.select_db(params.get("database") or "loans")
            with conn.cursor() as cur:
                return run(conn, cur, operation, params)
        except pymysql.MySQLError as err:
            if conn is not None and conn.open:
                conn.rollback()  # a failed batch leaves nothing behind on the reused connection
            return 400, {"__type": "BadRequestException", "message": f"Database error: {err}"}


def run(conn: Any, cur: Any, operation: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    if operation == "BatchExecuteStatement":
        sets = params.get("parameterSets", [])
        conn.begin()  # like Aurora's Data API: one batch, one transaction
        for parameters in sets:
            cur.execute(*translate(params["sql"], parameters))
        conn.commit()
        return 200, {"updateResults": [{"generatedFields": []} for _ in sets]}
    cur.execute(*translate(params["sql"], params.get("parameters", [])))
    records = [[to_field(v) for v in row] for row in cur.fetchall()] if cur.description else []
    return 200, {"numberOfRecordsUpdated": max(cur.rowcount, 0), "records": records}


# --- the emulator's endpoint --------------------------------------------------------------------


def serve(server: MariaDB) -> None:
    """Answer rds-data on the emulator from `server` (the routes and handlers are patches.py's)."""
    SERVED["server"] = server


def execute_statement(response: Any) -> Any:
    return respond(response, "ExecuteStatement")


def batch_execute_statement(response: Any) -> Any:
    return respond(response, "BatchExecuteStatement")


def respond(response: Any, operation: str) -> Any:
    params = json.loads(response.body or "{}")
    try:
        credentials = check_access(response.current_account, response.region, params)
        server = SERVED.get("server")
        if server is None:
            raise DataApiError(
                "InternalServerErrorException", "the emulator's Data API has no MariaDB server"
            )
        status, body = execute(server, operation, params, credentials)
    except DataApiError as err:
        status, body = 400, {"__type": err.code, "message": str(err)}
    # moto takes the HTTP status from the headers' "status" (else 200: errors looked like success)
    return status, {"Content-Type": "application/json", "status": str(status)}, json.dumps(body)


def check_access(account_id: str, region: str, params: dict[str, Any]) -> tuple[str, str]:
    """What Aurora checks before every statement: the cluster, its Data API, the secret.

    Returns the accepted credentials, which select the reused connection.
    """
    from moto.rds.models import rds_backends
    from moto.secretsmanager.models import secretsmanager_backends

    cluster_id = str(params.get("resourceArn", "")).rsplit(":", 1)[-1]
    cluster = rds_backends[account_id][region].clusters.get(cluster_id)
    if cluster is None:
        raise DataApiError(
            "BadRequestException", f"DB cluster {params.get('resourceArn')} not found"
        )
    if not cluster._enable_http_endpoint:
        raise DataApiError(
            "BadRequestException", f"HttpEndpoint is not enabled for cluster {cluster_id}"
        )
    from loanstack.emulator.capacity import CapacityError, admit

    try:
        admit(rds_backends[account_id][region], cluster)
    except CapacityError as err:
        raise DataApiError(err.code, str(err)) from err
    secrets: Any = secretsmanager_backends[account_id][region]
    try:
        credentials = json.loads(
            secrets.get_secret_value(params.get("secretArn", ""), None, "AWSCURRENT")[
                "SecretString"
            ]
        )
    except Exception as exc:
        raise DataApiError(
            "BadRequestException", f"cannot read secret {params.get('secretArn')}: {exc}"
        ) from exc
    accepted = (cluster.master_username, master_password(account_id, region, cluster_id))
    if (credentials.get("username"), credentials.get("password")) != accepted:
        raise DataApiError(
            "BadRequestException", f"Access denied for user '{credentials.get('username')}'"
        )
    return str(accepted[0]), accepted[1]
