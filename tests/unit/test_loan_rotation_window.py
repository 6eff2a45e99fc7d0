"""D2 / issue 11 item 5: the validation function rides through a password rotation.

Between setSecret and finishSecret the database already has the new password while the Data API
still authenticates with AWSCURRENT's old one, so calls fail with MySQL's 1045 "Access denied".
The retry helper treats that as transient for a bounded total time, not a number of attempts.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.helpers import load_function

loans = load_function("loan_validation")
DENIED = ClientError(
    {
        "Error": {
            "Code": "BadRequestException",
            "Message": "Access denied for user 'loanadmin'@'10.40.1.7' (using password: YES)",
        }
    },
    "ExecuteStatement",
)


class Flaky:
    def __init__(self, failures: int, error: ClientError = DENIED) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self, **kwargs: Any) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def test_d2_authentication_failures_are_retried_beyond_the_attempt_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RETRY_BASE_SECONDS", "0")
    monkeypatch.setenv("RETRY_ATTEMPTS", "3")
    call = Flaky(failures=10)
    assert loans.with_retries(call, sql="SELECT 1") == "ok"
    assert call.calls == 11


def test_d2_authentication_retries_stop_after_the_total_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RETRY_BASE_SECONDS", "0.02")
    monkeypatch.setenv("AUTH_RETRY_SECONDS", "0.5")
    call = Flaky(failures=10_000)
    started = time.monotonic()
    with pytest.raises(ClientError, match="Access denied"):
        loans.with_retries(call, sql="SELECT 1")
    assert time.monotonic() - started <= 0.5
    assert call.calls > 3


def test_d2_other_bad_requests_are_still_raised_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRY_BASE_SECONDS", "0")
    syntax = ClientError(
        {"Error": {"Code": "BadRequestException", "Message": "Database error: (1064, 'syntax')"}},
        "ExecuteStatement",
    )
    call = Flaky(failures=1, error=syntax)
    with pytest.raises(ClientError, match="1064"):
        loans.with_retries(call)
    assert call.calls == 1
