"""The emulator behind its door (SPEC D4): the tool reaches the emulator only through
`loanstack.emulator.door`, imported lazily in one place, so deploying to AWS never imports moto,
and without the `loanstack[emulator]` extra the local target is one line, not a traceback.

Each case runs the command line in a fresh interpreter where importing moto or pymysql fails,
as it does when the extra is not installed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from loanstack.template import ROOT

WITHOUT_EXTRA = """
import importlib.abc, sys

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("moto", "pymysql"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
from loanstack.cli import main
code = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("moto", "pymysql"))
emulator = sorted(m for m in sys.modules if m.startswith("loanstack.emulator"))
print(f"exit={code} moto={loaded} emulator={emulator}")
"""


def clean_environment(**env: str) -> dict[str, str]:
    """This process's environment without AWS settings or an emulator to reach."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "LOANSTACK_EMULATOR"))
    }
    return environment | {"PYTHONPATH": str(ROOT / "src"), "AWS_DEFAULT_REGION": "us-east-1"} | env


def run_without_extra(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRA, *argv],
        capture_output=True,
        text=True,
        env=clean_environment(**env),
        cwd=ROOT,
        timeout=120,
    )


def test_deploying_to_aws_never_imports_moto_or_the_emulator() -> None:
    """The whole deploy path up to its first AWS call (DescribeStacks), with an endpoint that
    does not answer: the refusal is the tool's own line, and no emulator module was loaded."""
    done = run_without_extra(
        "deploy",
        "--env",
        "dev",
        "--suffix",
        "nomoto1",
        "--target",
        "aws",
        "--yes",
        AWS_ACCESS_KEY_ID="AKIDEXAMPLE",
        AWS_SECRET_ACCESS_KEY="example",
        AWS_ENDPOINT_URL="http://127.0.0.1:9",  # discard port: nothing answers
        AWS_MAX_ATTEMPTS="1",
    )
    assert "exit=1 moto=[] emulator=[]" in done.stdout, done.stdout + done.stderr
    assert "cannot reach AWS in us-east-1" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_local_target_without_the_emulator_extra_is_one_line() -> None:
    done = run_without_extra("destroy", "--suffix", "nomoto2", "--target", "local", "--yes")
    assert "exit=1 moto=[]" in done.stdout, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "loanstack: error: the local target needs the emulator (moto is not installed): "
        "pip install 'loanstack[emulator]'"
    ]


def test_the_emulator_command_without_the_extra_is_one_line() -> None:
    done = run_without_extra("emulator", "status")
    assert "exit=1 moto=[]" in done.stdout, done.stdout + done.stderr
    assert "pip install 'loanstack[emulator]'" in done.stderr
    assert "Traceback" not in done.stderr


WITH_EXTRA = """
import sys
from loanstack.cli import main
code = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("moto", "pymysql"))
print(f"exit={code} moto={loaded}")
"""


def test_emulator_start_on_a_taken_port_refuses_before_loading_moto(tmp_path: Path) -> None:
    """The server (moto: seconds of CPU to import) loaded before the port was found taken: the
    refusal now comes first, in one line, exit 1 (docs/emulator.md)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for detach in ([], ["--detach"]):
            command = ["emulator", "start", "--port", str(port), *detach]
            done = subprocess.run(
                [sys.executable, "-c", WITH_EXTRA, *command],
                capture_output=True,
                text=True,
                env=clean_environment(LOANSTACK_EMULATOR_STATE=str(tmp_path / "emulator.json")),
                cwd=ROOT,
                timeout=120,
            )
            assert "exit=1 moto=[]" in done.stdout, (command, done.stdout[:200], done.stderr)
            [line] = done.stderr.strip().splitlines()
            assert line.startswith(f"loanstack: error: port {port} is taken ("), line
            assert line.endswith("pick another with --port, or see `loanstack emulator status`")
