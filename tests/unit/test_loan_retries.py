"""Transient AWS errors are retried with bounded backoff; permanent ones are raised at once."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.helpers import load_function

loans = load_function("loan_validation")


def error(code: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "ExecuteStatement")


class Flaky:
    def __init__(self, *failures: ClientError) -> None:
        self.failures, self.calls = list(failures), 0

    def __call__(self, **kwargs: Any) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRY_BASE_SECONDS", "0")
    monkeypatch.setenv("RETRY_ATTEMPTS", "4")


@pytest.mark.parametrize(
    "failure",
    [
        error("DatabaseResumingException"),
        error("ThrottlingException"),
        error("BadRequestException", "Communications link failure\n\nThe last packet sent..."),
    ],
)
def test_transient_errors_are_retried(failure: ClientError) -> None:
    call = Flaky(failure, failure)
    assert loans.with_retries(call, sql="SELECT 1") == "ok"
    assert call.calls == 3


def test_permanent_errors_are_raised_without_retry() -> None:
    call = Flaky(error("AccessDeniedException"))
    with pytest.raises(ClientError, match="AccessDenied"):
        loans.with_retries(call)
    assert call.calls == 1


def test_retries_are_bounded() -> None:
    call = Flaky(*[error("ThrottlingException")] * 10)
    with pytest.raises(ClientError, match="Throttling"):
        loans.with_retries(call)
    assert call.calls == 4


class Clock:
    """time.monotonic and time.sleep of the function's module, without waiting."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_r9_a_resuming_cluster_is_waited_out_for_a_minute_not_a_few_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A paused Serverless v2 cluster takes ~15 s or more to resume: six quick retries (about
    8-16 s in all) were not enough. The window is RESUME_RETRY_SECONDS (60 s) of retrying."""
    monkeypatch.setenv("RETRY_BASE_SECONDS", "0.5")
    clock = Clock()
    monkeypatch.setattr(loans.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(loans.time, "sleep", clock.sleep)
    resuming = error("DatabaseResumingException")
    call = Flaky(*[resuming] * 7)  # more failures than RETRY_ATTEMPTS
    assert loans.with_retries(call) == "ok" and clock.now >= 15
    clock.now = 0.0
    forever = Flaky(*[resuming] * 1000)
    with pytest.raises(ClientError, match="DatabaseResuming"):
        loans.with_retries(forever)
    assert 40 <= clock.now <= 60
