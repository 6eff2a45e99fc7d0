"""verify's control totals: the bulk loop (integer cents, one modulo) gives exactly what the
documented definition gives, one loan at a time in Decimal, whatever the amounts look like."""

from __future__ import annotations

import hashlib
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from loanstack.ops.verify_report import HASH_TOTAL_MODULUS, Totals

IDS = st.text(alphabet="ABCabc019-_", min_size=1, max_size=64)
TWO_PLACES = st.decimals(min_value=-(10**12), max_value=10**12, places=2).map(str)
OTHER = st.sampled_from(["1", "1.5", "-0.001", "2E+3", "0", "-0.00", "12.345"])
LOANS = st.lists(st.tuples(IDS, st.one_of(TWO_PLACES, OTHER)), max_size=40)


def definition(loans: list[tuple[str, str]]) -> dict[str, object]:
    """The Totals docstring's definition, written out one loan at a time."""
    amount = sum((Decimal(a) for _, a in loans), Decimal("0.00"))
    ids = sum(int(hashlib.sha256(i.encode()).hexdigest(), 16) for i, _ in loans)
    return {
        "rows": len(loans),
        "loanAmount": str(amount.quantize(Decimal("0.01"))),
        "loanIdHashTotal": f"{ids % HASH_TOTAL_MODULUS:064x}",
    }


@settings(deadline=None)
@given(LOANS, st.integers(min_value=0, max_value=40))
def test_the_bulk_totals_are_the_definitions(loans: list[tuple[str, str]], cut: int) -> None:
    bulk, single = Totals(), Totals()
    bulk.add_all(loans[:cut])
    bulk.add_all(loans[cut:])  # two calls: the running sums carry over
    for loan_id, amount in loans:
        single.add(loan_id, amount)
    assert bulk.as_dict() == single.as_dict() == definition(loans)
