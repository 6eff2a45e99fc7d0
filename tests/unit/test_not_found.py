"""Absence is told apart from refusal by AWS's error code, not by any exception or substring."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from loanstack import demo
from loanstack.aws.errors import is_missing_stack


def error(code: str, message: str, operation: str = "DescribeStacks") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def test_a_missing_stack_is_the_validation_error_that_says_so() -> None:
    assert is_missing_stack(error("ValidationError", "Stack with id tapstack-x does not exist"))
    # the same code for a bad request, whose message merely mentions a missing thing
    assert not is_missing_stack(
        error("ValidationError", "Parameter 'Foo' does not exist in the template")
    )
    assert not is_missing_stack(error("AccessDenied", "Stack with id x does not exist"))


class HeadObject:
    def __init__(self, failure: ClientError | None) -> None:
        self.failure = failure

    def head_object(self, **kwargs: Any) -> dict[str, Any]:
        if self.failure is not None:
            raise self.failure
        return {}


def test_demo_key_exists_is_false_only_on_not_found() -> None:
    assert demo.key_exists(HeadObject(None), "b", "k")
    assert not demo.key_exists(HeadObject(error("404", "Not Found", "HeadObject")), "b", "k")
    with pytest.raises(ClientError):
        demo.key_exists(HeadObject(error("403", "Forbidden", "HeadObject")), "b", "k")
