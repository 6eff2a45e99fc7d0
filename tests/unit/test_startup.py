"""Every `loanstack` command starts light: the CLI imports neither cfn-lint (with sympy and
networkx, ~1.2 s of CPU) nor moto nor the emulator until a command needs them. The subprocess
tier starts the entry point ~80 times per run (docs/testing.md, "Keeping it fast")."""

from __future__ import annotations

import os
import subprocess
import sys

from loanstack.template import ROOT

HEAVY = ("cfnlint", "sympy", "networkx", "moto", "loanstack.emulator")


def test_the_cli_imports_nothing_heavy_at_start_up() -> None:
    probe = (
        f"import sys, loanstack.cli.main; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
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
    assert done.stdout.split() == [], f"imported at start-up: {done.stdout.strip()}"
