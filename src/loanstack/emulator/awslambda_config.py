"""A Lambda function's configuration as Lambda keeps it, where moto drops or mistakes it.

moto's model drops `LoggingConfig` and `DeadLetterConfig` (the logs and the asynchronous
invocations need them), has no GetAccountSettings (what `loanstack deploy` checks before it
reserves concurrency), and breaks a function on a stack update (it reads the template's inline
source as a zip). Each is put right here; the invocations themselves are awslambda.py's.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from moto.awslambda import models as lambda_models
from moto.awslambda.exceptions import LambdaClientError

from loanstack.emulator import awslambda_async, fence
from loanstack.emulator.awslambda_logs import logging_config
from loanstack.emulator.awslambda_sandbox import function_of
from loanstack.emulator.state import STATE


def create_keeping_logging_config(
    cls: Any, name: str, cfn: dict[str, Any], *args: Any, **kwargs: Any
) -> Any:
    fn = fence.original(lambda_models.LambdaFunction, "create_from_cloudformation_json").__func__(
        cls, name, cfn, *args, **kwargs
    )
    fn.logging_config = dict(cfn.get("Properties", {}).get("LoggingConfig") or {})
    # moto drops DeadLetterConfig; asynchronous invocations need it
    fn.dead_letter_arn = (cfn.get("Properties", {}).get("DeadLetterConfig") or {}).get("TargetArn")
    return fn


def configuration_with_logging(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """GetFunctionConfiguration as AWS answers it: with the function's LoggingConfig."""
    config = dict(
        fence.original(lambda_models.LambdaFunction, "get_configuration")(self, *args, **kwargs)
    )
    config["LoggingConfig"] = logging_config(self)
    return config


DEFAULT_CONCURRENCY_LIMIT = (
    1000  # AWS's default Lambda quota; MOTO_LAMBDA_CONCURRENCY_QUOTA sets it
)


def get_account_settings(self: Any) -> tuple[int, dict[str, str], str]:
    """Lambda's GetAccountSettings from the functions the emulator holds."""
    return 200, {}, json.dumps(account_settings(self.backend.list_functions()))


def account_settings(functions: list[Any]) -> dict[str, Any]:
    limit = int(os.environ.get("MOTO_LAMBDA_CONCURRENCY_QUOTA", DEFAULT_CONCURRENCY_LIMIT))
    reserved = sum(int(fn.reserved_concurrency or 0) for fn in functions)
    return {
        "AccountLimit": {
            "ConcurrentExecutions": limit,
            "UnreservedConcurrentExecutions": limit - reserved,
            "CodeSizeUnzipped": 262144000,
            "CodeSizeZipped": 52428800,
            "TotalCodeSize": 80530636800,
        },
        "AccountUsage": {"FunctionCount": len(functions), "TotalCodeSize": 0},
    }


def update_from_template(
    cls: Any,
    original_resource: Any,
    new_resource_name: str,
    cloudformation_json: dict[str, Any],
    account_id: str,
    region_name: str,
) -> Any:
    """A stack update of the function, as CloudFormation carries it out: the new configuration,
    then the new code. moto's create zips the template's inline `Code.ZipFile` source, its update
    takes that source for a base64 zip, so every update (even of MemorySize alone) left the
    function answering "File is not a zip file". A property the new template leaves out goes
    back to Lambda's default, as in CloudFormation (Environment, VpcConfig, reserved concurrency,
    LoggingConfig, DeadLetterConfig); moto would keep the old values.
    https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-lambda-function.html
    """
    fn = original_resource
    props = dict(cloudformation_json.get("Properties") or {})
    fn.update_configuration({k: v for k, v in props.items() if k != "Environment"})
    fn.environment_vars = dict((props.get("Environment") or {}).get("Variables") or {})
    if "VpcConfig" not in props:
        fn._vpc_config = None
    fn.reserved_concurrency = props.get("ReservedConcurrentExecutions")
    fn.logging_config = dict(props.get("LoggingConfig") or {})
    fn.dead_letter_arn = (props.get("DeadLetterConfig") or {}).get("TargetArn")
    code = dict(props["Code"])
    if "ZipFile" in code:  # inline source, as the template holds it (and moto's create zips it)
        code["ZipFile"] = base64.b64encode(cls._create_zipfile_from_plaintext_code(code["ZipFile"]))
    fn.update_function_code(code)
    return fn


class Throttled(LambdaClientError):
    """Lambda's answer to a synchronous call it has no concurrency for (HTTP 429)."""

    code = 429

    def __init__(self) -> None:
        super().__init__("TooManyRequestsException", "Rate Exceeded.")


def invoke_unless_throttled(
    self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response: Any
) -> Any:
    """Invoke as Lambda answers it. An `Event` call is queued like an S3 notification's
    (awslambda_async.py: up to the reserved concurrency, retried, dead-lettered) and answered 202
    at once; moto ran it inside the request. A function whose reserved concurrency is 0 is
    throttled: a synchronous call is refused with TooManyRequestsException (Reason
    ReservedFunctionConcurrentInvocationLimitExceeded), where moto ran it. `loanstack destroy`
    throttles the stack's writers so; a direct call must not write either.
    https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html#API_Invoke_Errors
    https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html
    https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html"""
    kind = headers.get("X-Amz-Invocation-Type") or "RequestResponse"
    if kind == "Event":
        fn = self.get_function(function_name, qualifier)
        try:
            event = json.loads(body or b"{}")
        except ValueError as exc:
            raise LambdaClientError(
                "InvalidRequestContentException", "Could not parse request body into json"
            ) from exc
        awslambda_async.invoke_async(self.account_id, event, fn.function_arn, self.region_name)
        return b""
    if kind == "RequestResponse":
        fn = self.get_function(function_name, qualifier)
        if fn.reserved_concurrency is not None and int(fn.reserved_concurrency) == 0:
            raise Throttled()
    return fence.original(lambda_models.LambdaBackend, "invoke")(
        self, function_name, qualifier, body, headers, response
    )


def delete_function_and_sandboxes(
    self: Any, function_name: str, qualifier: str | None = None
) -> None:
    """DeleteFunction (and a stack's delete of a function), then the function's sandbox
    processes (awslambda_sandbox.py): no invocation can reach them any more (idle ones at once,
    busy ones when their invocation returns)."""
    fence.original(lambda_models.LambdaBackend, "delete_function")(self, function_name, qualifier)
    named = function_name.split(":function:")[-1].split(":")  # a name or ARN, maybe qualified
    if STATE.sandboxes is not None and qualifier is None and len(named) == 1:  # the whole function
        STATE.sandboxes.forget(function_of(function_name))
