"""Every `loanstack` command starts light: the CLI imports neither cfn-lint (with sympy and
networkx, ~1.2 s of CPU) nor moto nor the emulator until a command needs them, and its parser
(all that `--help` and a usage error run) not even boto3, rich or the judges: 0.06 s of CPU
against 0.38 s when every handler was imported first. The subprocess tier starts the entry point
~80 times per run (docs/testing.md, "Keeping it fast")."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from loanstack.cli import parser
from loanstack.ops import restore, rotate
from loanstack.template import ROOT

HEAVY = ("cfnlint", "sympy", "networkx", "moto", "loanstack.emulator")
# what only a command's handler needs (cli/main.py imports it when the command runs)
HANDLERS_ONLY = ("boto3", "botocore", "rich", "loanstack.compliance", "loanstack.stack")


def imported_by(statement: str, names: tuple[str, ...]) -> list[str]:
    """The names of `names` imported after `statement` (--help's text goes to stdout too: the
    answer is the last line, after a marker)."""
    probe = (
        f"import sys; {statement}; print('imported:', *(m for m in {names!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=os.environ.copy(),
        timeout=120,
        check=True,
    )
    return done.stdout.splitlines()[-1].split()[1:]


def test_the_cli_imports_nothing_heavy_at_start_up() -> None:
    found = imported_by("import loanstack.cli.main", HEAVY + HANDLERS_ONLY)
    assert found == [], f"imported at start-up: {found}"


def test_help_and_a_usage_error_import_no_handler() -> None:
    """argparse exits (0 for --help, 2 for a refusal) before any handler is imported."""
    for argv in (["--help"], ["deploy", "--env", "nope", "--suffix", "x"]):
        run = f"from loanstack.cli import main\ntry: main({argv!r})\nexcept SystemExit: pass"
        found = imported_by(f"exec({run!r})", HANDLERS_ONLY)
        assert found == [], f"{' '.join(argv)} imported {found}"


def test_the_parsers_copies_equal_their_sources() -> None:
    """The parser keeps its own copies of two facts whose modules import boto3 and rich."""
    assert parser.ROTATE_CHOICES == rotate.CHOICES
    assert restore.DEFAULT_TIMEOUT == parser.RESTORE_TIMEOUT


def test_every_command_of_the_parser_has_a_handler_that_imports(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The handlers are named as text (imported when their command runs): a name that does not
    resolve would fail only when a user runs that command."""
    import importlib

    main = importlib.import_module("loanstack.cli.main")  # the package's `main` is the function
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    usage = capsys.readouterr().out
    commands = set(re.search(r"\{([a-z,]+)\}", usage).group(1).split(","))  # type: ignore[union-attr]
    assert commands == set(main.HANDLERS)
    assert all(callable(main.handler(command)) for command in commands)
