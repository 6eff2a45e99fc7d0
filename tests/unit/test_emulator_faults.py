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


def test_a_kill_is_taken_once_by_the_invocation_it_names(fresh: faults.Faults) -> None:
    fresh.kill_invocation(1.5, match="x/part-00003.csv")
    assert fresh.take_kill({"Records": [{"s3": {"object": {"key": "x/part-00002.csv"}}}]}) is None
    named = {"Records": [{"s3": {"object": {"key": "x%2Fpart-00003.csv"}}}]}  # as S3 encodes
    assert fresh.take_kill(named) == 1.5 and fresh.killed == 1
    assert fresh.take_kill(named) is None  # once
    fresh.apply({"fault": "kill_invocation", "seconds": 0})
    assert fresh.take_kill({}) == 0.0  # no match: any invocation
    with pytest.raises(ValueError, match="must not be negative"):
        fresh.kill_invocation(-1)
