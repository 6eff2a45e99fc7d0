"""Loan validation rules (SPEC "Loan validation"): schema, amortisation, thresholds, decisions.

Pure functions of the validation Lambda; no AWS. Thresholds are the documented defaults.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.support.helpers import load_function

loans = load_function("loan_validation")

BASE: dict[str, dict[str, Any]] = {
    "personal": {"loanAmount": 20000, "termMonths": 36, "annualInterestRate": 8, "creditScore": 720,
                 "annualIncome": 90000, "monthlyDebtPayments": 500},
    "auto": {"loanAmount": 30000, "termMonths": 60, "annualInterestRate": 6, "creditScore": 720,
             "annualIncome": 80000, "monthlyDebtPayments": 400, "collateralValue": 40000},
    "mortgage": {"loanAmount": 300000, "termMonths": 360, "annualInterestRate": 6.5, "creditScore": 760,
                 "annualIncome": 150000, "monthlyDebtPayments": 800, "collateralValue": 400000},
    "business": {"loanAmount": 100000, "termMonths": 60, "annualInterestRate": 9, "creditScore": 700,
                 "annualIncome": 250000, "monthlyDebtPayments": 2000},
}  # fmt: skip
LIMITS = {"personal": 50000, "auto": 150000, "mortgage": 2000000, "business": 500000}


def app(loan_type: str, **changes: Any) -> dict[str, Any]:
    return {
        "loanId": f"L-{loan_type}",
        "applicantId": "A-1",
        "loanType": loan_type,
        **BASE[loan_type],
        **changes,
    }


def decide(application: dict[str, Any]) -> dict[str, Any]:
    clean, result = loans.evaluate(application, loans.thresholds())
    assert clean is not None, result
    return dict(result)


@pytest.fixture(autouse=True)
def default_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "MIN_CREDIT_SCORE",
        "REVIEW_CREDIT_SCORE",
        "MAX_DTI",
        "REVIEW_DTI",
        "MAX_LTV",
        "REVIEW_LTV",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("loan_type", list(BASE))
def test_baseline_application_of_each_type_is_approved(loan_type: str) -> None:
    result = decide(app(loan_type))
    assert result["decision"] == "APPROVED" and result["reasons"] == []
    assert set(result) == {"loanId", "decision", "reasons", "metrics"}


@pytest.mark.parametrize(
    ("amount", "rate", "months", "payment"),
    [
        (200000, 6.5, 360, 1264.14),
        (20000, 8, 36, 626.73),
        (30000, 6, 60, 579.98),
        (12000, 0, 24, 500.00),
        (1000, 0, 7, 142.86),
        (100000, 9, 60, 2075.84),
    ],
)
def test_monthly_payment_is_standard_amortisation_to_the_cent(
    amount: float, rate: float, months: int, payment: float
) -> None:
    exact = loans.monthly_payment(Decimal(amount), Decimal(repr(rate)), months)
    assert loans.to_cents(exact) == Decimal(repr(payment))
    r = rate / 1200
    formula = (
        amount / months if r == 0 else amount * r * (1 + r) ** months / ((1 + r) ** months - 1)
    )
    assert abs(float(exact) - formula) < 1e-6


def test_metrics_are_cents_and_fractions() -> None:
    metrics = decide(app("mortgage"))["metrics"]
    assert metrics["monthlyPayment"] == 1896.2
    assert metrics["debtToIncomeRatio"] == round((800 + 1896.2034) / 12500, 4)
    assert metrics["loanToValueRatio"] == 0.75
    assert decide(app("personal"))["metrics"]["loanToValueRatio"] is None


@pytest.mark.parametrize("loan_type", list(BASE))
@pytest.mark.parametrize(
    ("score", "decision", "reason"),
    [
        (579, "REJECTED", "CREDIT_SCORE_BELOW_MINIMUM"),
        (580, "MANUAL_REVIEW", "CREDIT_SCORE_REVIEW_BAND"),
        (659, "MANUAL_REVIEW", "CREDIT_SCORE_REVIEW_BAND"),
        (660, "APPROVED", None),
    ],
)
def test_credit_score_floor_and_review_band(
    loan_type: str, score: int, decision: str, reason: str | None
) -> None:
    result = decide(app(loan_type, creditScore=score))
    assert result["decision"] == decision
    assert result["reasons"] == ([reason] if reason else [])


def rich(loan_type: str, **changes: Any) -> dict[str, Any]:
    """An applicant whose income and collateral keep DTI and LTV out of the way."""
    extra = {"collateralValue": 1e9} if loan_type in loans.SECURED else {}
    return app(loan_type, annualIncome=1e9, **extra, **changes)


@pytest.mark.parametrize("loan_type", list(BASE))
def test_amount_limits_per_loan_type(loan_type: str) -> None:
    limit = LIMITS[loan_type]
    assert decide(rich(loan_type, loanAmount=limit))["decision"] == "APPROVED"
    above = decide(rich(loan_type, loanAmount=limit + 0.01))
    assert above["decision"] == "REJECTED" and above["reasons"] == ["AMOUNT_ABOVE_LIMIT"]
    assert decide(rich(loan_type, loanAmount=1000))["decision"] == "APPROVED"
    below = decide(rich(loan_type, loanAmount=999.99))
    assert below["reasons"] == ["AMOUNT_BELOW_MINIMUM"]


@pytest.mark.parametrize(
    ("loan_type", "allowed", "refused"),
    [("personal", 36, 37), ("auto", 72, 96), ("mortgage", 360, 365), ("business", 120, 180)],
)
def test_allowed_terms_per_loan_type(loan_type: str, allowed: int, refused: int) -> None:
    assert decide(rich(loan_type, termMonths=allowed))["decision"] == "APPROVED"
    result = decide(rich(loan_type, termMonths=refused))
    assert result["decision"] == "REJECTED" and result["reasons"] == ["TERM_NOT_ALLOWED"]


@pytest.mark.parametrize("loan_type", list(BASE))
@pytest.mark.parametrize(
    ("debts", "decision", "reasons"),
    [
        (3100, "APPROVED", []),  # DTI exactly 0.36 is still approved
        (3101, "MANUAL_REVIEW", ["DTI_REVIEW_BAND"]),
        (3800, "MANUAL_REVIEW", ["DTI_REVIEW_BAND"]),  # exactly 0.43: review, not rejection
        (3801, "REJECTED", ["DTI_ABOVE_MAXIMUM"]),
    ],
)
def test_debt_to_income_includes_the_new_payment(
    loan_type: str, debts: float, decision: str, reasons: list[str]
) -> None:
    # 12,000 at 0% over 24 months is exactly 500 a month; income 120,000 is 10,000 a month
    changes = {
        "loanAmount": 12000,
        "annualInterestRate": 0,
        "termMonths": 24,
        "annualIncome": 120000,
    }
    extra = {"collateralValue": 1e9} if loan_type in loans.SECURED else {}
    if loan_type in ("mortgage",):
        changes["termMonths"] = 120  # 12,000 over 120 months = 100 a month
        debts += 400
    result = decide(app(loan_type, **changes, **extra, monthlyDebtPayments=debts))
    assert (result["decision"], result["reasons"]) == (decision, reasons)


@pytest.mark.parametrize("loan_type", ["mortgage", "auto"])
@pytest.mark.parametrize(
    ("amount", "decision", "reasons"),
    [
        (80000, "APPROVED", []),  # LTV exactly 0.80
        (80004, "APPROVED", []),  # 0.80004 is reported as 0.8 and compared as reported
        (80005, "MANUAL_REVIEW", ["LTV_REVIEW_BAND"]),  # 0.8001
        (95000, "MANUAL_REVIEW", ["LTV_REVIEW_BAND"]),  # exactly 0.95
        (95005, "REJECTED", ["LTV_ABOVE_MAXIMUM"]),  # 0.9501
    ],
)
def test_loan_to_value_for_secured_loans(
    loan_type: str, amount: float, decision: str, reasons: list[str]
) -> None:
    result = decide(app(loan_type, loanAmount=amount, collateralValue=100000, annualIncome=1e9))
    assert (result["decision"], result["reasons"]) == (decision, reasons)
    assert result["metrics"]["loanToValueRatio"] == float(
        (Decimal(amount) / 100000).quantize(Decimal("0.0001"), "ROUND_HALF_UP")
    )


def test_unsecured_loans_ignore_collateral() -> None:
    result = decide(app("personal", collateralValue=1))
    assert result["decision"] == "APPROVED" and result["metrics"]["loanToValueRatio"] is None


def test_every_triggered_rule_is_reported() -> None:
    result = decide(
        app("auto", creditScore=600, loanAmount=200000, collateralValue=100000, termMonths=61)
    )
    assert result["decision"] == "REJECTED"
    assert set(result["reasons"]) == {
        "AMOUNT_ABOVE_LIMIT",
        "TERM_NOT_ALLOWED",
        "LTV_ABOVE_MAXIMUM",
        "DTI_ABOVE_MAXIMUM",
        "CREDIT_SCORE_REVIEW_BAND",
    }


def test_thresholds_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIN_CREDIT_SCORE", "700")
    monkeypatch.setenv("MAX_AMOUNT_PERSONAL", "10000")
    monkeypatch.setenv("TERMS_PERSONAL", "36")
    result = decide(app("personal", creditScore=690))
    assert result["reasons"] == ["AMOUNT_ABOVE_LIMIT", "CREDIT_SCORE_BELOW_MINIMUM"]


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"loanId": "has space"}, {"loanId"}),
        ({"loanId": "x" * 65}, {"loanId"}),
        ({"loanType": "boat"}, {"loanType"}),
        ({"loanAmount": 0}, {"loanAmount"}),
        ({"loanAmount": "1000"}, {"loanAmount"}),
        ({"termMonths": 36.5}, {"termMonths"}),
        ({"creditScore": 299}, {"creditScore"}),
        ({"creditScore": 851}, {"creditScore"}),
        ({"creditScore": True}, {"creditScore"}),
        ({"annualInterestRate": float("nan")}, {"annualInterestRate"}),
        ({"annualIncome": float("inf")}, {"annualIncome"}),
        ({"monthlyDebtPayments": -1}, {"monthlyDebtPayments"}),
        ({"collateralValue": None}, {"collateralValue"}),
        ({"loanType": "personal", "collateralValue": "n/a"}, {"collateralValue"}),
        (
            {"applicantId": None, "termMonths": None, "loanAmount": []},
            {"applicantId", "termMonths", "loanAmount"},
        ),
    ],
)
def test_schema_names_every_bad_field(changes: dict[str, Any], fields: set[str]) -> None:
    application = {**app("mortgage"), **changes}
    clean, result = loans.evaluate(application, loans.thresholds())
    assert clean is None and result["decision"] == "INVALID"
    assert {e["field"] for e in result["errors"]} == fields
    assert all(e["message"] for e in result["errors"])


def test_invalid_result_carries_the_loan_id_only_when_readable() -> None:
    _, readable = loans.evaluate({**app("personal"), "creditScore": 1}, loans.thresholds())
    _, unreadable = loans.evaluate({**app("personal"), "loanId": 7}, loans.thresholds())
    assert readable["loanId"] == "L-personal"
    assert "loanId" not in unreadable
