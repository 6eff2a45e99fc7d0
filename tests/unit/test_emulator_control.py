"""`loanstack emulator start|stop` and the port (SPEC D4): a port is taken when something listens
on it, not when a stopped emulator's closed connections linger there (the emulator's own server
binds over those: werkzeug sets SO_REUSEADDR); `stop` returns once the port takes a listener, or
says in one line that it did not. In-process sockets only: no emulator is started."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from loanstack.emulator import EmulatorError, check_port, control


@pytest.fixture
def lingering_port() -> Iterator[int]:
    """A port whose listener has closed after closing an accepted connection first: the server
    end lingers in TIME_WAIT, as it does after an emulator stops with clients connected."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug's server
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = int(listener.getsockname()[1])
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server closes first: its end of the connection lingers
        client.recv(1)  # the FIN has arrived
        client.close()
    yield port


def plain_bind_refused(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def test_a_port_with_only_a_closed_connection_lingering_is_free(lingering_port: int) -> None:
    if not plain_bind_refused(lingering_port):
        pytest.skip("this kernel lets a plain bind reuse a TIME_WAIT port: nothing to show")
    check_port(lingering_port)  # the emulator's server would bind there: no "port taken"
    assert control.bind_refused(lingering_port) is None


def test_a_port_something_listens_on_is_taken() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = int(listener.getsockname()[1])
        assert control.bind_refused(port) is not None
        with pytest.raises(EmulatorError, match=rf"^port {port} is taken \("):
            check_port(port)


def test_stop_says_so_when_the_port_stays_taken(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The recorded process has gone (SIGTERM, then no longer alive), but something else
    listens on its port: `stop` waits PORT_TIMEOUT, then one line says what to do."""
    signals: list[tuple[int, int]] = []
    monkeypatch.setattr(control.os, "kill", lambda pid, sig: signals.append((pid, sig)))
    monkeypatch.setattr(control, "alive", lambda pid: not signals)
    monkeypatch.setattr(control, "PORT_TIMEOUT", 0.3)
    monkeypatch.setenv(control.STATE_VARIABLE, str(tmp_path / "emulator.json"))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = int(listener.getsockname()[1])
        control.write_state(f"http://127.0.0.1:{port}", None, None)
        with pytest.raises(EmulatorError, match=rf"stopped, but port {port} still refuses"):
            control.stop(Console(file=None, quiet=True))
    assert len(signals) == 1


def test_stop_returns_once_the_port_is_free(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    signals: list[tuple[int, int]] = []
    monkeypatch.setattr(control.os, "kill", lambda pid, sig: signals.append((pid, sig)))
    monkeypatch.setattr(control, "alive", lambda pid: not signals)
    monkeypatch.setenv(control.STATE_VARIABLE, str(tmp_path / "emulator.json"))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = int(listener.getsockname()[1])
    control.write_state(f"http://127.0.0.1:{port}", None, None)
    assert control.stop(Console(file=None, quiet=True)) == 0
