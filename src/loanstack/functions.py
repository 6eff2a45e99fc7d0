"""The one loader of the Lambda functions' code (lib/functions/<name>/index.py) as a module.

The functions import only the standard library and boto3, so the tool, the demo, the benchmarks
and the tests can load them the way Lambda loads `index`. The tool reads facts the functions
own (the batch contract of the validation function, the database name) from `contract`, loaded
once; tests and benchmarks that patch a module's globals take a `fresh` copy each time.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from types import ModuleType

from loanstack.template import ROOT

FUNCTIONS_DIR = ROOT / "lib" / "functions"
VALIDATION = "loan_validation"
ROTATION = "secret_rotation"


def fresh(name: str) -> ModuleType:
    """lib/functions/<name>/index.py as a new module object (its globals its own)."""
    path = FUNCTIONS_DIR / name / "index.py"
    spec = importlib.util.spec_from_file_location(f"lambda_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"no function code at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def contract(name: str) -> ModuleType:
    """The function's module, loaded once, for reading the names it defines (never patched)."""
    return fresh(name)
