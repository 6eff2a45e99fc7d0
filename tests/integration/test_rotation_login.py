"""testSecret's login (D2): the rotation function's standard-library MySQL handshake over TLS,
against a real MariaDB that requires TLS on its TCP port, as the cluster does."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pymysql
import pytest

from loanstack.emulator.mariadb import MariaDB
from tests.support.helpers import load_function

rotation = load_function("secret_rotation")
USER, PASSWORD = "loanadmin", "Zq8rT2mVx4pLk9sW3nBc7dHf6jGy1aEu"


@pytest.fixture
def account(mariadb_tls: MariaDB, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("DB_CA_FILE", str(mariadb_tls.ca_file))
    mariadb_tls.set_account(USER, PASSWORD)
    return {
        "host": mariadb_tls.host,
        "port": mariadb_tls.port,
        "username": USER,
        "password": PASSWORD,
    }


def test_r10_login_with_the_right_password_over_tls_succeeds(account: dict[str, Any]) -> None:
    rotation.login(account)
    assert rotation.opens(account)


def test_r10_login_with_a_wrong_password_is_refused_by_the_server(account: dict[str, Any]) -> None:
    with pytest.raises(rotation.LoginRefused, match=r"1045.*Access denied for user 'loanadmin'"):
        rotation.login({**account, "password": PASSWORD[::-1]})
    assert not rotation.opens({**account, "password": PASSWORD[::-1]})


def test_r10_login_follows_a_password_change(account: dict[str, Any], mariadb_tls: MariaDB) -> None:
    mariadb_tls.set_account(USER, "another-password-0000000000000000")
    assert not rotation.opens(account)
    assert rotation.opens({**account, "password": "another-password-0000000000000000"})


def test_r10_login_refuses_a_server_certificate_it_does_not_trust(
    account: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without DB_CA_FILE the login trusts the RDS bundle (here: public CAs, not the test CA)."""
    import certifi

    monkeypatch.delenv("DB_CA_FILE")
    monkeypatch.setattr(rotation.tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setenv("RDS_CA_BUNDLE_URL", Path(certifi.where()).as_uri())
    with pytest.raises(ssl.SSLCertVerificationError):
        rotation.login(account)


class Reply:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def __enter__(self) -> Reply:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def read(self) -> bytes:
        return self.body


def test_r10_the_rds_bundle_of_the_region_is_fetched_once_and_must_be_pem(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mariadb_tls: MariaDB
) -> None:
    """The Lambda runtime's store lacks the RDS CAs: the function fetches its region's bundle."""
    pem = Path(mariadb_tls.ca_file).read_bytes()
    asked: list[str] = []

    def urlopen(url: str, timeout: float) -> Reply:
        asked.append(url)
        return Reply(pem)

    monkeypatch.delenv("DB_CA_FILE", raising=False)
    monkeypatch.delenv("RDS_CA_BUNDLE_URL", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setattr(rotation.tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(rotation.urllib.request, "urlopen", urlopen)
    rotation.trust()
    rotation.trust()
    assert asked == ["https://truststore.pki.rds.amazonaws.com/eu-west-3/eu-west-3-bundle.pem"]
    (tmp_path / "rds-ca-bundle.pem").unlink()
    monkeypatch.setattr(rotation.urllib.request, "urlopen", lambda url, timeout: Reply(b"<html>"))
    with pytest.raises(OSError, match="did not return PEM"):
        rotation.trust()


def test_r10_a_reply_that_is_not_mysql_is_a_transport_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A truncated greeting must not escape as struct.error: the caller retries OSError."""

    def garbled(secret: dict[str, Any], context: Any, *_: Any) -> None:
        raise IndexError("index out of range")

    monkeypatch.setattr(rotation, "handshake", garbled)
    monkeypatch.setenv("DB_CA_FILE", certifi_bundle())
    with pytest.raises(OSError, match="unreadable reply"):
        rotation.login({"host": "127.0.0.1", "port": 1, "username": "u", "password": "p"})


def certifi_bundle() -> str:
    import certifi

    return str(certifi.where())


def test_r10_the_server_requires_tls_so_the_login_cannot_skip_it(
    account: dict[str, Any], mariadb_tls: MariaDB
) -> None:
    with mariadb_tls.connect(None) as conn, conn.cursor() as cur:  # an account without REQUIRE SSL
        cur.execute("CREATE USER IF NOT EXISTS 'plain'@'%' IDENTIFIED BY 'plain-password-1'")
    plain = {**account, "username": "plain", "password": "plain-password-1"}
    rotation.login(plain)  # the account and password are good over TLS...
    with pytest.raises(pymysql.err.OperationalError):  # ...and refused without it
        pymysql.connect(
            host=plain["host"],
            port=plain["port"],
            user="plain",
            password="plain-password-1",
            ssl_disabled=True,
        )
