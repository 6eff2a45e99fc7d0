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
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pymysql

from loanstack.emulator.data import SERVED, master_password

SERVER = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class MariaDB:
    """mariadbd on a unix socket under `root`, started and stopped by the tests.

    With `tls=True` it also listens on a free loopback port and requires TLS there
    (`require_secure_transport`, as the cluster parameter group sets it on Aurora), with a
    certificate for 127.0.0.1 signed by a CA generated for it (`ca_file`): the emulator's cluster
    endpoint, where the rotation function logs in. The unix socket stays as it was.
    """

    def __init__(self, root: Path, tls: bool = False) -> None:
        self.root, self.data, self.socket = root, root / "data", root / "mysqld.sock"
        self.process: subprocess.Popen[bytes] | None = None
        self.tls, self.host, self.port = tls, "127.0.0.1", 0
        self.ca_file = root / "ca.pem"
        self.sessions: dict[tuple[str, ...], pymysql.connections.Connection[Any]] = {}
        self.lock = threading.Lock()  # one statement at a time: a connection is not shared

    def start(self, timeout: float = 60) -> None:
        if not (Path(SERVER).exists() and Path(INSTALL_DB).exists()):
            raise RuntimeError(
                f"MariaDB is not installed ({SERVER}); apt-get install mariadb-server"
            )
        user = ["--user=root"] if os.geteuid() == 0 else []
        done = subprocess.run(  # noqa: S603 (mariadb-install-db, fixed arguments, no shell)
            [INSTALL_DB, "--no-defaults", f"--datadir={self.data}", "--auth-root-authentication-method=normal",
             "--skip-test-db", *user],
            capture_output=True, timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).decode(errors="replace").strip()[-500:]
            raise RuntimeError(f"mariadb-install-db failed ({done.returncode}): {tail}")
        log = (self.root / "server.log").open("wb")
        self.process = subprocess.Popen(  # noqa: S603 (mariadbd, fixed arguments, no shell)
            [SERVER, "--no-defaults", f"--datadir={self.data}", f"--socket={self.socket}", *self.network(),
             f"--pid-file={self.root / 'server.pid'}", "--innodb-buffer-pool-size=128M",
             "--innodb-flush-log-at-trx-commit=2", *user],  # a test server: no fsync per commit
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((self.root / "server.log").read_text()[-2000:])
            try:
                self.connect(None).close()
                return
            except pymysql.err.OperationalError:
                time.sleep(0.2)
        raise RuntimeError("MariaDB did not accept connections in time")

    def network(self) -> list[str]:
        if not self.tls:
            return ["--skip-networking"]
        key, cert = self.root / "server-key.pem", self.root / "server.pem"
        write_certificates(self.ca_file, cert, key, self.host)
        self.port = free_port(self.host)
        return [f"--bind-address={self.host}", f"--port={self.port}", "--skip-name-resolve",
                f"--ssl-ca={self.ca_file}", f"--ssl-cert={cert}", f"--ssl-key={key}",
                "--require-secure-transport=ON"]  # fmt: skip

    def set_account(self, username: str, password: str) -> None:
        """The account a client logs in with over TCP (TLS required), created or re-passworded."""
        with self.connect(None) as conn, conn.cursor() as cur:
            cur.execute(
                "CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s REQUIRE SSL",
                (username, password),
            )
            cur.execute("ALTER USER %s@'%%' IDENTIFIED BY %s REQUIRE SSL", (username, password))

    def connect(self, database: str | None = "loans") -> pymysql.connections.Connection[Any]:
        return pymysql.connect(
            unix_socket=str(self.socket), user="root", database=database, autocommit=True
        )

    def reset(self, database: str = "loans") -> None:
        with self.connect(None) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {database}")
            cur.execute(f"CREATE DATABASE {database}")

    def session(self, owner: str, credentials: tuple[str, ...]) -> Any:
        """The open connection of `owner` (a cluster) for these credentials, reused across calls.

        Opening a connection per call cost more than the statements themselves; new credentials
        (after a rotation) replace the owner's connection. Call with `lock` held.
        """
        key = (owner, *credentials)
        conn = self.sessions.get(key)
        if conn is None or not conn.open:  # pymysql closes a connection that failed
            for stale in [k for k in self.sessions if k[0] == owner]:
                self.sessions.pop(stale).close()
            conn = self.sessions[key] = self.connect(None)
        return conn

    def stop(self) -> None:
        with self.lock:
            for conn in self.sessions.values():
                conn.close()
            self.sessions.clear()
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def write_certificates(ca_file: Path, cert_file: Path, key_file: Path, host: str) -> None:
    """A CA and a server certificate for `host` (IP and DNS name), valid for two days."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loanstack emulator CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])).issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )


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
