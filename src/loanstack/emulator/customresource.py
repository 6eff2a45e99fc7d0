"""`AWS::CloudFormation::CustomResource`: CloudFormation's request to a Lambda function, and the
function's answer to the pre-signed URL, as CloudFormation runs them.

moto's own model needs Docker and a reachable host; here the function runs in process
(awslambda.py) and answers, with its real `urllib` PUT, to a route of the emulator's own server
(`RESPONSE_ROUTE`), where `answer` keeps the body until the resource reads it. A FAILED answer, or
none, fails the resource with the function's reason, as CloudFormation does.
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-requests.html
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from loanstack.emulator.base import Extension
from loanstack.emulator.state import STATE

RESPONSE_PATH = "/moto-api/loanstack/cfn-response/"
RESPONSE_ROUTE = "{0}" + RESPONSE_PATH + "(?P<request_id>[0-9a-f-]+)$"


class CustomResourceFailed(ValueError):
    """The function answered FAILED, or did not answer: the resource fails with its reason."""


class CustomResource(Extension):
    """A custom resource served by a function of the stack (its ServiceToken)."""

    TYPE = "AWS::CloudFormation::CustomResource"

    @classmethod
    def create(
        cls, name: str, props: dict[str, Any], account_id: str, region: str, **request: Any
    ) -> Extension:
        sent = {
            "StackId": str(request.get("StackId", "")),
            "LogicalResourceId": str(request.get("LogicalId", name)),
            "ResourceType": cls.TYPE,
        }
        answer = call(props, {**sent, "RequestType": "Create"}, account_id, region)
        STATE.custom_resources.add(answer["PhysicalResourceId"])
        return cls(
            answer["PhysicalResourceId"],
            account_id,
            region,
            request=sent,
            props=props,
            **answer.get("Data", {}),
        )

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return True  # a custom resource's attributes are whatever its function answers in Data

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name not in self.attributes or attribute_name in ("request", "props"):
            raise CustomResourceFailed(f"the custom resource answered no {attribute_name!r}")
        return self.attributes[attribute_name]

    def delete(self, account_id: str | None = None, region_name: str | None = None) -> None:
        """CloudFormation sends Delete with the physical id; a failure fails the delete."""
        event = {
            **self.attributes["request"],
            "RequestType": "Delete",
            "PhysicalResourceId": self.physical_id,
        }
        call(self.attributes["props"], event, self.account_id, self.region)
        STATE.custom_resources.discard(self.physical_id)


def call(props: dict[str, Any], event: dict[str, Any], account_id: str, region: str) -> Any:
    """Invoke the ServiceToken's function with the request; return its SUCCESS answer."""
    from moto.awslambda.utils import get_backend

    function: Any = get_backend(account_id, region).get_function(str(props["ServiceToken"]))
    request_id = str(uuid.uuid4())
    full = {
        **event,
        "ServiceToken": props["ServiceToken"],
        "ResponseURL": f"{STATE.endpoint_url}{RESPONSE_PATH}{request_id}",
        "RequestId": request_id,
        "ResourceProperties": props,
    }
    payload, errored, _ = function._invoke_lambda(full)
    answer = STATE.custom_resource_answers.pop(request_id, None)
    if answer is None:
        detail = json.loads(payload).get("errorMessage") if errored else "no answer was sent"
        raise CustomResourceFailed(
            f"{event['LogicalResourceId']}: the function did not answer the custom resource "
            f"request ({detail})"
        )
    if answer.get("Status") != "SUCCESS":
        raise CustomResourceFailed(
            f"{event['LogicalResourceId']}: {answer.get('Reason') or 'the function answered FAILED'}"
        )
    return answer


def answer(request: Any, full_url: str, headers: Any) -> tuple[int, dict[str, str], str]:
    """`PUT` of a function's answer to its ResponseURL: kept for the waiting resource."""
    request_id = full_url.rstrip("/").rsplit("/", 1)[-1]
    try:
        body = json.loads(request.get_data() or b"{}")
        if not isinstance(body, dict) or body.get("RequestId") != request_id:
            raise ValueError("the answer is not a JSON object with this request's RequestId")
    except ValueError as exc:
        return 400, {"Content-Type": "text/plain"}, str(exc)
    STATE.custom_resource_answers[request_id] = body
    return 200, {"Content-Type": "text/plain"}, ""
