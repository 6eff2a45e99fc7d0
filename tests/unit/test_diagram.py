"""The README's architecture diagram is generated from the template and kept current."""

from __future__ import annotations

from typing import Any

from loanstack import diagram


def test_readme_diagram_is_current(pristine: dict[str, Any]) -> None:
    text = diagram.README.read_text(encoding="utf-8")
    assert diagram.current_block(text) == diagram.readme_block(pristine), (
        "run: loanstack diagram --write"
    )


def test_diagram_follows_the_template(doc: dict[str, Any]) -> None:
    assert "LoanValidationFunction --> DBCluster" in diagram.mermaid(doc)
    assert "<i>prod only</i>" in diagram.mermaid(doc).split("DBInstance2[")[1].split("\n")[0]
    doc["Resources"]["ExtraQueue"] = {
        "Type": "AWS::SQS::Queue",
        "Properties": {"KmsMasterKeyId": {"Ref": "KMSKey"}},
    }
    doc["Resources"]["LoanValidationFunction"]["DependsOn"].append("ExtraQueue")
    changed = diagram.mermaid(doc)
    assert (
        'ExtraQueue["ExtraQueue' in changed and "LoanValidationFunction --> ExtraQueue" in changed
    )
