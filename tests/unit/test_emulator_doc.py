"""docs/emulator.md's tables are generated from the fence's patch list and the extension
registry, and kept current (like the README's diagram)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loanstack.emulator import base, doc, patches
from loanstack.emulator.fence import Patch


def test_emulator_page_tables_are_current() -> None:
    text = doc.PAGE.read_text(encoding="utf-8")
    assert doc.current_block(text) == doc.block(), "run: python -m loanstack.emulator.doc --write"


def test_every_patch_and_extension_has_a_row() -> None:
    rows = doc.block().splitlines()
    for patch in patches.PATCHES:
        assert any(f"`{doc._cell(patch.target)}`" in row for row in rows), patch.target
    for ext in base.EXTENSIONS:
        assert any(row.startswith(f"| `{ext.TYPE}` |") for row in rows), ext.TYPE


def test_a_new_patch_makes_the_page_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    before = doc.block()
    extra = Patch(Path, "home", staticmethod(doc.main), "a why with a | pipe", "()")
    monkeypatch.setattr(patches, "PATCHES", [*patches.PATCHES, extra])
    after = doc.block()
    assert after != before
    assert "| `pathlib.Path.home` | `doc.py` | a why with a \\| pipe |" in after


def test_write_replaces_only_the_block(tmp_path: Path) -> None:
    page = tmp_path / "emulator.md"
    page.write_text(f"intro\n\n{doc.START}\nstale\n{doc.END}\n\noutro\n", encoding="utf-8")
    assert doc.write(page) is True
    text = page.read_text(encoding="utf-8")
    assert text.startswith("intro\n\n") and text.endswith("\n\noutro\n")
    assert doc.current_block(text) == doc.block()
    assert doc.write(page) is False


def test_a_page_without_the_block_is_refused(tmp_path: Path) -> None:
    page = tmp_path / "emulator.md"
    page.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no <!-- extensions:start"):
        doc.write(page)
