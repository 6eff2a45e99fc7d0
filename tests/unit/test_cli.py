"""The `loanstack` command as a user and CI meet it (the real entry point, no terminal): bad input
is one line on stderr with what to do, the documented exit code (usage 2, failure 1), and never
a traceback, an emoji or an id cut with an ellipsis (`tests/support/cli.py` checks every run)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from loanstack import render
from loanstack.aws.target import EMULATOR_URL_VARIABLE, Target
from loanstack.compliance import report
from loanstack.errors import Interrupted, UsageError
from loanstack.stack import deploy
from loanstack.stack.events import follow, wait_for_change_set
from loanstack.stack.preflight import concurrency_shortfall
from tests.support.cli import ELLIPSIS, ci_env, in_process, loanstack, one_error_line, wrong_keys

USAGE, FAILURE = 2, 1
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:secret-aurora-demo-AbCdEf"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return ci_env(tmp_path)


@pytest.fixture
def outputs_file(env: dict[str, str]) -> Path:
    path = Path(env["LOANSTACK_OUTPUTS_FILE"])
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unknown_environment_is_a_usage_error(env: dict[str, str]) -> None:
    run = loanstack(env, "deploy", "--env", "qa", "--suffix", "dev42")
    assert run.code == USAGE and "invalid choice: 'qa'" in run.err


@pytest.mark.parametrize("suffix", ["Dev42", "dev_42", "a-very-long-suffix-indeed", "dev--42"])
def test_a_bad_suffix_is_a_usage_error_before_anything_starts(
    env: dict[str, str], suffix: str
) -> None:
    run = (loanstack if suffix == "Dev42" else in_process)(
        env, "deploy", "--env", "dev", "--suffix", suffix, "--yes"
    )  # one entry point run for this path (a UsageError raised in a command), the rest in process
    assert run.code == USAGE
    assert one_error_line(run).startswith("loanstack: error: parameter EnvironmentSuffix=")


def test_an_unknown_parameter_is_a_usage_error(env: dict[str, str]) -> None:
    run = in_process(env, "deploy", "--env", "dev", "--suffix", "dev42", "--param", "Colour=blue")
    assert run.code == USAGE and "unknown parameter(s): Colour" in one_error_line(run)


def test_commands_that_need_the_outputs_file_say_so(env: dict[str, str], tmp_path: Path) -> None:
    payload = tmp_path / "app.json"
    payload.write_text('{"loanId": "L-1"}')
    for argv in (
        ["outputs"],
        ["invoke", "validate", "--payload", str(payload)],
        ["rotate"],
        ["logs"],
    ):  # the entry point for the first (a failure's exit code), the rest in process
        run = (loanstack if argv == ["outputs"] else in_process)(env, *argv)
        assert run.code == FAILURE, argv
        assert "flat-outputs.json not found: run `loanstack deploy` first" in one_error_line(run)


@pytest.mark.parametrize(
    "content",
    [b"[1, 2]", b'{"VPCId": {"nested": 1}}', b'"just a string"', b"{not json", b"\xff\xfe\x00"],
)
def test_an_outputs_file_that_is_not_a_flat_object_of_strings_is_refused(
    env: dict[str, str], outputs_file: Path, content: bytes
) -> None:
    outputs_file.write_bytes(content)
    for argv in (["outputs"], ["rotate"], ["logs"]) if content == b"[1, 2]" else (["outputs"],):
        run = in_process(env, *argv)  # the path of test_a_bad_suffix...: a UsageError
        assert run.code == USAGE, (argv, run.err)
        assert "run `loanstack deploy` again" in one_error_line(run)


def test_a_payload_that_is_not_json_or_not_text_is_a_usage_error(
    env: dict[str, str], tmp_path: Path
) -> None:
    cases = {
        "not json": (b"{not json", "payload is not JSON"),
        "binary": (bytes(range(256)), "is not text (UTF-8 JSON expected)"),
    }
    for name, (content, message) in cases.items():
        payload = tmp_path / f"{name}.bin"
        payload.write_bytes(content)
        run = in_process(env, "invoke", "validate", "--payload", str(payload))
        assert run.code == USAGE and message in one_error_line(run), name
    # real standard input, not a stand-in: the entry point
    run = loanstack(env, "invoke", "validate", "--payload", "-", stdin=bytes(range(256)))
    assert run.code == USAGE and "standard input is not text" in one_error_line(run)
    run = in_process(env, "invoke", "validate", "--payload", str(tmp_path / "missing.json"))
    assert run.code == USAGE and "cannot read payload" in one_error_line(run)


def test_a_bad_since_is_a_usage_error(env: dict[str, str], outputs_file: Path) -> None:
    outputs_file.write_text(json.dumps({"LoanValidationFunctionName": "lambda-x"}))
    run = in_process(env, "logs", "--since", "yesterday")
    assert run.code == USAGE and "--since takes a duration (30s, 10m" in one_error_line(run)


# --- the target rule (SPEC D9) ---------------------------------------------------------


def test_credentials_alone_never_choose_a_real_account(env: dict[str, str]) -> None:
    """Dummy keys for the aws CLI, no emulator URL, no terminal: refused before any AWS call
    (the endpoint is a closed port, so a call would fail differently)."""
    env |= {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
    }
    for argv in (
        ["deploy", "--env", "dev", "--suffix", "dev42", "--yes"],
        ["destroy", "--suffix", "dev42", "--yes"],
    ):
        run = (loanstack if argv[0] == "deploy" else in_process)(env, *argv)
        assert run.code == USAGE, run.err
        assert "pass --target aws to use that account" in one_error_line(run)


def test_an_emulator_url_means_local_even_with_aws_credentials(env: dict[str, str]) -> None:
    """The reported bug: the URL exported as the README says, plus credentials. The command
    goes to the URL (here nothing answers there) and never to CloudFormation."""
    url = f"http://127.0.0.1:{free_port()}"
    env |= {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        EMULATOR_URL_VARIABLE: url,
    }
    run = loanstack(env, "deploy", "--env", "dev", "--suffix", "dev42", "--yes")
    assert run.code == FAILURE
    assert f"no emulator answers at {url}" in one_error_line(run)
    assert "loanstack emulator start" in run.err


def test_destroy_of_a_stack_that_is_not_there_says_so_and_succeeds(env: dict[str, str]) -> None:
    run = loanstack(env, "destroy", "--suffix", "nothere42", "--target", "local")
    if run.code == FAILURE and "MariaDB" in run.err:
        pytest.skip(run.err)
    assert run.code == 0, run.err
    assert "no stack tapstack-nothere42 in local emulator" in run.out
    assert "nothing to destroy" in run.out


# --- output that survives CI (in process: the layout itself) ------------------------------------


def test_outputs_keep_arns_whole_and_never_become_emoji(
    env: dict[str, str], outputs_file: Path
) -> None:
    outputs_file.write_text(json.dumps({"DBSecretArn": SECRET_ARN, "Odd": "[bold]x[/] :smile:"}))
    run = loanstack(env, "outputs")
    assert run.code == 0
    assert SECRET_ARN in run.out, "the ARN is printed whole, on one line"
    assert "[bold]x[/] :smile:" in run.out, "data is never read as markup or emoji"
    as_json = in_process(env, "outputs", "--output", "json")
    assert json.loads(as_json.out) == {"DBSecretArn": SECRET_ARN, "Odd": "[bold]x[/] :smile:"}


@pytest.mark.parametrize("width", [60, 80, 200])
def test_records_never_cut_an_id_and_keep_prose_readable(width: int) -> None:
    console = render.console(
        width=width,
        record=True,
        file=open("/dev/null", "w"),  # noqa: SIM115
        force_terminal=True,
    )
    reason = "Object Lock would make the bucket impossible to empty on destroy (R6) " * 3
    rows = [("prod", "CT.S3.PR.1", "control tower", "LoanDocumentsBucket", "accepted", reason)]
    render.records(
        console,
        "t",
        ("env", "check", "tool", "resource", "result", "reason"),
        rows,
        prose="reason",
    )
    shown = console.export_text()
    assert ELLIPSIS not in shown
    assert "LoanDocumentsBucket" in shown and "CT.S3.PR.1" in shown
    assert all(len(line) <= width for line in shown.splitlines() if "Object" in line)
    words_per_line = [len(ln.split()) for ln in shown.splitlines() if "Object" in ln or "R6" in ln]
    assert max(words_per_line) >= 5, "the reason wraps at the width, not one word per line"


def test_sarif_has_one_result_per_failing_or_accepted_finding() -> None:
    rows = [
        report.Row("dev", "LS001 (R1)", "loanstack", "template", "FAIL", "too big"),
        report.Row("both", "CKV_AWS_18", "checkov", "TrailBucket", "accepted", "logs itself"),
        report.Row("dev", "CT.S3.PR.1", "control tower", "TrailBucket", "accepted", "R6"),
        report.Row("dev", "LS004 (R4)", "loanstack", "all", "pass", "names"),
    ]
    doc: dict[str, Any] = report.sarif(rows)
    assert doc["version"] == "2.1.0"
    results = doc["runs"][0]["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [
        ("LS001 (R1)", "error"),
        ("CKV_AWS_18", "note"),
        ("CT.S3.PR.1", "note"),
    ]
    assert results[1]["suppressions"] == [{"kind": "inSource", "justification": "logs itself"}]
    assert results[2]["suppressions"][0]["kind"] == "external"
    assert "suppressions" not in results[0]
    rule_ids = {r["id"] for r in doc["runs"][0]["tool"]["driver"]["rules"]}
    assert rule_ids == {"LS001 (R1)", "CKV_AWS_18", "CT.S3.PR.1"}


def test_check_as_json_and_sarif(env: dict[str, str], tmp_path: Path) -> None:
    """One JSON document on stdout (the summary on stderr), and the same findings as SARIF:
    the template has no unexplained finding, so the exit code is 0 and every result a note."""
    sarif_file = tmp_path / "check.sarif"
    run = loanstack(env, "check", "--env", "dev", "--output", "json", "--sarif", str(sarif_file))
    assert run.code == 0, run.err
    doc = json.loads(run.out)
    assert wrong_keys(doc) == []
    failing = [f for f in doc["findings"] if f["result"] == "FAIL"]
    assert doc["failing"] == len(failing) == 0 and doc["accepted"] > 0
    assert f"{doc['failing']} failing, {doc['accepted']} accepted" in run.err
    sarif = json.loads(sarif_file.read_text())
    levels = [r["level"] for r in sarif["runs"][0]["results"]]
    assert levels.count("error") == 0 and levels.count("note") == doc["accepted"]


def test_cost_as_json_is_one_document_on_stdout(env: dict[str, str]) -> None:
    run = loanstack(env, "cost", "--env", "dev", "--output", "json")
    assert run.code == 0
    doc = json.loads(run.out)
    assert wrong_keys(doc) == []
    assert doc["env"] == "dev" and doc["monthlyTotal"] > 0
    assert round(sum(line["monthly"] for line in doc["lines"]), 2) == pytest.approx(
        doc["monthlyTotal"], abs=0.05
    )
    text = in_process(env, "cost", "--env", "dev")
    assert f"{doc['monthlyTotal']:,.2f}" in text.out


def test_make_check_builds_what_check_needs_then_runs_it(env: dict[str, str]) -> None:
    """`loanstack check` right after `make demo` lacked checkov; `make check` is the one command
    (README) that builds .venv-checkov and runs the check with it."""
    import subprocess

    from loanstack.template import ROOT

    planned = subprocess.run(
        ["make", "-n", "-B", "check"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "requirements-checkov.txt" in planned
    assert "CHECKOV_BIN=" in planned and "-m loanstack check" in planned
    missing = loanstack(env | {"CHECKOV_BIN": "/nonexistent/checkov"}, "check", "--env", "dev")
    assert missing.code == FAILURE
    assert "`make check` installs what `loanstack check` needs" in one_error_line(missing)


def test_follow_stops_on_ctrl_c_and_says_the_stack_carries_on() -> None:
    """Ctrl-C while events stream: no traceback; CloudFormation goes on, and the message says
    how to follow it (on AWS, nothing stops with us)."""

    class Interrupting:
        def get_paginator(self, name: str) -> Any:
            raise KeyboardInterrupt

        def describe_stacks(self, StackName: str) -> dict[str, Any]:
            return {"Stacks": [{"StackId": StackName, "StackStatus": "UPDATE_IN_PROGRESS"}]}

    target = Target("aws", "eu-west-1", session=None)  # type: ignore[arg-type]
    target._clients["cloudformation"] = Interrupting()
    console = Console(file=open("/dev/null", "w"))  # noqa: SIM115
    with pytest.raises(Interrupted) as caught:
        follow(target, "tapstack-dev42", console, 3, set())
    message = str(caught.value)
    assert "CloudFormation carries on" in message
    assert "describe-stack-events --stack-name tapstack-dev42 --region eu-west-1" in message


def test_an_aws_change_set_without_changes_means_no_changes() -> None:
    """AWS does not refuse an identical update: the change set ends FAILED with this reason;
    deploy deletes it and reports no changes (moto's refusal is covered by the walkthrough)."""

    class Cfn:
        def __init__(self) -> None:
            self.deleted: list[str] = []

        def describe_change_set(self, **kwargs: Any) -> dict[str, Any]:
            return {
                "Status": "FAILED",
                "StatusReason": "The submitted information didn't contain changes. Submit "
                "different information to create a change set.",
            }

        def delete_change_set(self, ChangeSetName: str) -> None:
            self.deleted.append(ChangeSetName)

    target = Target("aws", "us-east-1", session=None)  # type: ignore[arg-type]
    target._clients["cloudformation"] = cfn = Cfn()
    assert wait_for_change_set(target, "cs-1") is None
    assert cfn.deleted == ["cs-1"]


def test_a_taken_port_is_refused_in_one_line(env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = loanstack(env, "emulator", "start", "--port", str(port))
    assert run.code == FAILURE
    assert f"port {port} is taken" in one_error_line(run)


# --- reserved-concurrency preflight (SPEC D7): the arithmetic, before any AWS call ------


@pytest.mark.parametrize(
    ("limit", "unreserved", "requested", "held", "fits"),
    [
        (1000, 1000, 10, 0, True),  # a normal account
        (1000, 109, 10, 0, False),  # others reserved the rest: 99 would be left
        (1000, 100, 10, 10, True),  # an update that keeps the same reservation
        (10, 10, 1, 0, False),  # a young account (limit 10) keeps all 10 unreserved
        (10, 10, 0, 0, True),  # reservation switched off
    ],
)
def test_r11_concurrency_preflight_arithmetic(
    limit: int, unreserved: int, requested: int, held: int, fits: bool
) -> None:
    problem = concurrency_shortfall(limit, unreserved, requested, held, "us-east-1")
    assert (problem is None) == fits
    if problem:
        assert "ValidationReservedConcurrency=" in problem and "L-B99A9384" in problem
        if limit == 10:
            assert "ValidationReservedConcurrency=0 (no reservation)" in problem


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"DBServerlessMinCapacityProd": "8", "DBServerlessMaxCapacity": "4"}, "is above"),
        ({"DBServerlessMinCapacityProd": "1.25"}, "steps of 0.5"),
        ({"DBServerlessMinCapacityProd": "4", "DBServerlessMaxCapacity": "4"}, None),
    ],
)
def test_r9_serverless_range_is_checked_before_anything_is_built(
    params: dict[str, str], problem: str | None
) -> None:
    params = {**params, "AlarmEmail": "ops@example.com"}  # prod needs a subscriber (R14)
    if problem is None:
        assert deploy.parameters_for("prod", "p1", params)
        return
    with pytest.raises(UsageError, match=problem):
        deploy.parameters_for("prod", "p1", params)


def test_r14_prod_without_an_alarm_subscriber_is_refused_before_anything_is_built() -> None:
    with pytest.raises(UsageError, match="prod needs AlarmEmail"):
        deploy.parameters_for("prod", "p1", {})
    assert deploy.parameters_for("dev", "d1", {})
