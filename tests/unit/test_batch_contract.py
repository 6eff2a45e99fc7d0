"""One source for the batch contract (SPEC D6): `loanstack migrate` reads the S3 layout, the
columns, the decisions and the database name from the validation function's module (through
`loanstack.functions`); these tests tie those names to what the function and the template do."""

from __future__ import annotations

from typing import Any

from loanstack import functions, template
from loanstack.ops import export, migrate

loans = functions.fresh(functions.VALIDATION)


def test_migrate_reads_the_contract_from_the_function_module() -> None:
    assert migrate.BATCH.FIELDS == loans.FIELDS
    assert (
        tuple(f for f in loans.FIELDS if f not in loans.OPTIONAL_FIELDS) == export.REQUIRED_COLUMNS
    )
    assert set(migrate.PROBLEMS) == set(loans.DECISIONS) - set(loans.ACCEPTED)


def test_the_required_columns_are_those_the_function_requires() -> None:
    """An unsecured application with nothing in it: the function names each required field."""
    _, errors = loans.validate({"loanType": "personal"})
    required = {e["field"] for e in errors}
    assert required | {"loanType"} == set(export.REQUIRED_COLUMNS)
    _, secured = loans.validate({"loanType": "mortgage"})
    assert {e["field"] for e in secured} - required == set(loans.OPTIONAL_FIELDS)


def test_the_report_layout_is_the_functions() -> None:
    cut = migrate.Export(migrate.Path("x.csv"), "csv", "ab" * 32, b"h", 1, chunk_rows=10)
    chunk = migrate.Chunk(3, 2, 10)
    key = chunk.key(cut)
    assert key.startswith(loans.INCOMING)
    assert chunk.report_key(cut) == loans.report_key(key)
    assert chunk.report_key(cut) == (
        loans.REPORTS + key.removeprefix(loans.INCOMING) + ".report.json"
    )


def test_every_decision_the_function_makes_is_a_named_one() -> None:
    limits = loans.thresholds()
    approved: dict[str, Any] = {
        "loanId": "L1",
        "applicantId": "A1",
        "loanType": "personal",
        "loanAmount": 10000,
        "termMonths": 36,
        "annualInterestRate": 7.5,
        "creditScore": 720,
        "annualIncome": 90000,
        "monthlyDebtPayments": 500,
    }
    seen = {
        loans.evaluate(approved, limits)[1]["decision"],
        loans.evaluate({**approved, "creditScore": 620}, limits)[1]["decision"],
        loans.evaluate({**approved, "creditScore": 400}, limits)[1]["decision"],
        loans.evaluate({**approved, "loanType": "yacht"}, limits)[1]["decision"],
    }
    assert seen == {"APPROVED", "MANUAL_REVIEW", "REJECTED", "INVALID"}
    assert seen < set(loans.DECISIONS)
    assert set(loans.ACCEPTED) < seen


def test_the_database_name_is_the_functions_and_the_templates() -> None:
    env = template.instantiate(parameters={"EnvironmentType": "dev", "EnvironmentSuffix": "dev42"})
    cluster = env.resources["DBCluster"].properties
    function = env.resources["LoanValidationFunction"].properties
    assert cluster["DatabaseName"] == loans.DATABASE_NAME
    assert function["Environment"]["Variables"]["DB_NAME"] == loans.DATABASE_NAME
