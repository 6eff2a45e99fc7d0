"""Bad input never raises out of the validation handler (SPEC "Loan validation").

Hypothesis throws thousands of malformed applications at the handler: wrong types, missing
fields, NaN, huge numbers, unicode, nested junk, and whole events that are not applications.
Each must come back as a structured INVALID result that names the broken fields. A malformed
application never reaches AWS: the clients are replaced by ones that fail if touched.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.examples import examples
from tests.support.helpers import load_function

loans = load_function("loan_validation")

VALID = {
    "loanId": "L-1", "applicantId": "A-1", "loanType": "mortgage", "loanAmount": 300000, "termMonths": 360,
    "annualInterestRate": 6.5, "creditScore": 760, "annualIncome": 150000, "monthlyDebtPayments": 800,
    "collateralValue": 400000,
}  # fmt: skip

scalar = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=80)
junk = st.recursive(
    scalar,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=8,
)
bad_id = st.one_of(
    junk.filter(lambda v: not isinstance(v, str)),
    st.just(""),
    st.text(min_size=65, max_size=90, alphabet="ab"),
    st.text(min_size=1, max_size=20).filter(lambda s: not loans.ID.fullmatch(s)),
)
bad_number = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=10),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(math.nan),
    st.just(math.inf),
    st.just(-math.inf),
    st.floats(min_value=1e11, allow_infinity=False),
    st.floats(max_value=-1e-9, allow_infinity=False),
    st.integers(min_value=10**12),
)
BAD = {
    "loanId": bad_id,
    "applicantId": bad_id,
    "loanType": junk.filter(lambda v: v not in loans.LOAN_TYPES),
    **{field: bad_number for field in loans.NUMBERS},
}


@st.composite
def malformed(draw: st.DrawFn) -> tuple[dict[str, Any], set[str]]:
    """A valid mortgage application with 1-4 fields broken or removed, and the broken fields."""
    fields = draw(st.lists(st.sampled_from(sorted(BAD)), min_size=1, max_size=4, unique=True))
    app = dict(VALID)
    for field in fields:
        if draw(st.booleans()):
            del app[field]
        else:
            app[field] = draw(BAD[field])
    extra = draw(
        st.dictionaries(st.text(max_size=8).filter(lambda k: k not in VALID), junk, max_size=3)
    )
    broken = set(fields)
    if "loanType" in broken and app.get("collateralValue") is None:
        broken.discard("collateralValue")  # required only for a (readable) secured loan type
    return {**app, **extra}, broken


class Untouchable:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"malformed input reached AWS ({name})")


@pytest.fixture(autouse=True)
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loans, "rds_data_client", Untouchable)
    monkeypatch.setattr(loans, "s3_client", Untouchable)
    monkeypatch.setenv("DOCUMENTS_BUCKET", "s3-loandocuments-test")


def assert_structured_invalid(result: dict[str, Any]) -> list[dict[str, str]]:
    assert result["decision"] == "INVALID"
    errors = result["errors"]
    assert errors and all(
        isinstance(e["field"], str) and isinstance(e["message"], str) and e["message"]
        for e in errors
    )
    return list(errors)


# 600 (thorough 2,000): each example breaks 1-4 of the 10 fields, so each field is broken
# ~150 times, each of its ways (11 bad numbers, 4 bad ids, junk types) ~15 times or more.
@settings(
    max_examples=examples(600, thorough=2000),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(malformed())
def test_malformed_application_names_each_broken_field(
    case: tuple[dict[str, Any], set[str]],
) -> None:
    app, broken = case
    errors = assert_structured_invalid(loans.handler(app, None))
    assert broken <= {e["field"] for e in errors}


# 100 (thorough 300): what is new here is the list (order, count, summary), not the items,
# which the test above covers; 100 lists of 0-5 items give every length many times.
@settings(max_examples=examples(100, thorough=300), deadline=None)
@given(st.lists(st.tuples(malformed(), st.booleans()), max_size=5))
def test_malformed_items_in_a_list_are_reported_in_order(cases: list[Any]) -> None:
    apps = [case[0] for case, _ in cases]
    out = loans.handler(apps, None)
    assert len(out["results"]) == len(apps)
    for result in out["results"]:
        assert_structured_invalid(result)
    assert out["summary"] == ({"INVALID": len(apps)} if apps else {})


# `scalar` is exactly what `junk` gives that is no list or dict (its leaves), drawn directly:
# filtering `junk` drew ~7 containers for each kept event (2.9 s of CPU for the 300, now 0.5).
@settings(max_examples=300, deadline=None)
@given(scalar)
def test_an_event_that_is_no_application_is_an_error_not_a_crash(event: Any) -> None:
    assert_structured_invalid(loans.handler(event, None))
