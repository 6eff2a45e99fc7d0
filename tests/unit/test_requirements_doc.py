"""The requirements live in this repository (docs/requirements.md) and each one is judged."""

from __future__ import annotations

import re

from loanstack import template
from loanstack.compliance import rules

DOC = template.ROOT / "docs" / "requirements.md"
TESTS = template.ROOT / "tests"


def requirement_ids() -> list[str]:
    return re.findall(r'<a id="(R\d+b?)"></a>', DOC.read_text(encoding="utf-8"))


def test_the_requirements_document_holds_r1_to_r16_and_r1b() -> None:
    ids = requirement_ids()
    assert ids == ["R1", "R1b", *(f"R{n}" for n in range(2, 17))]


def test_every_requirement_has_a_check_or_a_test_naming_it() -> None:
    judged = {c.requirement for c in rules.CHECKS}
    tests = "\n".join(p.read_text(encoding="utf-8") for p in TESTS.rglob("test_*.py"))
    named = {m.upper().replace("B", "b") for m in re.findall(r"def test_(r\d+b?)_", tests)}
    unjudged = [r for r in requirement_ids() if r not in judged | named]
    assert not unjudged, f"no check or test names {unjudged}"


def test_checks_cite_requirements_that_exist_in_this_repository() -> None:
    text = DOC.read_text(encoding="utf-8")
    for c in rules.CHECKS:
        assert f'<a id="{c.requirement}"></a>' in text, c.id
        if not c.source.startswith("https://"):
            path, _, anchor = c.source.partition("#")
            assert path == "docs/requirements.md" and (template.ROOT / path).exists(), c.id
            assert f'<a id="{anchor}"></a>' in text, c.id
