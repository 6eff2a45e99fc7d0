"""The real `loanstack` entry point in a subprocess, as CI runs it: no terminal, 80 columns, no
colour, no AWS configuration from the machine; every run is checked for what must never show."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from loanstack.aws.target import EMULATOR_URL_VARIABLE as URL_VARIABLE
from loanstack.compliance.judge_cache import VARIABLE as JUDGE_CACHE
from loanstack.template import ROOT

# what rich would turn `:secret:` and friends into, and what it would cut ids with
EMOJI = re.compile("[\u2600-\u27bf\u3200-\u32ff\U0001f000-\U0001faff]")
ELLIPSIS = "\u2026"


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def ci_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The environment of a CI job: no AWS settings of this machine, a private outputs file and
    emulator state, 80 columns, no colour; the one setting kept is the test session's cache of
    outside judges' verdicts (unchanged input, unchanged verdict)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "LOANSTACK_")) and k not in ("COLUMNS", "LINES", "TERM")
    }
    if JUDGE_CACHE in os.environ:  # the session's judges' verdicts (tests/conftest.py)
        env[JUDGE_CACHE] = os.environ[JUDGE_CACHE]
    env |= {
        "COLUMNS": "80",
        "NO_COLOR": "1",
        "TERM": "dumb",
        "AWS_CONFIG_FILE": str(tmp / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "LOANSTACK_OUTPUTS_FILE": str(tmp / "cfn-outputs" / "flat-outputs.json"),
        "LOANSTACK_EMULATOR_STATE": str(tmp / "emulator.json"),
    }
    return env | extra


def loanstack(env: dict[str, str], *argv: str, stdin: bytes = b"", timeout: float = 300) -> Run:
    """`python -m loanstack ARGV` without a terminal; fails the test on a traceback, an emoji
    or an ellipsis anywhere in what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "loanstack", *argv],
        input=stdin,
        capture_output=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    run = Run(done.returncode, done.stdout.decode(), done.stderr.decode())
    assert "Traceback" not in run.text, run.text[-3000:]
    assert not EMOJI.search(run.text), EMOJI.findall(run.text)
    assert ELLIPSIS not in run.text, [ln for ln in run.text.splitlines() if ELLIPSIS in ln]
    return run


def in_process(env: dict[str, str], *argv: str, stdin: bytes = b"") -> Run:
    """`loanstack ARGV` through `cli.main` in this process, with the environment, working
    directory, no-terminal streams and checks of `loanstack` above: for a test of what a command
    says and returns, not of the entry point itself (a subprocess costs ~0.5 s of CPU before it
    does anything). docs/testing.md says which tests use which."""
    import io

    from loanstack.cli import main

    streams = (sys.stdin, sys.stdout, sys.stderr)
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    out, err = io.BytesIO(), io.BytesIO()
    replaced = (  # held here: a wrapper collected would close its buffer
        io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"),
        io.TextIOWrapper(out, encoding="utf-8", write_through=True),
        io.TextIOWrapper(err, encoding="utf-8", write_through=True),
    )
    sys.stdin, sys.stdout, sys.stderr = replaced
    os.environ.clear()
    os.environ.update(env)
    os.chdir(ROOT)
    try:
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 1
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        sys.stdin, sys.stdout, sys.stderr = streams
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
    run = Run(code, out.getvalue().decode(), err.getvalue().decode())
    for stream in replaced:
        stream.detach()
    assert "Traceback" not in run.text, run.text[-3000:]
    assert not EMOJI.search(run.text), EMOJI.findall(run.text)
    assert ELLIPSIS not in run.text, [ln for ln in run.text.splitlines() if ELLIPSIS in ln]
    return run


def require_emulator(run_code: int, text: str) -> None:
    """Skip outside CI when the emulator could not start for want of MariaDB (CI has it)."""
    if run_code != 0 and "MariaDB" in text and os.environ.get("CI") != "true":
        pytest.skip(f"the emulator needs MariaDB: {text.strip()[-300:]}")


def detached_emulator(base: dict[str, str]) -> Iterator[dict[str, str]]:
    """A module's fixture body: `loanstack emulator start --detach` in the CI environment
    `base`, the environment with its URL for the tests, `emulator stop` at the end."""
    started = loanstack(base, "emulator", "start", "--detach", "--port", "0")
    require_emulator(started.code, started.text)
    assert started.code == 0, started.text
    url = next(w.split("=", 1)[1] for w in started.out.split() if w.startswith(URL_VARIABLE))
    yield base | {URL_VARIABLE: url}
    loanstack(base, "emulator", "stop")


def on_running_emulator(base: dict[str, str], running: dict[str, str]) -> dict[str, str]:
    """A module's CI environment `base` that reaches an emulator already running (`running`,
    what `detached_emulator` yields): its URL, and its state file, so that a shell without the
    URL finds it as it finds one `emulator start --detach` left."""
    shared = (URL_VARIABLE, "LOANSTACK_EMULATOR_STATE")
    return base | {name: running[name] for name in shared}


def one_error_line(run: Run) -> str:
    """The error a failed command printed: exactly one line on stderr, starting as they all do."""
    lines = [ln for ln in run.err.splitlines() if ln.startswith("loanstack: error: ")]
    assert len(lines) == 1, run.err
    return lines[0]


CAMEL = re.compile(r"^[a-z][a-zA-Z0-9]*$")
DATA_KEYED = ("outputs", "summary")  # keys that are data: CloudFormation output names, decisions


def wrong_keys(document: object, path: str = "$") -> list[str]:
    """Every key of a `--output json` document not in the one key style (camelCase), walking
    nested objects and lists; the maps keyed by data (DATA_KEYED) are walked for their values."""
    found: list[str] = []
    if isinstance(document, dict):
        for key, value in document.items():
            if not CAMEL.match(str(key)) and path.rsplit(".", 1)[-1] not in DATA_KEYED:
                found.append(f"{path}.{key}")
            found += wrong_keys(value, f"{path}.{key}")
    elif isinstance(document, list):
        for item in document:
            found += wrong_keys(item, f"{path}[]")
    return found


def at_terminal(env: dict[str, str], *argv: str, answer: str, timeout: float = 600) -> Run:
    """`python -m loanstack ARGV` with a terminal on stdin that types `answer` (a prompt reads
    it); stdout and stderr captured, checked as `loanstack` checks them."""
    import pty

    main, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "loanstack", *argv],
        stdin=child,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    os.close(child)
    try:
        os.write(main, answer.encode() + b"\n")
        out, err = process.communicate(timeout=timeout)
    finally:
        os.close(main)
    run = Run(process.returncode, out.decode(), err.decode())
    assert "Traceback" not in run.text, run.text[-3000:]
    return run
