"""The emulator's MariaDB server: Aurora MySQL's SQL engine for the Data API and the clusters'
MySQL login endpoint, on a private socket (and, with TLS, a loopback port)."""

from __future__ import annotations

import atexit
import datetime
import functools
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pymysql

from loanstack import functions

# Aurora MySQL 3's defaults where MariaDB's differ and a statement's outcome depends on them:
# - sql_mode: Aurora's default parameter groups leave it without STRICT_TRANS_TABLES, so an
#   out-of-range or over-long value is clipped with a warning (MariaDB 10.11's default is strict);
#   a cluster parameter group's sql_mode applies per cluster (`Pool.connection`'s `sql_mode`).
#   https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/AuroraMySQL.Reference.ParameterGroups.html
#   https://dev.mysql.com/doc/refman/8.0/en/out-of-range-and-overflow.html
# - character_set_server utf8mb4 (MySQL 8.0's default; MariaDB 10.11's is latin1), with
#   MariaDB's nearest collation to utf8mb4_0900_ai_ci (accent- and case-insensitive):
#   https://dev.mysql.com/doc/refman/8.0/en/charset-server.html
# - lower_case_table_names=0: table names are case-sensitive, as on Aurora MySQL (Linux):
#   https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/AuroraMySQL.Reference.ParameterGroups.html
# - group_concat_max_len 1,024 bytes (MySQL 8.0's default; MariaDB 10.11's is 1 MiB): GROUP_CONCAT
#   cuts its value there unless the statement raises it (a `SET_VAR` hint, rdsdata_execute.py).
#   https://dev.mysql.com/doc/refman/8.0/en/server-system-variables.html#sysvar_group_concat_max_len
AURORA_SQL_MODE = "NO_ENGINE_SUBSTITUTION"
AURORA_DEFAULTS = (
    f"--sql-mode={AURORA_SQL_MODE}",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_unicode_520_ci",
    "--lower-case-table-names=0",
    "--group-concat-max-len=1024",
)
# The Data API stops a statement after 45 s unless continueAfterTimeout (rdsdata_execute.py); MariaDB's
# max_statement_time does the stopping. https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.html
STATEMENT_TIMEOUT_VARIABLE = "LOANSTACK_EMULATOR_STATEMENT_TIMEOUT"
IDLE_PER_KEY = 16  # idle connections kept per cluster and credentials
# Credentials ending with this mark are a database user's own (not the cluster's master): the
# pool logs in as that user, so MariaDB authenticates it (1045) and enforces its grants (1142).
DATABASE_USER = "database-user"
# The stack's database, as the validation function names it (its DB_NAME default, the template's
# DatabaseName, both pinned by tests/unit/test_names.py): what a Data API call without `database`
# and the tests' bridge use. Read from the function, never spelled here.
DATABASE = str(functions.contract(functions.VALIDATION).DATABASE_NAME)

SERVER = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
CP = shutil.which("cp") or "/bin/cp"


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
        self.client_context: ssl.SSLContext | None = None
        self.pool = Pool(self.connect_for)

    def start(self, timeout: float = 60) -> None:
        if not (Path(SERVER).exists() and Path(INSTALL_DB).exists()):
            raise RuntimeError(
                f"MariaDB is not installed ({SERVER}); apt-get install mariadb-server"
            )
        user = ["--user=root"] if os.geteuid() == 0 else []
        copy_data_dir(pristine_data_dir(tuple(user)), self.data)
        log = (self.root / "server.log").open("wb")
        self.process = subprocess.Popen(  # noqa: S603 (mariadbd, fixed arguments, no shell)
            [SERVER, "--no-defaults", f"--datadir={self.data}", f"--socket={self.socket}", f"--tmpdir={self.root}", *self.network(),
             f"--pid-file={self.root / 'server.pid'}", "--innodb-buffer-pool-size=128M",
             "--innodb-flush-log-at-trx-commit=2", *AURORA_DEFAULTS, *user],  # no fsync per commit
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

    def connect_for(self, credentials: tuple[str, ...]) -> pymysql.connections.Connection[Any]:
        """A Data API caller's connection: as the database user its credentials name (marked
        DATABASE_USER), else as root (the cluster's master user, checked by the caller)."""
        if len(credentials) == 3 and credentials[2] == DATABASE_USER:
            return pymysql.connect(
                unix_socket=str(self.socket),
                user=credentials[0],
                password=credentials[1],
                autocommit=True,
                **self.socket_tls(),
            )
        return self.connect(None)

    def connect(self, database: str | None = DATABASE) -> pymysql.connections.Connection[Any]:
        return pymysql.connect(
            unix_socket=str(self.socket),
            user="root",
            database=database,
            autocommit=True,
            **self.socket_tls(),
        )

    def socket_tls(self) -> dict[str, Any]:
        """How the socket's clients use TLS. pymysql's PREFERRED mode (no `ssl` argument) builds
        a default SSL context, loading the system's CA store, for every connection: 32 ms of
        CPU against 0.4 ms without (the embedded emulator's Data API and deploys open about
        nine connections a dev deploy and destroy). A server without TLS offers none: skipped.
        The TLS server's socket keeps TLS (its REQUIRE SSL accounts log in there with it, as
        before) through one context built as PREFERRED builds it, kept for the server: that
        server always offers TLS, so PREFERRED and a given context both use it."""
        if not self.tls:
            return {"ssl_disabled": True}
        if self.client_context is None:
            self.client_context = preferred_context()
        return {"ssl": self.client_context}

    def reset(self, database: str = DATABASE) -> None:
        with self.connect(None) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {database}")
            cur.execute(f"CREATE DATABASE {database}")

    def stop(self) -> None:
        self.pool.close()
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@functools.cache
def pristine_data_dir(user: tuple[str, ...]) -> Path:
    """A fresh data directory (`mariadb-install-db`'s system tables), made once per process and
    copied for each server: the install is 0.6-0.7 s of CPU, most of a server's start (mariadbd
    itself is 0.1 s to ready, nothing idle), and a test worker starts several servers (one per
    emulator module, the session's). Kept sparse (the 96-MB redo log is zeros past its header:
    6.5 MB on disk) and removed when the process exits."""
    base = Path(tempfile.mkdtemp(prefix="loanstack-db-pristine-"))
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    raw = base / "installed"
    done = subprocess.run(  # noqa: S603 (mariadb-install-db, fixed arguments, no shell)
        [INSTALL_DB, "--no-defaults", f"--datadir={raw}", "--auth-root-authentication-method=normal",
         "--skip-test-db", f"--tmpdir={base}", *user],  # /tmp is shared with other servers
        capture_output=True, timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).decode(errors="replace").strip()[-500:]
        raise RuntimeError(f"mariadb-install-db failed ({done.returncode}): {tail}")
    copy_data_dir(raw, base / "data")
    shutil.rmtree(raw)
    return base / "data"


def copy_data_dir(source: Path, target: Path) -> None:
    """`cp -a --sparse=always`: the redo log's zeros are not written (0.01 s of CPU against
    0.07-0.26 s for a plain copy of the 114 MB)."""
    done = subprocess.run(  # noqa: S603 (cp, fixed arguments, no shell)
        [CP, "-a", "--sparse=always", str(source), str(target)], capture_output=True, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"copying MariaDB's data directory failed: {done.stderr.decode()[-500:]}"
        )


def preferred_context() -> ssl.SSLContext:
    """The context pymysql's PREFERRED mode builds for each connection (pymysql 2.2,
    its Connection with no `ssl_*` argument): the default context, no certificate or host check."""
    context = ssl.create_default_context()
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


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


Connection = Any  # a pymysql connection


def statement_timeout() -> float:
    """The Data API's statement timeout: 45 s, shorter in tests that need to see it."""
    return float(os.environ.get(STATEMENT_TIMEOUT_VARIABLE, "45"))


class Pool:
    """MariaDB connections for Data API callers: one per concurrent caller, none shared.

    Aurora's Data API runs each call on a connection of its own fleet, so two invocations run
    at once and can meet each other's row locks (lock waits, deadlocks) as on Aurora; a single
    shared connection would serialise them and hide that. Idle connections are kept per cluster
    and credentials (opening one per call cost more than the statements); new credentials for a
    user of a cluster (a rotation) retire that user's connections with the old ones, and each
    user's connections are its own (the master's never serve the application's user).
    """

    def __init__(self, connect: Callable[[tuple[str, ...]], Connection]) -> None:
        self._connect = connect
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, ...], list[Connection]] = {}
        # (cluster, user) -> that user's credentials now
        self._current: dict[tuple[str, str], tuple[str, ...]] = {}
        self.in_use = 0
        self.peak = 0  # most connections in use at once (tests read it)

    @contextmanager
    def connection(
        self, owner: str, credentials: tuple[str, ...], sql_mode: str | None = None
    ) -> Iterator[Connection]:
        """A connection of its own for one call, with the cluster's sql_mode applied."""
        key, user = (owner, *credentials), (owner, credentials[0] if credentials else "")
        with self._lock:
            if self._current.get(user) != key:
                for stale in [k for k in self._idle if k[:2] == (owner, user[1])]:
                    for old in self._idle.pop(stale):
                        old.close()
                self._current[user] = key
            idle = self._idle.get(key) or []
            conn = idle.pop() if idle else None
            self.in_use += 1
            self.peak = max(self.peak, self.in_use)
        try:
            if conn is None or not conn.open:  # pymysql closes a connection that failed
                conn = self._connect(credentials)
            wanted = (sql_mode or AURORA_SQL_MODE, statement_timeout())
            if getattr(conn, "loanstack_settings", None) != wanted:
                with conn.cursor() as cur:
                    cur.execute(
                        f"SET SESSION sql_mode = {string_literal(wanted[0])}, "
                        f"SESSION max_statement_time = {float(wanted[1])}"
                    )
                conn.loanstack_settings = wanted
            yield conn
        finally:
            with self._lock:
                self.in_use -= 1
                keep = self._idle.setdefault(key, []) if self._current.get(user) == key else None
                if conn is not None and conn.open and keep is not None and len(keep) < IDLE_PER_KEY:
                    keep.append(conn)
                elif conn is not None and conn.open:
                    conn.close()

    def idle_keys(self) -> list[tuple[str, ...]]:
        """The (cluster, credentials) keys with idle connections."""
        with self._lock:
            return sorted(k for k, conns in self._idle.items() if conns)

    def close(self) -> None:
        with self._lock:
            for conns in self._idle.values():
                for conn in conns:
                    conn.close()
            self._idle.clear()
            self._current.clear()


def string_literal(value: str, no_backslash_escapes: bool = False) -> str:
    """A quoted MySQL string literal of `value`.

    "Strictly speaking, MySQL requires only that backslash and the quote character used to quote
    the string in the query be escaped" (mysql_real_escape_string_quote, C API); NUL, CR, LF and
    Ctrl-Z are escaped too, as the client library does, when present. The double quote is left
    alone inside single quotes: a chunk document is full of them, and each escape costs a copy.
    https://dev.mysql.com/doc/c-api/8.0/en/mysql-real-escape-string-quote.html
    https://dev.mysql.com/doc/refman/8.0/en/string-literals.html
    """
    if no_backslash_escapes:  # only the quote is special then
        return "'" + value.replace("'", "''") + "'"
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    for char, escape in (("\0", "\\0"), ("\n", "\\n"), ("\r", "\\r"), ("\032", "\\Z")):
        if char in escaped:  # absent from JSON text: a scan, no copy
            escaped = escaped.replace(char, escape)
    return "'" + escaped + "'"
