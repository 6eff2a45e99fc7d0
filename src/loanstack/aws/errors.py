"""AWS (or emulator) refusals translated into one line that says what to do."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from loanstack.aws.target import Target, not_here, unreachable
from loanstack.errors import DeployError

# DescribeStacks: "If the stack doesn't exist, a ValidationError is returned", the generic code
# of every bad request, so only its message ("Stack with id NAME does not exist") tells them apart.
# https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeStacks.html
MISSING_STACK = re.compile(r"Stack with id \S+ does not exist")


@contextmanager
def aws_errors(target: Target) -> Iterator[None]:
    """AWS (or emulator) refusals as one line that says what to do."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "Error"), error.get("Message", str(exc))
        if code in ("ResourceNotFoundException", "NoSuchBucket") or "does not exist" in message:
            raise DeployError(f"{message} ({exc.operation_name}): {not_here(target)}") from exc
        raise DeployError(f"{exc.operation_name} refused: {code}: {message}") from exc
    except EndpointConnectionError as exc:
        raise DeployError(unreachable(target)) from exc
    except BotoCoreError as exc:
        raise DeployError(f"AWS call failed: {exc}") from exc


def is_missing_stack(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return error.get("Code") == "ValidationError" and bool(
        MISSING_STACK.fullmatch(str(error.get("Message", "")))
    )
