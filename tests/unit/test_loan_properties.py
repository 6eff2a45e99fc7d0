"""Issue 12: the rules over the whole input space, against an independent reference.

The reference below re-states the schema and rules of docs/validation.md with exact rational arithmetic
(`fractions.Fraction`), not the function's `decimal` code: any JSON value in any field, huge and
tiny numbers, any unicode. The function must never raise, and must decide exactly as the
reference does, to the cent and to the basis point.
"""

from __future__ import annotations

import json
import math
import re
import tracemalloc
from fractions import Fraction
from hashlib import sha256
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.helpers import load_function

loans = load_function("loan_validation")

BOUNDS = {  # docs/validation.md's schema: (integer?, minimum, maximum), inclusive
    "loanAmount": (False, Fraction("0.01"), Fraction(10**9)),
    "termMonths": (True, 1, 480),
    "annualInterestRate": (False, 0, 100),
    "creditScore": (True, 300, 850),
    "annualIncome": (False, Fraction("0.01"), Fraction(10**10)),
    "monthlyDebtPayments": (False, 0, Fraction(10**9)),
    "collateralValue": (False, Fraction("0.01"), Fraction(10**10)),
}
TERMS = {"personal": {12, 24, 36, 48, 60}, "auto": {24, 36, 48, 60, 72, 84},
         "mortgage": {120, 180, 240, 300, 360}, "business": {12, 24, 36, 48, 60, 84, 120}}  # fmt: skip
MAX_AMOUNT = {"personal": 50000, "auto": 150000, "mortgage": 2000000, "business": 500000}


def readable(value: Any, integer: bool, low: Fraction, high: Fraction) -> Fraction | None:
    if type(value) not in (int, float) or (type(value) is float and not math.isfinite(value)):
        return None
    exact = Fraction(repr(value)) if type(value) is float else Fraction(value)
    if integer and exact.denominator != 1:
        return None
    return exact if low <= exact <= high else None


def half_up(value: Fraction, places: int) -> Fraction:
    scale = 10**places
    return Fraction(math.floor(value * scale + Fraction(1, 2)), scale)


def reference(app: Any) -> tuple[str, dict[str, float | None] | None, list[str]]:
    """(decision, metrics, reasons): the contract of docs/validation.md in exact arithmetic."""
    if not isinstance(app, dict):
        return "INVALID", None, []
    ok = all(
        isinstance(app.get(f), str) and loans.ID.fullmatch(app[f]) is not None
        for f in ("loanId", "applicantId")
    ) and app.get("loanType") in list(TERMS)
    secured = app.get("loanType") in ["mortgage", "auto"]
    values = {}
    for field, bounds in BOUNDS.items():
        if app.get(field) is None and field == "collateralValue" and not secured:
            continue
        values[field] = readable(app.get(field), *bounds)
        ok = ok and values[field] is not None
    if not ok:
        return "INVALID", None, []
    amount, months = values["loanAmount"], int(values["termMonths"])
    r = values["annualInterestRate"] / 1200
    growth = (1 + r) ** months
    payment = half_up(amount / months if r == 0 else amount * r * growth / (growth - 1), 2)
    dti = half_up((values["monthlyDebtPayments"] + payment) * 12 / values["annualIncome"], 4)
    ltv = half_up(amount / values["collateralValue"], 4) if secured else None
    kind, score = app["loanType"], values["creditScore"]
    reject = [code for code, hit in [
        ("AMOUNT_BELOW_MINIMUM", amount < 1000), ("AMOUNT_ABOVE_LIMIT", amount > MAX_AMOUNT[kind]),
        ("TERM_NOT_ALLOWED", months not in TERMS[kind]), ("CREDIT_SCORE_BELOW_MINIMUM", score < 580),
        ("DTI_ABOVE_MAXIMUM", dti > Fraction("0.43")),
        ("LTV_ABOVE_MAXIMUM", ltv is not None and ltv > Fraction("0.95")),
    ] if hit]  # fmt: skip
    review = [code for code, hit in [
        ("CREDIT_SCORE_REVIEW_BAND", 580 <= score < 660),
        ("DTI_REVIEW_BAND", Fraction("0.36") < dti <= Fraction("0.43")),
        ("LTV_REVIEW_BAND", ltv is not None and Fraction("0.80") < ltv <= Fraction("0.95")),
    ] if hit]  # fmt: skip
    decision = "REJECTED" if reject else "MANUAL_REVIEW" if review else "APPROVED"
    metrics = {"monthlyPayment": float(payment), "debtToIncomeRatio": float(dti),
               "loanToValueRatio": None if ltv is None else float(ltv)}  # fmt: skip
    return decision, metrics, reject + review


json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)


def number_for(field: str) -> st.SearchStrategy[Any]:
    integer, low, high = BOUNDS[field]
    if integer:
        inside: st.SearchStrategy[Any] = st.integers(int(low), int(high))
    else:
        inside = st.floats(float(low), float(high)) | st.integers(math.ceil(low), int(high))
    return st.one_of(
        inside,
        inside,
        st.floats(0, 1e-290),  # tiny, subnormal included
        st.integers(-(10**500), 10**500),  # huge
        st.sampled_from([low, high]).map(float),
        json_value,
    )


applications = st.fixed_dictionaries(
    {
        "loanId": st.from_regex(loans.ID, fullmatch=True) | json_value,
        "applicantId": st.from_regex(loans.ID, fullmatch=True) | json_value,
        "loanType": st.sampled_from(sorted(TERMS)) | json_value,
        **{field: number_for(field) for field in BOUNDS},
    },
    optional={"notes": st.text(), "extra": json_value},
)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(applications, json_value))
@example({"loanId": "L-1", "applicantId": "A", "loanType": "mortgage", "loanAmount": 1572716.83,
          "termMonths": 360, "annualInterestRate": 6.5, "creditScore": 760, "annualIncome": 1e9,
          "monthlyDebtPayments": 0, "collateralValue": 1655491.40})  # fmt: skip
def test_the_rules_never_raise_and_match_the_reference(app: Any) -> None:
    _, result = loans.evaluate(app, loans.thresholds())
    decision, metrics, reasons = reference(app)
    assert result["decision"] == decision
    text = json.dumps(result, allow_nan=False)
    if decision != "INVALID":
        assert (result["metrics"], result["reasons"]) == (metrics, reasons)
        assert len(text) <= loans.RESULT_MAX_CHARS


@pytest.mark.parametrize(
    ("amount", "collateral", "income", "debts", "expected"),
    [
        (1572716.83, 1655491.40, 1e9, 0, ("MANUAL_REVIEW", ["LTV_REVIEW_BAND"], 0.95)),
        (
            12000,
            1e9,
            10140,
            263.35,
            ("MANUAL_REVIEW", ["DTI_REVIEW_BAND"], 0.43),
        ),  # (263.35+100)/845
    ],
)
def test_exactly_at_a_maximum_is_not_above_it(
    amount: float, collateral: float, income: float, debts: float, expected: tuple[Any, ...]
) -> None:
    app = {"loanId": "L-1", "applicantId": "A-1", "loanType": "mortgage", "loanAmount": amount,
           "termMonths": 120, "annualInterestRate": 0, "creditScore": 760, "annualIncome": income,
           "monthlyDebtPayments": debts, "collateralValue": collateral}  # fmt: skip
    result = loans.evaluate(app, loans.thresholds())[1]
    decision, reasons, metric = expected
    assert (result["decision"], result["reasons"]) == (decision, reasons)
    assert metric in (result["metrics"]["loanToValueRatio"], result["metrics"]["debtToIncomeRatio"])


@settings(max_examples=2000, deadline=None)
@given(
    st.integers(1000, 2_000_000).map(lambda c: c / 100) | st.integers(10, 10**6),
    st.floats(0, 30) | st.floats(0, 1e-9) | st.sampled_from([0.06, 6.5, 7.25, 1e-17]),
    st.integers(1, 480),
)
@example(5334, 1.0, 1)  # 5,338.445 exactly: hypothesis found it rounded to .44
def test_payments_match_an_exact_reference_to_the_cent(amount: float, rate: float, n: int) -> None:
    r = Fraction(repr(rate)) / 1200
    exact = Fraction(repr(amount)) / n if r == 0 else None
    if exact is None:
        growth = (1 + r) ** n
        exact = Fraction(repr(amount)) * r * growth / (growth - 1)
    mine = loans.payment_in_cents(loans.exact(amount), loans.exact(rate), n)
    assert Fraction(mine) == half_up(exact, 2)


class Stream:
    """A body that produces a file on the fly, so only the reader's memory is measured."""

    def __init__(self, parts: list[tuple[bytes, int]]) -> None:
        self.parts = [p for part, times in parts for p in [part] * times]

    def read(self, size: int) -> bytes:
        return self.parts.pop(0) if self.parts else b""


def test_a_40_mb_line_is_read_in_bounded_memory_and_reading_goes_on() -> None:
    block = b"x" * (1 << 16)
    body = Stream([(b'{"a": 1}\n', 1), (block, 640), (b"\n{}\n", 1)])  # 40 MiB without newline
    tracemalloc.start()
    lines = list(loans.physical_lines(body, loans.MAX_LINE_BYTES))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert lines == [b'{"a": 1}', None, b"{}"]
    assert peak < 4 * loans.MAX_LINE_BYTES  # was the whole line, re-joined on every read


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.binary(max_size=40) | st.sampled_from([b"\n", b"\r", b"\r\n"]), max_size=30),
    st.integers(1, 50),
)
def test_lines_split_the_same_whatever_the_read_size(pieces: list[bytes], size: int) -> None:
    """Lines end at \\r\\n, \\n or a lone \\r, even when a read cuts a \\r\\n in two."""
    data = b"".join(pieces)

    class Body:
        offset = 0

        def read(self, n: int) -> bytes:
            chunk = data[self.offset : self.offset + n]
            self.offset += n
            return chunk

    expected = re.split(rb"\r\n|\r|\n", data)
    if expected[-1] == b"":
        expected.pop()
    limit = 30
    got = list(loans.physical_lines(Body(), limit, chunk_size=size))
    assert got == [line if len(line) <= limit else None for line in expected]


@settings(max_examples=1000, deadline=None)
@given(applications)
def test_hand_written_encodings_equal_json_dumps(app: dict[str, Any]) -> None:
    """The per-row encodings are written out for speed; they must stay byte-for-byte json.dumps."""
    clean, result = loans.evaluate(app, loans.thresholds())
    if clean is None:
        return
    assert (
        loans.fingerprint(clean) == sha256(json.dumps(clean, sort_keys=True).encode()).hexdigest()
    )
    entry = loans.Entry(clean, result)
    row = json.loads(entry.text)
    assert row[0] == clean["loanId"] and row[9] == loans.fingerprint(clean)
    assert row[4:9] == [result["decision"], ",".join(result["reasons"]),
                        *(repr(v) if v is not None else "" for v in (
                            result["metrics"]["monthlyPayment"], result["metrics"]["debtToIncomeRatio"],
                            result["metrics"]["loanToValueRatio"]))]  # fmt: skip
    assert entry.request_bytes == len(json.dumps(entry.text)) - 1


@pytest.mark.parametrize(
    ("amount", "rate", "months", "cents"),
    [
        ("5334", "1.0", 1, "5338.45"),  # 5,338.445 exactly: found by hypothesis, was .44
        ("1200", "1", 1, "1201.00"),
        ("0.01", "0", 3, "0.00"),  # 0.00333… rounds down
    ],
)
def test_payment_half_cent_ties_round_up_exactly(
    amount: str, rate: str, months: int, cents: str
) -> None:
    from decimal import Decimal

    got = loans.payment_in_cents(Decimal(amount), Decimal(rate), months)
    assert got == Decimal(cents)
    r = Fraction(rate) / 1200
    growth = (1 + r) ** months
    exact = Fraction(amount) / months if r == 0 else Fraction(amount) * r * growth / (growth - 1)
    assert Fraction(got) == half_up(exact, 2)


# The fast paths of the batch path (docs/benchmarks.md): each must give what the exact path
# beside it gives, wherever it answers at all.

# applications whose payment is exactly, or very nearly, a half cent
near_ties = st.builds(
    lambda cents, months, extra: {
        "loanId": "L-1",
        "applicantId": "A-1",
        "loanType": "mortgage",
        "loanAmount": (2 * cents + 1) * months / 200 + extra,
        "termMonths": months,
        "annualInterestRate": 0.0,
        "creditScore": 700,
        "annualIncome": 1e5,
        "monthlyDebtPayments": 0.0,
        "collateralValue": 1e6,
    },
    st.integers(0, 10**6),
    st.integers(1, 480),
    st.sampled_from([0.0, 1e-9, -1e-9, 1e-12, 5e-324]),
)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(applications, json_value, near_ties))
def test_the_quick_check_and_the_quick_measures_equal_the_exact_paths(app: Any) -> None:
    quick = loans.clean_or_none(app)
    clean, _ = loans.examine(app)
    if quick is not None:
        assert clean is not None
        assert [(k, type(v), v) for k, v in quick.items()] == [
            (k, type(v), v) for k, v in clean.items()
        ]
    if clean is None:
        return
    measured = loans.quick_measures(clean)
    if measured is not None:
        assert measured == loans.exact_measures(clean, loans.exact(clean["loanAmount"]))


@pytest.mark.parametrize("amount", [5334.0, 0.01])
def test_a_payment_on_a_half_cent_tie_goes_the_exact_way(amount: float) -> None:
    app = {"loanAmount": amount, "annualInterestRate": 1.0 if amount > 1 else 0.0,
           "termMonths": 1 if amount > 1 else 2, "monthlyDebtPayments": 0.0,
           "annualIncome": 1e5, "loanType": "personal"}  # fmt: skip
    assert loans.quick_measures(app) is None  # 5,338.445 and 0.5 cents exactly


@settings(max_examples=3000, deadline=None)
@given(
    st.floats(0, 1e12)
    | st.integers(0, 10**11).map(lambda c: c / 100)
    | st.floats(-1e20, 1e20)  # Decimal's precision of 28 digits holds to_cents up to ~1e25
)
def test_amounts_in_cents_are_formatted_as_decimal_formats_them(value: float) -> None:
    assert loans.cents_text(value) == str(loans.to_cents(loans.exact(value)))


@settings(max_examples=3000, deadline=None)
@given(
    st.lists(
        st.text(max_size=4) | st.sampled_from([",", '"', "\r", "\n", "\x00", " ", '""', "\ufeff"]),
        max_size=12,
    ).map("".join)
)
def test_a_line_splits_into_the_cells_the_csv_module_reads(line: str) -> None:
    quick, read = loans.csv_cells(line), loans.csv_cells_read(line)
    if isinstance(read, loans.Unreadable):
        assert isinstance(quick, loans.Unreadable) and quick.message == read.message
    else:
        assert quick == read
