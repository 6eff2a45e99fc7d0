"""verify computes a decision once per distinct set of the rules' inputs (verify_export.judge):
equivalent to deciding every line with the function's `evaluate` only if the rules read nothing
else, which these tests hold the function to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loanstack.ops import verify_export
from loanstack.testing import loanbook

FN = verify_export.validation()
LIMITS = FN.thresholds()


class Recording(dict[str, Any]):
    """An application that notes which fields are read."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)


NUMBERS = {
    "loanAmount": st.sampled_from([500.0, 25000.0, 25000.5, 180000.0, 2500000.0]),
    "annualInterestRate": st.sampled_from([0.0, -0.0, 5.5, 1e-30, 12.0]),
    "termMonths": st.sampled_from([1, 36, 60, 360]),
    "monthlyDebtPayments": st.sampled_from([0.0, -0.0, 450.0, 9000.0]),
    "annualIncome": st.sampled_from([12000.0, 85000.0, 85000.25]),
    "collateralValue": st.sampled_from([None, 30000.0, 300000.0]),
    "creditScore": st.sampled_from([500, 620, 700, 720]),
}
FIELDS = {
    "loanId": st.sampled_from(["L-1", "L-2", "x"]),
    "applicantId": st.sampled_from(["A-1", "B-2"]),
    "loanType": st.sampled_from([*FN.LOAN_TYPES, "yacht"]),
    **NUMBERS,
}
APPS = st.fixed_dictionaries(FIELDS).map(
    lambda app: {k: v for k, v in app.items() if v is not None}
)
# A product most lines of a book share: valid, so that lines differing in one field are decided.
PRODUCTS = st.fixed_dictionaries(
    {
        "loanId": st.just("L-1"),
        "applicantId": st.just("A-1"),
        "loanType": st.sampled_from(FN.LOAN_TYPES),
        "loanAmount": st.sampled_from([25000.0, 25000.5]),
        "annualInterestRate": st.sampled_from([0.0, 5.5]),
        "termMonths": st.just(60),
        "monthlyDebtPayments": st.sampled_from([0.0, 450.0]),
        "annualIncome": st.sampled_from([85000.0, 85000.25]),
        "collateralValue": st.sampled_from([30000.0, 300000.0]),
        "creditScore": st.sampled_from([620, 720]),
    }
)


@settings(deadline=None)
@given(APPS)
def test_the_rules_read_only_the_decision_fields_and_the_id_that_labels_the_result(
    app: dict[str, Any],
) -> None:
    clean, _errors = FN.validate(app)
    if clean is None:
        return
    recorded = Recording(clean)
    FN.decide(recorded, LIMITS)
    assert recorded.read <= {*verify_export.DECISION_FIELDS, "loanId"}
    relabelled = {**clean, "loanId": "other", "applicantId": "someone"}
    assert FN.decide(relabelled, LIMITS)["decision"] == FN.decide(clean, LIMITS)["decision"]


def evaluated(rows: list[tuple[int, Any]]) -> list[verify_export.Line]:
    """Every line decided by the function's `evaluate`, as verify did before the cache."""
    found: list[verify_export.Line] = []
    for number, raw in rows:
        clean, result = FN.evaluate(raw, LIMITS)
        if clean is None:
            why = "; ".join(f"{e['field']}: {e['message']}" for e in result["errors"])
            loan_id = raw.get("loanId")
            found.append((number, loan_id, None, "INVALID", why, None))
            continue
        amount = str(FN.to_cents(FN.exact(clean["loanAmount"])))
        found.append(
            (number, clean["loanId"], FN.fingerprint(clean), result["decision"], "", amount)
        )
    return found


@settings(max_examples=80, deadline=None)  # each example judges up to 30 lines
@given(
    st.lists(PRODUCTS, min_size=1, max_size=3),
    st.data(),
    st.sampled_from([1, 2, 4096]),
    st.sampled_from([1, 4, 512]),
)
def test_a_cached_decision_is_the_one_evaluate_gives(
    products: list[dict[str, Any]], data: st.DataObject, kept: int, probe: int
) -> None:
    """Lines made of a few products, each line changing at most one field of one: the cache is
    hit by lines whose other fields differ."""
    apps = []
    for _ in range(data.draw(st.integers(min_value=0, max_value=30))):
        app = dict(data.draw(st.sampled_from(products)))
        name = data.draw(st.sampled_from(list(FIELDS)))
        app[name] = data.draw(FIELDS[name])
        apps.append({k: v for k, v in app.items() if v is not None})
    rows = list(enumerate(apps, start=2))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(verify_export, "DECISIONS_KEPT", kept)  # the cache emptied as it fills
        patch.setattr(verify_export, "PROBE_LINES", probe)  # and given up after a few misses
        assert list(verify_export.judge(rows, LIMITS, Path("x.csv"))) == evaluated(rows)


def test_the_generated_loan_book_is_judged_as_evaluate_judges_it(tmp_path: Path) -> None:
    path = tmp_path / "book.csv"
    loanbook.write_export(path, 60, every=10)
    rows = [
        r
        for r in FN.rows_of("incoming/book.csv", FN.text_lines(path.open("rb")))
        if not isinstance(r[1], FN.Unreadable)
    ]
    assert list(verify_export.judge(rows, LIMITS, path)) == evaluated(rows)
