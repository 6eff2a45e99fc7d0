"""checkov's command line, run by checkov's own interpreter (field_tools.py), with its JSONPath
parser's table built once instead of once per expression.

checkov renders a CloudFormation template's references through bc_jsonpath_ng, whose parser
asks PLY for a new LALR table at every expression it parses (`write_tables=0`: "it doesn't
actually take that long"); for lib/TapStack.json that is 111 tables, 5-6 s of a 12-s run
(cProfile, 2026-11-30). The table depends only on the grammar (the parser's class and start
symbol) and its rules keep no state on the parser, so the first table built for a grammar is
handed to the later asks (per thread). Same verdicts: on the template and on a broken copy,
the reports equal a plain run's but for the order of `evaluated_keys`, a set, which differs
between plain runs too. Other users of PLY (none in a CloudFormation run) build theirs as
before. This file imports only what checkov's environment has (it is not the tool's venv).
"""

from __future__ import annotations

import sys
import threading
import warnings
from typing import Any


def remember_jsonpath_tables() -> None:
    import ply.yacc  # type: ignore[import-not-found,import-untyped,unused-ignore]
    from bc_jsonpath_ng.parser import (  # type: ignore[import-not-found,unused-ignore]
        JsonPathParser,
    )

    build = ply.yacc.yacc
    built: dict[tuple[object, ...], Any] = {}

    def yacc(*args: Any, **kwargs: Any) -> Any:
        grammar = kwargs.get("module")
        if args or not isinstance(grammar, JsonPathParser):
            return build(*args, **kwargs)
        key = (type(grammar), kwargs.get("start"), kwargs.get("debug"), threading.get_ident())
        if key not in built:
            built[key] = build(**kwargs)
        return built[key]

    ply.yacc.yacc = yacc


def main() -> int:
    remember_jsonpath_tables()
    from checkov.main import Checkov  # type: ignore[import-not-found,unused-ignore]

    sys.argv[0] = "checkov"
    with warnings.catch_warnings():  # as checkov's own entry script
        warnings.simplefilter("ignore", category=SyntaxWarning)
        return int(Checkov().run() or 0)


if __name__ == "__main__":
    raise SystemExit(main())
