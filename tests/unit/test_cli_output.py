"""Issue 21 items 10 and 11 through the real entry point (no terminal unless a test opens one):
what a pipe reads, a closed pipe, a prompt answered "no", errors that say what to do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loanstack.template import ROOT
from tests.support.cli import at_terminal, ci_env, loanstack, one_error_line, wrong_keys

USAGE, FAILURE, PIPE = 2, 1, 141
ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:" + "s" * 67  # 120 characters


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return ci_env(tmp_path)


@pytest.fixture
def outputs_file(env: dict[str, str]) -> Path:
    path = Path(env["LOANSTACK_OUTPUTS_FILE"])
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@pytest.mark.parametrize("columns", ["80", "40"])
def test_piped_outputs_are_tab_separated_and_keep_a_120_character_arn_whole(
    env: dict[str, str], outputs_file: Path, columns: str
) -> None:
    outputs_file.write_text(json.dumps({"DBSecretArn": ARN}))
    run = loanstack(env | {"COLUMNS": columns}, "outputs")
    assert run.code == 0, run.err
    assert f"DBSecretArn\t{ARN}" in run.out.splitlines()
    assert "output\tvalue" in run.out.splitlines()


@pytest.mark.parametrize("output", ["text", "json"])
def test_a_closed_pipe_ends_quietly(env: dict[str, str], outputs_file: Path, output: str) -> None:
    """`loanstack outputs | true`: the reader is gone before the first write (what `| head -1`
    meets once it has its line): no traceback, no "Exception ignored", no error line, the
    documented code 141 (as a shell reports SIGPIPE), as text (rich) and as JSON (plain)."""
    outputs_file.write_text(json.dumps({"DBSecretArn": ARN}))
    command = f"{sys.executable} -m loanstack outputs --output {output} | true"
    done = subprocess.run(
        ["bash", "-c", command + "; echo ${PIPESTATUS[0]}"],
        capture_output=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.stderr.decode() == ""
    assert done.stdout.decode().strip() == str(PIPE)


def test_no_at_the_aws_prompt_changes_nothing_and_is_not_an_error(
    env: dict[str, str], outputs_file: Path
) -> None:
    """A "no" typed at a terminal is a choice: exit 0, one line; without a terminal the same
    command stays a usage error (tests/unit/test_cli.py)."""
    outputs_file.write_text(json.dumps({"DBSecretArn": ARN}))
    env |= {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret"}
    run = at_terminal(env, "rotate", "--region", "us-east-1", answer="n")
    assert run.code == 0, run.err
    assert "loanstack: nothing changed (answered no)" in run.err


@pytest.mark.parametrize("region", ["mars-1", "us-mars-9"])
def test_an_unknown_region_names_the_form_and_how_to_list_regions(
    env: dict[str, str], region: str
) -> None:
    run = loanstack(env, "destroy", "--suffix", "dev42", "--region", region, "--target", "local")
    assert run.code == USAGE, run.err
    line = one_error_line(run)
    assert f"region {region}" in line.replace("'", "") and "(from --region)" in line
    assert "aws ec2 describe-regions" in line


@pytest.mark.parametrize(
    "url", ["localhost:4577", "http://127.0.0.1:port", "ftp://127.0.0.1:4577", "http://:4577"]
)
def test_a_malformed_emulator_url_says_what_it_takes(env: dict[str, str], url: str) -> None:
    run = loanstack(env | {"LOANSTACK_EMULATOR_URL": url}, "destroy", "--suffix", "dev42")
    assert run.code == USAGE, run.err
    line = one_error_line(run)
    assert f"LOANSTACK_EMULATOR_URL='{url}' is not an emulator URL" in line
    assert "http://HOST:PORT" in line and "loanstack emulator status" in line


def test_the_key_walker_finds_every_key_out_of_style() -> None:
    """The walker the JSON tests use (tests/support/cli.py) bites: nested, in lists, and
    not inside the maps keyed by data (output names, decisions)."""
    document = {
        "monthly_total": 1,
        "lines": [{"unitPrice": 1, "unit_price": 2}],
        "outputs": {"DBSecretArn": "x"},
        "summary": {"NEEDS_REVIEW": 1},
    }
    assert wrong_keys(document) == ["$.monthly_total", "$.lines[].unit_price"]


def test_cost_json_keys_are_camel_case(env: dict[str, str]) -> None:
    run = loanstack(env, "cost", "--env", "prod", "--output", "json")
    assert run.code == 0, run.err
    assert wrong_keys(json.loads(run.out)) == []
