"""Bad input to the `loanstack` command: one line on stderr, a non-zero exit, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from loanstack import cli, deploy


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exit_:  # argparse's own refusals
        code = int(exit_.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_an_unknown_environment_is_refused_by_the_parser(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err = run(capsys, "deploy", "--env", "qa", "--suffix", "dev42")
    assert code == 2 and "invalid choice: 'qa'" in err


@pytest.mark.parametrize("suffix", ["Dev42", "dev_42", "x", "a-very-long-suffix-indeed", "dev--42"])
def test_a_bad_suffix_is_refused_before_anything_starts(
    capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    code, err = run(
        capsys, "deploy", "--env", "dev", "--suffix", suffix, "--target", "local", "--yes"
    )
    assert code == 1
    assert err.startswith("loanstack: error: parameter EnvironmentSuffix=") and err.count("\n") == 1


def test_an_unknown_parameter_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "deploy", "--env", "dev", "--suffix", "dev42", "--param", "Colour=blue")
    assert code == 1 and "unknown parameter(s): Colour" in err


def test_commands_that_need_the_outputs_file_say_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deploy, "OUTPUTS_FILE", tmp_path / "cfn-outputs" / "flat-outputs.json")
    payload = tmp_path / "app.json"
    payload.write_text('{"loanId": "L-1"}')
    for argv in (
        ["outputs"],
        ["invoke", "validate", "--payload", str(payload), "--target", "local"],
        ["rotate", "--target", "local"],
    ):
        code, err = run(capsys, *argv)
        assert code == 1, argv
        assert (
            "flat-outputs.json not found: run `loanstack deploy` first" in err
            and err.count("\n") == 1
        )


def test_a_payload_that_is_not_json_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    payload = tmp_path / "app.json"
    payload.write_text("{not json")
    code, err = run(capsys, "invoke", "validate", "--payload", str(payload))
    assert code == 2 and "payload is not JSON" in err
    code, err = run(capsys, "invoke", "validate", "--payload", str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read payload" in err


def test_destroy_asks_first_and_refuses_without_confirmation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err = run(capsys, "destroy", "--suffix", "dev42", "--target", "local")
    assert code == 2 and "not confirmed (use --yes)" in err


# --- reserved-concurrency preflight (issue 10 item 4): the arithmetic, before any AWS call ------


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
    problem = deploy.concurrency_shortfall(limit, unreserved, requested, held, "us-east-1")
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
    if problem is None:
        assert deploy.parameters_for("prod", "p1", params)
        return
    with pytest.raises(deploy.DeployError, match=problem):
        deploy.parameters_for("prod", "p1", params)
