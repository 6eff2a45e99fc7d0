"""Where a finding is: its JSON pointer (RFC 6901) in the template, and the line that pointer
starts on, so the table, `--output json` and SARIF send a reader to the exact place.

cfn-lint's decoder keeps each node's position (the same one its own matches report), so the
line comes from one parse of the file as written, cached per file version.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from loanstack.template import TEMPLATE_PATH


@cache
def _decoded(path: str, mtime_ns: int) -> Any:
    # imported here: cfn-lint costs every `loanstack` command ~1.2 s of CPU at start-up
    # (cfnlint_data._package_dir); only `check` reaches this
    from cfnlint.decode.decode import decode

    tree, _ = decode(path)
    return tree


def unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


def line_of(pointer: str, path: Path = TEMPLATE_PATH) -> int | None:
    """1-based line where the pointed-to key (or list item) is written; None when the pointer
    is empty or does not resolve in the file (a finding about the whole template)."""
    if not pointer:
        return None
    node = _decoded(str(path), path.stat().st_mtime_ns)
    line: int | None = None
    for part in (unescape(p) for p in pointer.lstrip("/").split("/")):
        if isinstance(node, dict):
            key = next((k for k in node if k == part), None)
            if key is None:
                return line
            mark = getattr(key, "start_mark", None)
            node = node[key]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
            mark = getattr(node, "start_mark", None)
        else:
            return line
        line = mark.line + 1 if mark is not None else line
    return line


def pointer_of(path: list[Any]) -> str:
    """A cfn-lint match path (['Resources', 'X', 'Properties', ...]) as a JSON pointer."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)
