"""`loanstack invoke`: the deployed validation function on one payload."""

from __future__ import annotations

import json
from typing import Any

from loanstack.aws.errors import aws_errors
from loanstack.aws.outputs import read_stack
from loanstack.aws.target import Target
from loanstack.errors import DeployError


def invoke_validation(target: Target, payload: Any) -> Any:
    """Lambda Invoke of the deployed validation function (the emulator runs it in process)."""
    function = read_stack(target.outputs_file).function_name
    with aws_errors(target):
        reply = target.client("lambda").invoke(
            FunctionName=function, Payload=json.dumps(payload).encode()
        )
    body = json.loads(reply["Payload"].read() or b"null")
    if reply.get("FunctionError"):
        message = body.get("errorMessage") if isinstance(body, dict) else body
        raise DeployError(f"{function} failed: {message}")
    return body
