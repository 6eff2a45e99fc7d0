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
        if FunctionName == "secret":
            raise ClientError({"Error": {"Code": "AccessDeniedException"}}, "Get")
        return {"Timeout": 60}

    def put_function_concurrency(
        self, FunctionName: str, ReservedConcurrentExecutions: int
    ) -> None:
        if FunctionName == "gone":
            raise ClientError({"Error": {"Code": "ResourceNotFoundException"}}, "Put")
        if self.refuse:
            raise ClientError(
                {"Error": {"Code": self.refuse, "Message": "denied"}},
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


def test_r6_a_configuration_it_may_not_read_still_throttles_and_waits_lambdas_longest() -> None:
    lam = Lambda(refuse=None)
    console = Console(record=True, width=200)
    assert writers.throttle(SimpleNamespace(client=lambda _: lam), ["secret"], console) == 900.0
    assert lam.reserved == {"secret": 0}


def test_r6_every_form_of_a_service_token_spares_its_function() -> None:
    forms = [
        {"Fn::GetAtt": ["Rotator", "Arn"]},
        {"Fn::GetAtt": "Rotator.Arn"},
        {"Ref": "Rotator"},
        {"Fn::If": ["IsProduction", {"Fn::GetAtt": "Rotator.Arn"}, {"Ref": "Other"}]},
        {"Fn::Sub": "${Rotator.Arn}"},
    ]
    found = [writers.token_functions(token) for token in forms]
    assert found[:4] == [{"Rotator"}, {"Rotator"}, {"Rotator"}, {"Rotator", "Other"}]
    assert found[4] == {"Rotator"}
    assert writers.token_functions("arn:aws:lambda:us-east-1:1:function:x") == set()


def test_r6_a_deployed_template_that_is_not_json_is_one_line_not_a_traceback() -> None:
    import pytest

    from loanstack.stack import survival

    class Cfn:
        def get_template(self, **_: Any) -> dict[str, Any]:
            return {"TemplateBody": "Resources:\n  Topic:\n    Type: AWS::SNS::Topic\n"}

    with pytest.raises(survival.SurvivalUnknown, match="its deployed template is not JSON"):
        survival.deployed_template(Cfn(), {"StackId": "id", "StackName": "tapstack-x"})
