"""The embedded emulator (SPEC D4): moto's server on loopback with the extensions the template
needs, and MariaDB behind the Data API. It is the `loanstack[emulator]` extra.

Importing this package is light: it holds the dummy credentials, the account and the error type
that the door (`door.py`, `control.py`) needs to reach an emulator that already runs, and it
imports no moto, pymysql or service module. `Emulator`, `install`, `uninstall`, `check_port` and
`modelled_types` live in `server.py` (which imports moto and registers every extension); they
are loaded from there on first use (PEP 562's module `__getattr__`), so
`from loanstack.emulator import Emulator` keeps working and pays for moto only then.
"""

from __future__ import annotations

import importlib
from typing import Any

from loanstack.template import EMULATOR_ACCOUNT_ID

ACCOUNT_ID = EMULATOR_ACCOUNT_ID  # moto answers this account for any credentials
CREDENTIALS = {"aws_access_key_id": "emulator", "aws_secret_access_key": "emulator"}
SERVER = "loanstack.emulator.server"  # the heavy half, imported on first use
IN_SERVER = ("Emulator", "check_port", "install", "modelled_types", "uninstall")

__all__ = ["ACCOUNT_ID", "CREDENTIALS", "EmulatorError", *IN_SERVER]


class EmulatorError(RuntimeError):
    pass


def __getattr__(name: str) -> Any:
    """`loanstack.emulator.Emulator` and the other names of `server.py`, imported when first
    asked for (https://peps.python.org/pep-0562/)."""
    if name in IN_SERVER:
        return getattr(importlib.import_module(SERVER), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
