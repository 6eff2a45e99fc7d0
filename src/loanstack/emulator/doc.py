"""The tables of docs/emulator.md, generated from the code that defines the emulator.

What the emulator changes in moto is one list (`patches.PATCHES`: target, replacement, why) and
what it models itself is one registry (`base.EXTENSIONS`). The page shows both; generating it
from them keeps the page from restating the code by hand, and a test fails when it is stale
(`python -m loanstack.emulator.doc --write` rewrites it).
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from moto.cloudformation import parsing

from loanstack.emulator import base, fence, patches
from loanstack.template import ROOT

PAGE = ROOT / "docs" / "emulator.md"
START = "<!-- extensions:start (python -m loanstack.emulator.doc --write) -->"
END = "<!-- extensions:end -->"
PACKAGE = "loanstack.emulator."


def _cell(text: str) -> str:
    """A Markdown table cell: pipes escaped, whitespace on one line."""
    return " ".join(text.split()).replace("|", "\\|")


def _module(replacement: Any) -> str:
    """The emulator module a replacement lives in (moto's own dispatcher for added routes)."""
    func = replacement
    if isinstance(func, property):
        func = func.fget
    if isinstance(func, classmethod):
        func = func.__func__
    name = getattr(func, "__module__", "") or ""
    if name.startswith(PACKAGE):
        return f"`{name.removeprefix(PACKAGE)}.py`"
    return "moto's own handler, newly routed"


def _summary(cls: type[Any]) -> str:
    """The first sentence of an extension's docstring, or nothing when it has none of its own."""
    doc = cls.__dict__.get("__doc__") or ""
    first = inspect.cleandoc(doc).split("\n\n", 1)[0]
    return first.split(". ", 1)[0].rstrip(".") + "." if first else ""


def patch_table() -> list[str]:
    rows = ["| moto target | replaced from | why |", "| --- | --- | --- |"]
    for patch in patches.PATCHES:
        rows.append(
            f"| `{_cell(patch.target)}` | {_module(patch.replacement)} | {_cell(patch.why)} |"
        )
    return rows


def moto_types() -> set[str]:
    """The resource types plain moto models (its own list, whether or not the fence is up)."""
    models = fence.moto_attribute(parsing, "get_model_list")()
    return {model.cloudformation_type() for model in models}


def extension_table() -> list[str]:
    rows = ["| resource type | module | moto's own model | note |", "| --- | --- | --- | --- |"]
    in_moto = moto_types()
    for ext in sorted(base.EXTENSIONS, key=lambda e: e.TYPE):
        moto = "replaced" if ext.TYPE in in_moto else "none"
        rows.append(f"| `{ext.TYPE}` | {_module(ext)} | {moto} | {_cell(_summary(ext))} |")
    return rows


def block() -> str:
    """The generated part of the page, markers included."""
    lines = [
        START,
        "",
        f"**Patches to moto** ({len(patches.PATCHES)}, from `patches.PATCHES`, in order):",
        "",
        *patch_table(),
        "",
        f"**Resource types the emulator models itself** ({len(base.EXTENSIONS)}, from "
        "`base.EXTENSIONS`; moto's model list is patched to use them):",
        "",
        *extension_table(),
        "",
        END,
    ]
    return "\n".join(lines)


def current_block(text: str) -> str | None:
    match = re.search(re.escape(START) + r".*?" + re.escape(END), text, flags=re.DOTALL)
    return match.group(0) if match else None


def write(page: Path = PAGE) -> bool:
    """Replace the page's generated block; True when it changed."""
    text = page.read_text(encoding="utf-8")
    old = current_block(text)
    if old is None:
        raise ValueError(f"{page.name} has no {START} ... {END} block")
    new = block()
    if old == new:
        return False
    page.write_text(text.replace(old, new), encoding="utf-8")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loanstack.emulator.doc",
        description="Check (default) or rewrite the generated tables of docs/emulator.md.",
    )
    parser.add_argument("--write", action="store_true", help="rewrite the block in place")
    args = parser.parse_args(argv)
    try:
        if args.write:
            changed = write()
            print(f"{PAGE.name}: " + ("updated" if changed else "already current"))
            return 0
        current = current_block(PAGE.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"loanstack.emulator.doc: error: {exc}", file=sys.stderr)
        return 1
    if current != block():
        print(f"{PAGE.name} is stale: run python -m loanstack.emulator.doc --write")
        return 1
    print(f"{PAGE.name}: current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
