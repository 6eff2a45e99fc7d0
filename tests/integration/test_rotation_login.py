"""testSecret's login (D2): the rotation function's standard-library MySQL handshake over TLS,
against a real MariaDB that requires TLS on its TCP port, as the cluster does."""

from __future__ import annotations

import ssl
from typing import Any

import pymysql
import pytest

from loanstack.emulator.dataapi import MariaDB
from tests.helpers import load_function

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
    account: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DB_CA_FILE")  # the system trust store does not know the test CA
    with pytest.raises(ssl.SSLCertVerificationError):
        rotation.login(account)


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
