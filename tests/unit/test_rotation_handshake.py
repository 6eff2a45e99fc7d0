"""The rotation function's MySQL login against a scripted server, for what MariaDB cannot show:
caching_sha2_password (MySQL 8's plugin, selectable on Aurora MySQL 3), fast and full
authentication, over TLS with a certificate from a CA of the test's own."""

from __future__ import annotations

import hashlib
import socket
import ssl
import struct
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from loanstack.emulator.mariadb import write_certificates
from tests.support.helpers import load_function

rotation = load_function("secret_rotation")
NONCE = b"abcdefghijklmnopqrst"
PASSWORD = "Zq8rT2mVx4pLk9sW3nBc7dHf6jGy1aEu"


def scramble(password: str, nonce: bytes) -> bytes:
    stage1 = hashlib.sha256(password.encode()).digest()
    mask = hashlib.sha256(hashlib.sha256(stage1).digest() + nonce).digest()
    return bytes(a ^ b for a, b in zip(stage1, mask, strict=True))


def greeting() -> bytes:
    caps = 0x200 | 0x800 | 0x8000 | 0x80000
    return (
        b"\x0a8.0.36\0" + struct.pack("<I", 7) + NONCE[:8] + b"\0"
        + struct.pack("<HBHH", caps & 0xFFFF, 33, 2, caps >> 16) + bytes([21]) + b"\0" * 10
        + NONCE[8:] + b"\0" + b"caching_sha2_password\0"
    )  # fmt: skip


class Server:
    """One connection: greeting, SSLRequest, TLS, then the scripted authentication."""

    def __init__(self, tmp: Path, full_auth: bool, resume_seconds: float = 0) -> None:
        ca, cert, key = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
        write_certificates(ca, cert, key, "127.0.0.1")
        self.ca, self.full_auth, self.resume_seconds = str(ca), full_auth, resume_seconds
        self.seen: list[bytes] = []
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            time.sleep(self.resume_seconds)  # a paused writer greets once it has resumed
            rotation.Packets(conn).write(greeting())
            self.seen.append(rotation.Packets(conn).read())  # SSLRequest
            with self.tls.wrap_socket(conn, server_side=True) as tls:
                channel = rotation.Packets(tls)
                response = channel.read()
                self.seen.append(response)
                user_end = response.index(b"\0", 32)
                length = response[user_end + 1]
                ok = response[user_end + 2 : user_end + 2 + length] == scramble(PASSWORD, NONCE)
                if self.full_auth:
                    channel.write(b"\x01\x04")
                    clear = channel.read()
                    self.seen.append(clear)
                    ok = clear == PASSWORD.encode() + b"\0"
                else:
                    channel.write(b"\x01\x03")
                if ok:
                    channel.write(b"\x00\x00\x00\x02\x00\x00\x00")
                else:
                    channel.write(b"\xff" + struct.pack("<H", 1045) + b"#28000Access denied")


@pytest.fixture(params=[False, True], ids=["fast-auth", "full-auth"])
def server(request: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Server:
    srv = Server(tmp_path, full_auth=request.param)
    monkeypatch.setenv("DB_CA_FILE", srv.ca)
    return srv


def account(server: Server, password: str = PASSWORD) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": server.port, "username": "loanadmin", "password": password}


def test_r10_caching_sha2_login_succeeds_over_tls(server: Server) -> None:
    rotation.login(account(server))
    server.thread.join(5)
    ssl_request, response = server.seen[0], server.seen[1]
    assert struct.unpack_from("<I", ssl_request)[0] & 0x800, "asked for TLS first"
    assert b"loanadmin\0" in response and response.endswith(b"caching_sha2_password\0")


def test_r10_caching_sha2_login_with_a_wrong_password_is_refused(server: Server) -> None:
    with pytest.raises(rotation.LoginRefused, match="1045"):
        rotation.login(account(server, "wrong-password-0000000000000000"))


def test_r10_a_paused_writer_that_greets_only_after_resuming_is_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A paused Serverless v2 writer takes about 15 s to resume and answers only then: the login
    waits for it (the old 5-s timeout gave up and testSecret rolled back for nothing). Here the
    server answers after 6 s, past the old timeout."""
    srv = Server(tmp_path, full_auth=False, resume_seconds=6)
    monkeypatch.setenv("DB_CA_FILE", srv.ca)
    rotation.login(account(srv))
    assert rotation.login_timeout() >= 15 + 10  # a resume, with room for a slow one


def test_r10_a_login_never_waits_past_the_step_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    assert rotation.login_timeout(time.monotonic() + 4) <= 4
    assert rotation.login_timeout(time.monotonic() - 5) == 1.0  # one short last try
    monkeypatch.setenv("LOGIN_TIMEOUT_SECONDS", "12")
    assert rotation.login_timeout(time.monotonic() + 600) == 12
