"""S3 notifications on the emulator run the function as Lambda does (issue 15): asynchronously,
concurrently up to its reserved concurrency, each invocation with its own environment and logs."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.awslambda.models import lambda_backends

from loanstack.emulator import awslambda, awslambda_async, install
from loanstack.emulator.state import STATE
from tests.support.sessions import session as shared_session

REGION = "us-east-1"
CODE = """
import logging, os, time

def handler(event, context):
    key = event["Records"][0]["s3"]["object"]["key"]
    logging.getLogger().info("start %s", key)
    started = time.monotonic()
    time.sleep(float(os.environ["SLEEP"]))
    with open(os.environ["RECORD_FILE"], "a") as out:
        out.write(f"{key} {started} {time.monotonic()} {os.environ['MARK']}\\n")
    return {"key": key}
"""


@pytest.fixture(params=["thread", "process"])
def aws(request: pytest.FixtureRequest) -> Iterator[boto3.Session]:
    """Each test on both execution models: invocations as threads of the emulator (the embedded
    emulator's) and in warm sandbox processes (the detached emulator's, awslambda_sandbox.py)."""
    install()
    awslambda.install("http://127.0.0.1:9")  # the function makes no AWS call
    STATE.run_functions_in_processes(request.param == "process")
    try:
        with mock_aws():
            yield shared_session(region_name=REGION)
    finally:
        STATE.run_functions_in_processes(False)


def sleeper(session: boto3.Session, record: Path, reserved: int) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", CODE)
    role = session.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]
    lam = session.client("lambda")
    arn = lam.create_function(
        FunctionName="sleeper",
        Runtime="python3.13",
        Role=role["Arn"],
        Handler="index.handler",
        Code={"ZipFile": buffer.getvalue()},
        Environment={"Variables": {"RECORD_FILE": str(record), "SLEEP": "0.4", "MARK": "mine"}},
    )["FunctionArn"]
    lam.put_function_concurrency(FunctionName="sleeper", ReservedConcurrentExecutions=reserved)
    s3 = session.client("s3")
    s3.create_bucket(Bucket="drop")
    s3.put_bucket_notification_configuration(
        Bucket="drop",
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [
                {"LambdaFunctionArn": arn, "Events": ["s3:ObjectCreated:*"]}
            ]
        },
    )
    return str(arn)


def most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def test_d6_s3_events_run_the_function_concurrently_up_to_its_reserved_concurrency(
    aws: boto3.Session, tmp_path: Path
) -> None:
    record = tmp_path / "spans.txt"
    sleeper(aws, record, reserved=3)
    s3 = aws.client("s3")
    started = time.monotonic()
    for i in range(7):
        s3.put_object(Bucket="drop", Key=f"part-{i}", Body=b"x")
    # run one after another, the seven 0.4 s invocations would hold S3 for 2.8 s
    assert time.monotonic() - started < 1.4, "S3 must not wait for the function"
    assert awslambda_async.wait_idle(30)
    lines = [line.split() for line in record.read_text().splitlines()]
    assert sorted(key for key, *_ in lines) == [f"part-{i}" for i in range(7)]
    assert {mark for *_, mark in lines} == {"mine"}  # each saw its function's environment
    spans = [(float(start), float(end)) for _, start, end, _ in lines]
    assert most_at_once(spans) == 3  # overlapping, and never more than reserved
    assert "MARK" not in os.environ and "RECORD_FILE" not in os.environ  # given back

    logs = aws.client("logs")
    streams = logs.describe_log_streams(logGroupName="/aws/lambda/sleeper")["logStreams"]
    starts = []
    for stream in streams:
        events = logs.get_log_events(
            logGroupName="/aws/lambda/sleeper", logStreamName=stream["logStreamName"]
        )["events"]
        starts.append([e["message"] for e in events if "start part-" in e["message"]])
    assert sorted(len(s) for s in starts) == [1] * 7, "each invocation logs only its own records"


def test_a_failing_event_is_retried_twice_then_lands_in_the_dead_letter_queue(
    aws: boto3.Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOTO_LAMBDA_ASYNC_RETRY_SECONDS", "0.01")
    arn = sleeper(aws, tmp_path / "missing-dir" / "spans.txt", reserved=2)  # open() fails
    sqs = aws.client("sqs")
    queue = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    fn = lambda_backends["123456789012"][REGION].get_function(arn)
    fn.dead_letter_arn = f"arn:aws:sqs:{REGION}:123456789012:dlq"
    aws.client("s3").put_object(Bucket="drop", Key="bad", Body=b"x")
    assert awslambda_async.wait_idle(30)
    [message] = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["All"])["Messages"]
    assert json.loads(message["Body"])["Records"][0]["s3"]["object"]["key"] == "bad"
    assert "No such file" in message["MessageAttributes"]["ErrorMessage"]["StringValue"]
    logs = aws.client("logs")
    streams = logs.describe_log_streams(logGroupName="/aws/lambda/sleeper")["logStreams"]
    assert len(streams) == 3  # the first attempt and two retries


def test_an_injected_duplicate_notification_runs_the_function_twice(
    aws: boto3.Session, tmp_path: Path
) -> None:
    """S3 delivers at least once (faults.py): a test can make it deliver an event twice."""
    record = tmp_path / "spans.txt"
    sleeper(aws, record, reserved=2)
    STATE.faults.duplicate_notifications(1)
    s3 = aws.client("s3")
    s3.put_object(Bucket="drop", Key="twice", Body=b"x")
    s3.put_object(Bucket="drop", Key="once", Body=b"x")
    assert awslambda_async.wait_idle(30)
    keys = sorted(line.split()[0] for line in record.read_text().splitlines())
    assert keys == ["once", "twice", "twice"]


def test_a_throttled_functions_events_wait_unrun_and_run_once_it_may_run_again(
    aws: boto3.Session, tmp_path: Path
) -> None:
    """Reserved concurrency 0 throttles a function: Lambda runs none of its asynchronous
    events and keeps them queued (the emulator ran them ten at a time, as if unreserved)."""
    record = tmp_path / "spans.txt"
    sleeper(aws, record, reserved=0)
    for i in range(3):
        aws.client("s3").put_object(Bucket="drop", Key=f"held-{i}", Body=b"x")
    assert not awslambda_async.wait_idle(1.0), "a throttled function's events must wait"
    assert not record.exists(), "a throttled function ran"
    aws.client("lambda").delete_function_concurrency(FunctionName="sleeper")
    assert awslambda_async.wait_idle(30)
    keys = sorted(line.split()[0] for line in record.read_text().splitlines())
    assert keys == ["held-0", "held-1", "held-2"]


def test_a_synchronous_call_of_a_throttled_function_is_refused_with_429(
    aws: boto3.Session, tmp_path: Path
) -> None:
    """Reserved concurrency 0: Lambda answers a RequestResponse Invoke TooManyRequestsException
    (HTTP 429) without running the handler, and still accepts an Event one (queued, unrun)."""
    record = tmp_path / "spans.txt"
    sleeper(aws, record, reserved=0)
    lam = aws.client("lambda")
    event = json.dumps({"Records": [{"s3": {"object": {"key": "direct"}}}]})
    with pytest.raises(ClientError) as refused:
        lam.invoke(FunctionName="sleeper", Payload=event)
    error = refused.value.response
    assert error["Error"]["Code"] == "TooManyRequestsException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert (
        lam.invoke(FunctionName="sleeper", Payload=event, InvocationType="Event")["StatusCode"]
        == 202
    )
    with pytest.raises(ClientError) as unreadable:  # refused at the call, not queued
        lam.invoke(FunctionName="sleeper", Payload=b"{", InvocationType="Event")
    assert unreadable.value.response["Error"]["Code"] == "InvalidRequestContentException"
    assert not awslambda_async.wait_idle(1.0), "the Event call must wait in the queue"
    assert not record.exists(), "a throttled function ran"
    lam.delete_function_concurrency(FunctionName="sleeper")
    assert json.load(lam.invoke(FunctionName="sleeper", Payload=event)["Payload"]) == {
        "key": "direct"
    }
    assert awslambda_async.wait_idle(30)  # the queued Event call ran once it could
    assert sorted(line.split()[0] for line in record.read_text().splitlines()) == [
        "direct",
        "direct",
    ]


def test_a_throttled_functions_events_are_dropped_when_the_function_is_deleted(
    aws: boto3.Session, tmp_path: Path
) -> None:
    """What `loanstack destroy` relies on: throttled, then deleted with its stack, the function
    never runs the events still queued."""
    record = tmp_path / "spans.txt"
    sleeper(aws, record, reserved=0)
    aws.client("s3").put_object(Bucket="drop", Key="queued", Body=b"x")
    assert not awslambda_async.wait_idle(0.5)
    aws.client("lambda").delete_function(FunctionName="sleeper")
    assert awslambda_async.wait_idle(5)
    assert not record.exists()


def test_an_event_throttled_past_its_maximum_age_goes_to_the_dead_letter_queue_unrun(
    aws: boto3.Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOTO_LAMBDA_ASYNC_MAX_EVENT_AGE_SECONDS", "0.5")
    record = tmp_path / "spans.txt"
    arn = sleeper(aws, record, reserved=0)
    sqs = aws.client("sqs")
    queue = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    fn = lambda_backends["123456789012"][REGION].get_function(arn)
    fn.dead_letter_arn = f"arn:aws:sqs:{REGION}:123456789012:dlq"
    aws.client("s3").put_object(Bucket="drop", Key="expired", Body=b"x")
    assert awslambda_async.wait_idle(10)
    [message] = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["All"])["Messages"]
    assert json.loads(message["Body"])["Records"][0]["s3"]["object"]["key"] == "expired"
    assert message["MessageAttributes"]["ErrorCode"]["StringValue"] == "429"
    assert not record.exists()


SLOW = """
import os, time

def handler(event, context):
    for _ in range(30):  # 3 s in small steps
        time.sleep(0.1)
    with open(os.environ["RECORD_FILE"], "a") as out:
        out.write("finished\\n")
    return {"done": True}
"""


def slow_function(session: boto3.Session, record: Path) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", SLOW)
    role = session.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]
    return str(
        session.client("lambda").create_function(
            FunctionName="slow",
            Runtime="python3.13",
            Role=role["Arn"],
            Handler="index.handler",
            Code={"ZipFile": buffer.getvalue()},
            Timeout=1,
            Environment={"Variables": {"RECORD_FILE": str(record)}},
        )["FunctionArn"]
    )


def test_a_synchronous_invocation_past_its_timeout_ends_as_lambda_ends_it(
    aws: boto3.Session, tmp_path: Path
) -> None:
    """The emulator let a function run for as long as it liked: a chunk too slow for its
    Timeout passed in tests and failed on AWS."""
    record = tmp_path / "record.txt"
    slow_function(aws, record)
    started = time.monotonic()
    reply = aws.client("lambda").invoke(FunctionName="slow", Payload=b"{}")
    assert time.monotonic() - started < 2.5
    assert "FunctionError" in reply  # moto says "Handled" where Lambda says "Unhandled"
    error = json.loads(reply["Payload"].read())
    assert error["errorType"] == "Sandbox.Timedout"
    assert error["errorMessage"].endswith("Task timed out after 1.00 seconds")
    time.sleep(2.5)
    assert not record.exists(), "the handler went on after its timeout"


def test_an_asynchronous_invocation_past_its_timeout_is_retried_then_dead_lettered(
    aws: boto3.Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOTO_LAMBDA_ASYNC_RETRY_SECONDS", "0.01")
    arn = slow_function(aws, tmp_path / "record.txt")
    sqs = aws.client("sqs")
    queue = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    fn = lambda_backends["123456789012"][REGION].get_function(arn)
    fn.dead_letter_arn = f"arn:aws:sqs:{REGION}:123456789012:dlq"
    awslambda_async.invoke_async("123456789012", {"Records": []}, arn, REGION)
    assert awslambda_async.wait_idle(30)
    [message] = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["All"])["Messages"]
    assert (
        "Task timed out after 1.00 seconds"
        in (message["MessageAttributes"]["ErrorMessage"]["StringValue"])
    )
    assert not (tmp_path / "record.txt").exists()


def test_an_invocation_with_another_environment_waits_for_the_shared_one_to_be_given_back() -> None:
    lease = awslambda.Lease()
    seen: list[tuple[str, str | None]] = []
    first_in = threading.Event()

    def first() -> None:
        with lease.holding({"LEASE_TEST": "one"}):
            first_in.set()
            time.sleep(0.2)
            seen.append(("first", os.environ.get("LEASE_TEST")))

    def second() -> None:
        first_in.wait()
        with lease.holding({"LEASE_TEST": "two"}):
            seen.append(("second", os.environ.get("LEASE_TEST")))

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [("first", "one"), ("second", "two")]
    assert "LEASE_TEST" not in os.environ


GLOBALS = """
import os, sys, time

SEEN = []  # a module global: one list per execution environment

def handler(event, context):
    SEEN.append(event["n"])
    time.sleep(float(event.get("sleep", 0)))
    if "exit" in event:
        sys.exit(event["exit"])
    if "print" in event:
        print(event["print"] + "-out")
        print(event["print"] + "-err", file=sys.stderr)
    if event.get("garble"):  # a reply on the worker's pipe that is not JSON
        os.write(int(sys.argv[2]), len(b"nonsense").to_bytes(4, "big") + b"nonsense")
        time.sleep(5)
    if event.get("unserialisable"):
        return {"a set": {1, 2}}
    return {
        "seen": list(SEEN),
        "pid": os.getpid(),
        "requestId": context.aws_request_id,
        "env": dict(os.environ),
    }
"""


def globals_function(session: boto3.Session) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", GLOBALS)
    role = session.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]
    session.client("lambda").create_function(
        FunctionName="globals",
        Runtime="python3.13",
        Role=role["Arn"],
        Handler="index.handler",
        Code={"ZipFile": buffer.getvalue()},
        Timeout=1,
    )


@pytest.fixture
def sandboxed() -> Iterator[boto3.Session]:
    """The detached emulator's model only: each concurrent execution a process of its own."""
    install()
    awslambda.install("http://127.0.0.1:9")
    STATE.run_functions_in_processes(True)
    try:
        with mock_aws():
            yield shared_session(region_name=REGION)
    finally:
        STATE.run_functions_in_processes(False)


def call(session: boto3.Session, payload: dict[str, object]) -> dict[str, object]:
    reply = session.client("lambda").invoke(
        FunctionName="globals", Payload=json.dumps(payload).encode()
    )
    answer: dict[str, object] = json.loads(reply["Payload"].read())
    return answer


def call_logs(session: boto3.Session, payload: dict[str, object]) -> str:
    """The invocation's log text (the tail Lambda returns with LogType Tail)."""
    reply = session.client("lambda").invoke(
        FunctionName="globals", Payload=json.dumps(payload).encode(), LogType="Tail"
    )
    return base64.b64decode(reply["LogResult"]).decode()


def test_d7_concurrent_executions_do_not_share_module_globals_and_a_warm_one_keeps_its_own(
    sandboxed: boto3.Session,
) -> None:
    """Lambda runs each concurrent execution in its own environment and reuses it warm
    (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html): the thread
    model loaded the module afresh per invocation, so a warm environment kept nothing."""
    globals_function(sandboxed)
    answers: list[dict[str, object]] = []
    threads = [
        threading.Thread(target=lambda n=n: answers.append(call(sandboxed, {"n": n, "sleep": 0.5})))
        for n in (1, 2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a["seen"] for a in answers) == [[1], [2]]  # type: ignore[type-var]
    assert answers[0]["pid"] != answers[1]["pid"] != os.getpid()
    again = call(sandboxed, {"n": 3})
    assert again["pid"] in {a["pid"] for a in answers}, "a warm sandbox is reused"
    assert len(again["seen"]) == 2 and again["seen"][-1] == 3  # type: ignore[arg-type]


def test_a_timed_out_invocations_sandbox_process_is_killed(sandboxed: boto3.Session) -> None:
    """Lambda stops the runtime at the Timeout; a thread could only be asked to stop at its
    next Python instruction, a process is gone."""
    globals_function(sandboxed)
    warm = call(sandboxed, {"n": 1})
    assert STATE.sandboxes is not None and warm["pid"] in STATE.sandboxes.processes()
    error = call(sandboxed, {"n": 2, "sleep": 5})
    assert error["errorType"] == "Sandbox.Timedout"
    assert warm["pid"] not in STATE.sandboxes.processes()
    with pytest.raises(ProcessLookupError):
        os.kill(int(warm["pid"]), 0)  # type: ignore[call-overload]
    fresh = call(sandboxed, {"n": 3})
    assert fresh["seen"] == [3] and fresh["pid"] != warm["pid"]  # a cold start after it


def test_deleting_a_function_kills_its_idle_sandbox_process(sandboxed: boto3.Session) -> None:
    """Nothing can invoke a deleted function, so its warm sandbox is killed at once; it lived
    on (about 44 MB) until the emulator stopped: one per deploy and destroy of the dev stack
    on the session's detached emulator."""
    globals_function(sandboxed)
    warm = call(sandboxed, {"n": 1})
    assert STATE.sandboxes is not None and warm["pid"] in STATE.sandboxes.processes()
    sandboxed.client("lambda").delete_function(FunctionName="globals")
    assert warm["pid"] not in STATE.sandboxes.processes()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # killed and reaped by Sandbox.kill
        try:
            os.kill(int(warm["pid"]), 0)  # type: ignore[call-overload]
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the deleted function's sandbox process still runs")


def test_stopping_the_emulator_leaves_no_sandbox_process(sandboxed: boto3.Session) -> None:
    globals_function(sandboxed)
    pid = call(sandboxed, {"n": 1})["pid"]
    STATE.run_functions_in_processes(False)
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)  # type: ignore[call-overload]


def test_a_handler_that_exits_answers_runtime_exit_error_not_a_timeout(
    sandboxed: boto3.Session,
) -> None:
    """Lambda answers a runtime that exits mid-invocation with Runtime.ExitError ("Runtime
    exited with error: exit status 1"), at once, not with a timeout
    (https://docs.aws.amazon.com/lambda/latest/dg/troubleshooting-invocation.html)."""
    globals_function(sandboxed)
    error = call(sandboxed, {"n": 1, "exit": 3})
    assert error["errorType"] == "Runtime.ExitError"
    assert "Runtime exited with error: exit status 3" in str(error["errorMessage"])
    assert call(sandboxed, {"n": 2})["seen"] == [2]  # a cold start after it


def test_a_sandbox_that_answers_nonsense_is_killed_and_answers_runtime_exit_error(
    sandboxed: boto3.Session,
) -> None:
    globals_function(sandboxed)
    warm = call(sandboxed, {"n": 1})
    error = call(sandboxed, {"n": 2, "garble": True})
    assert error["errorType"] == "Runtime.ExitError"
    assert "signal: kill" in str(error["errorMessage"])
    with pytest.raises(ProcessLookupError):
        os.kill(int(warm["pid"]), 0)  # type: ignore[call-overload]


def test_an_idle_sandbox_that_died_is_not_handed_to_the_next_invocation(
    sandboxed: boto3.Session,
) -> None:
    """A sandbox killed while idle (out of memory, say) is dropped; the next invocation gets a
    new one instead of a fake timeout."""
    globals_function(sandboxed)
    warm = call(sandboxed, {"n": 1})
    os.kill(int(warm["pid"]), signal.SIGKILL)  # type: ignore[call-overload]
    time.sleep(0.3)  # the kill lands
    fresh = call(sandboxed, {"n": 2})
    assert fresh.get("seen") == [2], fresh
    assert fresh["pid"] != warm["pid"]


def test_a_handlers_stdout_and_stderr_go_to_its_log_stream(sandboxed: boto3.Session) -> None:
    """Lambda puts what a function writes to stdout and stderr in its log stream
    (https://docs.aws.amazon.com/lambda/latest/dg/python-logging.html)."""
    globals_function(sandboxed)
    logs = call_logs(sandboxed, {"n": 1, "print": "hello"})
    assert "hello-out\n" in logs and "hello-err\n" in logs


def test_the_emulators_environment_does_not_leak_into_a_sandbox(
    sandboxed: boto3.Session, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Lambda's runtime has only its own variables and the function's
    (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime):
    not the developer's, nor a HOME whose ~/.aws/config boto3 in the function would read."""
    monkeypatch.setenv("DEVELOPERS_SECRET", "leaked")
    monkeypatch.setenv("HOME", str(tmp_path))
    globals_function(sandboxed)
    env = call(sandboxed, {"n": 1})["env"]
    assert isinstance(env, dict)
    assert "DEVELOPERS_SECRET" not in env
    assert env["HOME"] != str(tmp_path)
    assert not Path(env["AWS_CONFIG_FILE"]).exists()
    assert not Path(env["AWS_SHARED_CREDENTIALS_FILE"]).exists()
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "globals"
    assert "PYTHONPATH" not in env  # the worker's own, removed before the code loads


def test_a_result_that_is_not_json_answers_runtime_marshal_error(
    sandboxed: boto3.Session,
) -> None:
    """Lambda answers a handler's result it cannot serialise with Runtime.MarshalError
    (https://docs.aws.amazon.com/lambda/latest/dg/python-handler.html)."""
    globals_function(sandboxed)
    error = call(sandboxed, {"n": 1, "unserialisable": True})
    assert error["errorType"] == "Runtime.MarshalError"
    assert "Unable to marshal response" in str(error["errorMessage"])
