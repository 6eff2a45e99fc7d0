"""The manifest's pieces that need no stack: the hash total, the outcome, the dispositions, and
`manifest_check.check` (what `verify --manifest` reports) on a reconciliation built by hand."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from loanstack.errors import DeployError, Interrupted, Terminated, UsageError
from loanstack.ops import manifest, manifest_check
from loanstack.ops.verify import Reconciliation, Totals


def test_the_hash_total_is_order_free_and_recomputable() -> None:
    ids = ["L-1", "L-2", "Ünïcode-3"]
    a, b = Totals(), Totals()
    for i in ids:
        a.add(i, "100.10")
    for i in reversed(ids):
        b.add(i, "100.10")
    expected = sum(int(hashlib.sha256(i.encode()).hexdigest(), 16) for i in ids) % 2**256
    assert (
        a.as_dict()
        == b.as_dict()
        == {
            "rows": 3,
            "loanAmount": "300.30",
            "loanIdHashTotal": f"{expected:064x}",
        }
    )
    b.add("L-4", "0.01")
    assert a.as_dict()["loanIdHashTotal"] != b.as_dict()["loanIdHashTotal"]


@pytest.mark.parametrize(
    ("error", "report", "outcome"),
    [
        (None, {"verify": {"reconciled": True}}, "succeeded"),
        (None, {}, "succeeded (not verified)"),
        (None, {"verify": {"reconciled": False}}, "not reconciled"),
        (None, {"failedChunks": [{"key": "k", "lines": "2-3"}]}, "failed"),
        (DeployError("timed out"), {}, "failed"),
        (Interrupted("interrupted"), {}, "interrupted"),
        (Terminated(), {}, "interrupted"),
    ],
)
def test_the_outcome_of_a_run(
    error: BaseException | None, report: dict[str, Any], outcome: str
) -> None:
    assert manifest.outcome(error, report) == outcome


def test_every_problem_decision_gets_a_disposition_and_the_rows_file() -> None:
    found = manifest.problems_by_reference(
        {
            "summary": {
                "APPROVED": 7,
                "MANUAL_REVIEW": 2,
                "REJECTED": 1,
                "INVALID": 2,
                "CONFLICT": 1,
            },
            "problemsFile": {"key": "reports/m/p.jsonl", "rows": 4, "bytes": 10, "sha256": "ab"},
        }
    )
    assert found is not None
    assert found["rows"] == 4 and found["file"] == {
        "key": "reports/m/p.jsonl",
        "bytes": 10,
        "sha256": "ab",
    }
    assert {d: v["disposition"] for d, v in found["byDecision"].items()} == {
        "CONFLICT": manifest.DISPOSITIONS["CONFLICT"],
        "INVALID": manifest.DISPOSITIONS["INVALID"],
        "REJECTED": manifest.DISPOSITIONS["REJECTED"],
    }
    assert found["byDecision"]["INVALID"]["rows"] == 2
    assert manifest.problems_by_reference({"summary": {"INVALID": 1}}) is None


def reconciliation(sha: str = "ab" * 32, size: int = 10, amount: str = "5.00") -> Reconciliation:
    result = Reconciliation("e.csv", sha256=sha, bytes=size, id_digest="cd" * 32)
    result.source.add("L-1", "5.00")
    result.recorded.add("L-1", amount)
    return result


def document(result: Reconciliation) -> dict[str, Any]:
    return {
        "manifestVersion": manifest.VERSION,
        "migration": f"{result.id_digest[:24]}-100",
        "export": {"sha256": result.sha256, "bytes": result.bytes},
        "controlTotals": {"source": result.source.as_dict(), "recorded": result.recorded.as_dict()},
    }


def test_check_agrees_with_what_it_recorded_and_names_each_difference() -> None:
    recorded = document(reconciliation())
    assert manifest_check.check(recorded, reconciliation()) == []
    found = manifest_check.check(recorded, reconciliation(sha="ef" * 32, size=11, amount="6.00"))
    assert [f.split(" ")[1] for f in found[:2]] == ["export's", "export"]
    assert any(f.startswith("recorded control totals") for f in found)
    assert any("does not reconcile" in f for f in found)  # the totals disagree now
    unverified = {**recorded, "controlTotals": None}
    assert manifest_check.check(unverified, reconciliation()) == [
        "the manifest has no control totals (the run was not verified)"
    ]


def test_a_file_that_is_not_a_manifest_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text('{"rows": 3}')
    with pytest.raises(UsageError, match="not a loanstack migration manifest"):
        manifest_check.read(path)
    path.write_text("not json")
    with pytest.raises(UsageError, match="not JSON"):
        manifest_check.read(path)
    with pytest.raises(UsageError, match="cannot read manifest"):
        manifest_check.read(tmp_path / "absent.json")
