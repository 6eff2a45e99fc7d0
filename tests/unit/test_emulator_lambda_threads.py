"""A function's own threads on the emulator, as on Lambda (SPEC D7): their log lines reach the
invocation's log stream (the validation function's chunk writer logs "transient error,
retrying" from a thread of its own), and never another invocation's."""

from __future__ import annotations

import base64
import io
import json
import threading
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
import logging, threading, time
from concurrent.futures import ThreadPoolExecutor

def grandchild(mark):
    logging.getLogger("writer").warning("grandchild of %s", mark)

def child(mark):
    time.sleep(0.2)  # a concurrent invocation is running by now
    logging.getLogger("writer").warning("transient error, retrying %s", mark)
    nested = threading.Thread(target=grandchild, args=(mark,))
    nested.start()
    nested.join()

def handler(event, context):
    mark = event["mark"]
    logging.getLogger().warning("handler %s", mark)
    with ThreadPoolExecutor(max_workers=1) as pool:  # as the validation function's writer
        pool.submit(child, mark).result()
    return {"mark": mark}
"""


@pytest.fixture(params=["thread", "process"])
def aws(request: pytest.FixtureRequest) -> Iterator[boto3.Session]:
    """Both execution models: the embedded emulator's threads, the detached one's sandboxes."""
    install()
    awslambda.install("http://127.0.0.1:9")  # the function makes no AWS call
    STATE.run_functions_in_processes(request.param == "process")
    try:
        with mock_aws():
            session = shared_session(region_name=REGION)
            create(session)
            yield session
    finally:
        STATE.run_functions_in_processes(False)


def create(session: boto3.Session) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", CODE)
    role = session.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]
    session.client("lambda").create_function(
        FunctionName="threads",
        Runtime="python3.13",
        Role=role["Arn"],
        Handler="index.handler",
        Code={"ZipFile": buffer.getvalue()},
        Timeout=10,
    )


def tail(session: boto3.Session, mark: str) -> str:
    reply = session.client("lambda").invoke(
        FunctionName="threads", Payload=json.dumps({"mark": mark}).encode(), LogType="Tail"
    )
    assert json.loads(reply["Payload"].read()) == {"mark": mark}
    return base64.b64decode(reply["LogResult"]).decode()


def stream_texts(session: boto3.Session) -> list[str]:
    logs = session.client("logs")
    streams = logs.describe_log_streams(logGroupName="/aws/lambda/threads")["logStreams"]
    return [
        "\n".join(
            e["message"]
            for e in logs.get_log_events(
                logGroupName="/aws/lambda/threads", logStreamName=s["logStreamName"]
            )["events"]
        )
        for s in streams
    ]


def test_d7_lines_a_handlers_threads_log_reach_its_log_stream(aws: boto3.Session) -> None:
    """Lambda's log stream has every line the runtime's process writes
    (https://docs.aws.amazon.com/lambda/latest/dg/python-logging.html); the embedded emulator
    kept only the handler's own thread's, so a chunk writer's retries were invisible."""
    text = tail(aws, "solo")
    assert "handler solo" in text
    assert "transient error, retrying solo" in text
    assert "grandchild of solo" in text
    [stream] = stream_texts(aws)
    assert "transient error, retrying solo" in stream and "grandchild of solo" in stream


def test_d7_concurrent_invocations_do_not_see_each_others_thread_lines(
    aws: boto3.Session,
) -> None:
    tails: dict[str, str] = {}
    threads = [
        threading.Thread(target=lambda m=mark: tails.__setitem__(m, tail(aws, m)))
        for mark in ("alpha", "beta")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for mine, theirs in (("alpha", "beta"), ("beta", "alpha")):
        assert f"transient error, retrying {mine}" in tails[mine]
        assert f"grandchild of {mine}" in tails[mine]
        assert theirs not in tails[mine], tails[mine]
    streams = stream_texts(aws)
    assert len(streams) == 2
    for stream in streams:
        assert ("alpha" in stream) != ("beta" in stream), stream
