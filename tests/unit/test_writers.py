"""destroy's throttle of the stack's writers is a precaution: a refusal never stops destroy."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from botocore.exceptions import ClientError
from rich.console import Console

from loanstack.stack import writers


class Lambda:
    def __init__(self, refuse: str | None) -> None:
        self.refuse, self.reserved = refuse, {}

    def get_function_configuration(self, FunctionName: str) -> dict[str, Any]:
        if FunctionName == "gone":
            raise ClientError({"Error": {"Code": "ResourceNotFoundException"}}, "Get")
        return {"Timeout": 60}

    def put_function_concurrency(
        self, FunctionName: str, ReservedConcurrentExecutions: int
    ) -> None:
        if self.refuse:
            raise ClientError(
                {"Error": {"Code": self.refuse, "Message": "below its minimum value of [10]"}},
                "PutFunctionConcurrency",
            )
        self.reserved[FunctionName] = ReservedConcurrentExecutions


def test_r6_a_refused_throttle_is_said_and_destroy_still_waits_out_the_function() -> None:
    lam = Lambda(refuse="InvalidParameterValueException")
    console = Console(record=True, width=200)
    longest = writers.throttle(SimpleNamespace(client=lambda _: lam), ["fn", "gone"], console)
    assert longest == 60.0
    assert lam.reserved == {}
    assert "could not throttle function fn (InvalidParameterValueException" in console.export_text()


def test_r6_a_throttle_reserves_zero_and_skips_a_function_already_gone() -> None:
    lam = Lambda(refuse=None)
    console = Console(record=True, width=200)
    assert writers.throttle(SimpleNamespace(client=lambda _: lam), ["fn", "gone"], console) == 60.0
    assert lam.reserved == {"fn": 0}
