"""The tool walkthrough of docs/operations.md as CI runs it: the real `loanstack` entry point, no
terminal, COLUMNS=80, NO_COLOR=1, one emulator kept running across commands. Every command is
checked for tracebacks, emoji and ids cut with an ellipsis (`tests/support/cli.py`), and for the
exit code docs/operations.md documents.
"""

from __future__ import annotations

import base64
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loanstack.aws.target import Target
from loanstack.template import ROOT
from tests.support.cli import (
    URL_VARIABLE,
    ci_env,
    in_process,
    loanstack,
    on_running_emulator,
    one_error_line,
    require_emulator,
    wrong_keys,
)
from tests.support.stacks import tune_rotation_function


@pytest.fixture(scope="module")
def env(
    tmp_path_factory: pytest.TempPathFactory, worker_emulator: dict[str, str]
) -> dict[str, str]:
    """This module's CI environment on the worker's detached emulator
    (tests/integration/conftest.py)."""
    base = ci_env(Path(tmp_path_factory.mktemp("walkthrough")))
    return on_running_emulator(base, worker_emulator)


def test_the_readme_walkthrough_in_ci(env: dict[str, str], tmp_path: Path) -> None:
    status = loanstack(env, "emulator", "status")
    assert status.code == 0 and env[URL_VARIABLE] in status.out

    # deploy: the target line first, the change set, every event, the outputs; JSON on stdout
    first = loanstack(
        env, "deploy", "--env", "dev", "--suffix", "ci42", "--yes", "--output", "json"
    )
    assert first.code == 0, first.err[-2000:]
    assert (
        f"target: local emulator {env[URL_VARIABLE]}, account 123456789012, region us-east-1, "
        "stack tapstack-ci42"
    ) in first.err
    deployed = json.loads(first.out)
    assert wrong_keys(deployed) == []
    assert deployed["stack"] == "tapstack-ci42" and deployed["target"] == "local"
    secret_arn = deployed["outputs"]["DBSecretArn"]
    assert ":secret:secret-aurora-ci42-" in secret_arn

    # the same again: moto refuses the identical update at CreateChangeSet; "no changes", 0
    again = loanstack(env, "deploy", "--env", "dev", "--suffix", "ci42", "--yes")
    assert again.code == 0 and "tapstack-ci42: no changes" in again.out

    # outputs at 80 columns: the secret's ARN whole, on one line
    shown = loanstack(env, "outputs")
    assert shown.code == 0 and any(secret_arn in line for line in shown.out.splitlines())
    assert json.loads(loanstack(env, "outputs", "--output", "json").out) == deployed["outputs"]

    # invoke, then its records in the emulator's CloudWatch Logs through `loanstack logs`
    invoked = loanstack(
        env, "invoke", "validate", "--payload", "examples/approved.json", "--output", "json"
    )
    assert invoked.code == 0 and json.loads(invoked.out)["decision"] == "APPROVED"
    assert wrong_keys(json.loads(invoked.out)) == []
    logs = loanstack(env, "logs", "validate", "--since", "5m")
    assert logs.code == 0, logs.err
    assert "target: local emulator" in logs.err and "stack tapstack-ci42" in logs.err
    assert "Found endpoint" not in logs.out, "the emulator's plumbing is not the function's log"
    records = [json.loads(ln.split(" ", 1)[1]) for ln in logs.out.splitlines() if " {" in ln]
    decided = [r for r in records if r["message"] == "loan decision"]
    assert decided and decided[-1]["decision"] == "APPROVED", records
    assert follow_until_ctrl_c(env, decided[-1]["requestId"]) == 0
    assert all({"timestamp", "level", "message", "requestId"} <= set(r) for r in records)
    # --filter (a CloudWatch pattern), --format json, --since with an absolute time
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 300))
    as_json = loanstack(
        env, "logs", "--filter", '"loan decision"', "--format", "json", "--since", since
    )
    assert as_json.code == 0, as_json.err
    lines = [json.loads(line) for line in as_json.out.splitlines()]
    assert wrong_keys(lines) == []
    assert lines and all("loan decision" in line["message"] for line in lines)
    assert all(set(line) == {"timestamp", "logStreamName", "eventId", "message"} for line in lines)

    # rotate as JSON; the rotation function's own records are there too (its polls, 2 s doubling
    # to 15, are not this walkthrough's subject: 0.2 s, a rotation of ~3 s instead of ~10)
    tune_rotation_function(emulator_target(env), deployed["outputs"], FIRST_POLL_SECONDS="0.2")
    rotated = loanstack(env, "rotate", "--output", "json")
    assert rotated.code == 0, rotated.err[-2000:]
    versions = json.loads(rotated.out)
    assert wrong_keys(versions) == []
    assert versions["current"] != versions["previous"]
    rotation_logs = loanstack(env, "logs", "rotation")
    assert "finishSecret" in rotation_logs.out

    # an update shows its property changes and what they replace
    update = loanstack(
        env,
        "deploy",
        "--env",
        "dev",
        "--suffix",
        "ci42",
        "--yes",
        "--param",
        "ValidationMemorySize=2048",
    )
    assert update.code == 0, update.err[-2000:]
    assert "MemorySize: 1024 -> 2048" in update.out
    assert "1/1" in update.out, "the progress bar counts this change set's changes"

    # destroy, then destroy again: not there, exit 0
    destroyed = loanstack(env, "destroy", "--suffix", "ci42", "--yes", "--output", "json")
    assert destroyed.code == 0 and "nothing left behind" in destroyed.err
    report = json.loads(destroyed.out)
    assert report["deleted"] is True and report["stack"] == "tapstack-ci42"
    assert wrong_keys(report) == []
    gone = loanstack(env, "destroy", "--suffix", "ci42", "--yes")
    assert gone.code == 0 and "nothing to destroy" in gone.out

    # the stack is gone from this emulator: invoke says so in one line, with what to do
    Path(env["LOANSTACK_OUTPUTS_FILE"]).write_text(json.dumps(deployed["outputs"]))
    missing = loanstack(env, "invoke", "validate", "--payload", "examples/approved.json")
    assert missing.code == 1
    assert "the stack is not on the emulator at" in one_error_line(missing)
    assert "loanstack emulator start" in missing.err


def emulator_target(env: dict[str, str]) -> Target:
    """The detached emulator as a target for the test's own calls (not the tool's)."""
    import boto3

    from loanstack.emulator import CREDENTIALS

    session = boto3.Session(region_name="us-east-1", **CREDENTIALS)
    return Target("local", "us-east-1", session, endpoint_url=env[URL_VARIABLE])


def follow_until_ctrl_c(env: dict[str, str], expected: str) -> int:
    """`loanstack logs --follow` prints what is there, keeps going, and ends cleanly on Ctrl-C,
    even started as a script's background job is (`loanstack logs --follow &` in `sh`): POSIX
    has such a job inherit SIGINT ignored, and Python then installs no KeyboardInterrupt
    handler, so a follower that relied on Python's would never end (the test failed so whenever
    pytest itself ran in the background). Started here with SIGINT ignored, as that job is."""
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited through exec
    try:
        follower = subprocess.Popen(
            [sys.executable, "-m", "loanstack", "logs", "--follow"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
    finally:
        signal.signal(signal.SIGINT, ignored)
    assert follower.stdout is not None
    for line in follower.stdout:
        if expected.encode() in line:
            break
    time.sleep(1)  # now polling for more
    assert follower.poll() is None, "--follow keeps running"
    follower.send_signal(signal.SIGINT)
    try:
        out, err = follower.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        follower.kill()
        follower.communicate()
        pytest.fail("`loanstack logs --follow` still running 30 s after Ctrl-C")
    assert b"Traceback" not in out + err, err.decode()
    return follower.returncode


def test_lambda_tail_returns_the_invocations_log(env: dict[str, str]) -> None:
    """`aws lambda invoke --log-type Tail` on the emulator returns the records (it was empty).
    The stack's deploy and destroy are the walkthrough's own commands, run in process here
    (`in_process`, the same checks): the subject is the emulator's answer, not the entry point."""
    import boto3

    from loanstack.emulator import CREDENTIALS

    deployed = in_process(env, "deploy", "--env", "dev", "--suffix", "tail42", "--yes")
    assert deployed.code == 0, deployed.err[-2000:]
    outputs = json.loads(Path(env["LOANSTACK_OUTPUTS_FILE"]).read_text())
    client = boto3.client(
        "lambda", endpoint_url=env[URL_VARIABLE], region_name="us-east-1", **CREDENTIALS
    )
    payload = (ROOT / "examples" / "approved.json").read_bytes()
    reply = client.invoke(
        FunctionName=outputs["LoanValidationFunctionName"], Payload=payload, LogType="Tail"
    )
    tail = base64.b64decode(reply["LogResult"]).decode()
    assert '"level": "INFO"' in tail and "requestId" in tail
    assert in_process(env, "destroy", "--suffix", "tail42", "--yes").code == 0


def test_sigterm_stops_the_emulator_and_its_mariadb_and_removes_the_data(tmp_path: Path) -> None:
    """What CI, `timeout` and `docker stop` send: nothing may be left running or on disk."""
    env = ci_env(tmp_path)
    state_file = Path(env["LOANSTACK_EMULATOR_STATE"])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "loanstack", "emulator", "start", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not state_file.exists() and server.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if server.poll() is not None:
        out, err = server.communicate()
        require_emulator(server.returncode, (out + err).decode())
        pytest.fail((out + err).decode()[-2000:])
    state = json.loads(state_file.read_text())
    assert state["url"] == f"http://127.0.0.1:{port}"
    assert Path(state["data_dir"]).is_dir() and alive(state["mariadb_pid"])
    server.send_signal(signal.SIGTERM)
    out, err = server.communicate(timeout=60)
    assert server.returncode == 143, (out + err).decode()
    assert b"Traceback" not in out + err
    assert b"terminated (SIGTERM)" in err
    assert not alive(state["mariadb_pid"]), "mariadbd left running"
    assert not Path(state["data_dir"]).exists(), "MariaDB's data directory left behind"
    assert not state_file.exists()
    assert loanstack(env, "emulator", "status").code == 1


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
