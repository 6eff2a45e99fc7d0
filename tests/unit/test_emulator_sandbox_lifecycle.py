"""A deleted function's sandbox processes on the detached emulator's model (SPEC D7): an idle
one is killed at once (test_emulator_async_lambda.py), a busy one when its invocation returns,
as Lambda shuts an execution environment down only when no invocation runs in it
(https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html#runtimes-lifecycle-shutdown)."""

from __future__ import annotations

import io
import json
import os
import threading
import time
import zipfile
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from loanstack.emulator import awslambda, install
from loanstack.emulator.state import STATE
from tests.support.sessions import session as shared_session

REGION = "us-east-1"
CODE = """
import os, time

def handler(event, context):
    time.sleep(float(event.get("sleep", 0)))
    return {"pid": os.getpid()}
"""


@pytest.fixture
def sandboxed() -> Iterator[boto3.Session]:
    install()
    awslambda.install("http://127.0.0.1:9")  # the function makes no AWS call
    STATE.run_functions_in_processes(True)
    try:
        with mock_aws():
            session = shared_session(region_name=REGION)
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as archive:
                archive.writestr("index.py", CODE)
            role = session.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")
            session.client("lambda").create_function(
                FunctionName="busy",
                Runtime="python3.13",
                Role=role["Role"]["Arn"],
                Handler="index.handler",
                Code={"ZipFile": buffer.getvalue()},
                Timeout=10,
            )
            yield session
    finally:
        STATE.run_functions_in_processes(False)


def invoke(session: boto3.Session, payload: dict[str, float]) -> dict[str, int]:
    reply = session.client("lambda").invoke(
        FunctionName="busy", Payload=json.dumps(payload).encode()
    )
    answer: dict[str, int] = json.loads(reply["Payload"].read())
    return answer


def gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_d7_a_busy_sandbox_of_a_deleted_function_ends_when_its_invocation_returns(
    sandboxed: boto3.Session,
) -> None:
    """The busy sandbox was released as reusable after DeleteFunction and lived, ~44 MB, until
    the emulator stopped; the invocation itself still answers, as on Lambda."""
    answers: list[dict[str, int]] = []
    running = threading.Thread(target=lambda: answers.append(invoke(sandboxed, {"sleep": 1.5})))
    running.start()
    deadline = time.monotonic() + 10
    while not (STATE.sandboxes is not None and STATE.sandboxes.processes()):
        assert time.monotonic() < deadline, "the invocation never got a sandbox"
        time.sleep(0.02)
    [pid] = STATE.sandboxes.processes()
    sandboxed.client("lambda").delete_function(FunctionName="busy")
    assert pid in STATE.sandboxes.processes(), "a busy sandbox finishes its invocation"
    running.join(15)
    assert answers == [{"pid": pid}]
    assert pid not in STATE.sandboxes.processes()
    assert gone(pid, within=5), "the deleted function's sandbox process still runs"
