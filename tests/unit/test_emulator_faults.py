"""Fault injection (emulator/faults.py): the windows, the one-shot faults, and the control path
a detached emulator takes them on."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from loanstack.emulator import faults, install
from loanstack.emulator.state import STATE

ARN = "arn:aws:rds:us-east-1:123456789012:cluster:c1"


@pytest.fixture
def fresh() -> Iterator[faults.Faults]:
    yield faults.Faults()


def test_a_window_answers_for_its_seconds_then_closes(fresh: faults.Faults) -> None:
    fresh.unavailable(0.3, cluster="c1")
    found = fresh.before_call(ARN, "admin")
    assert found == faults.Injected("DatabaseUnavailableException", faults.UNAVAILABLE)
    assert fresh.before_call(ARN.replace("c1", "c2"), "admin") is None  # another cluster
    time.sleep(0.35)
    assert fresh.before_call(ARN, "admin") is None


def test_access_denied_is_mysqls_1045_for_the_callers_user(fresh: faults.Faults) -> None:
    fresh.deny_access(5)
    found = fresh.before_call(ARN, "loanadmin")
    assert found is not None and found.mysql_error == 1045
    assert found.message.startswith("Access denied for user 'loanadmin'@")


def test_deadlocks_and_duplicates_are_taken_once_each(fresh: faults.Faults) -> None:
    fresh.deadlock(2)
    assert [fresh.take_deadlock(ARN) for _ in range(3)] == [True, True, False]
    fresh.duplicate_notifications()
    assert [fresh.take_duplicate() for _ in range(2)] == [True, False]


def test_a_detached_emulator_takes_faults_on_its_control_path() -> None:
    from moto.server import ThreadedMotoServer

    install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        STATE.faults.clear()
        faults.inject(url, "deadlock", count=1, cluster="c1")
        assert STATE.faults.take_deadlock(ARN) and not STATE.faults.take_deadlock(ARN)
        with pytest.raises(ValueError, match="unknown fault 'meteor'"):
            faults.inject(url, "meteor")
        with pytest.raises(ValueError, match="seconds"):
            faults.inject(url, "unavailable", seconds=-1)
    finally:
        STATE.faults.clear()
        server.stop()
