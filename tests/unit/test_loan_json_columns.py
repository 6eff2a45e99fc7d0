"""No value the schema lets through can be cut by a JSON_TABLE column or a table column (R11).

A string longer than a JSON_TABLE column is cut with only a warning, on MySQL 8.0 and on MariaDB,
whatever the column's ON ERROR says (tried on MariaDB 10.11; MySQL 8.0 reference, JSON_TABLE:
"Truncation of a value when saving it to the column ... issues a warning independently of any
ON ERROR option", https://dev.mysql.com/doc/refman/8.0/en/json-table-functions.html). So each
column's width is checked here against the longest value the validation can produce; ERROR ON
ERROR covers what is left (a value that cannot be converted at all is an error, not a NULL).
"""

from __future__ import annotations

import inspect
import re
import sys

import pytest

from tests.support.helpers import load_function

loans = load_function("loan_validation")
COLUMN = re.compile(
    r"(\w+) VARCHAR\((\d+)\) CHARSET utf8mb4 PATH '\$(?:\[(\d+)\]|\.source)'([^,\n]*)"
)
TABLE_COLUMN = re.compile(r"^ (\w+) (?:VARCHAR|CHAR)\((\d+)\)", re.M)
FLOAT_EXTREMES = [
    sys.float_info.max, -sys.float_info.max, sys.float_info.min, -sys.float_info.min,
    5e-324, -2.2250738585072014e-308, 1 / 3, -1 / 3, 1e16 / 3, 123456789012.34567,
]  # fmt: skip


def reason_codes() -> list[str]:
    return re.findall(r'(?:reject|review)\.append\("([A-Z_]+)"\)', inspect.getsource(loans.decide))


def longest() -> dict[str, int]:
    """The longest text each row field can carry, from the schema's bounds."""
    amounts = [loans.to_cents(loans.exact(x)) for x in (1e9, 999999999.995, 0.01, 0.015)]
    ratio = max(len(repr(x)) for x in FLOAT_EXTREMES)  # a float's repr: 17 digits, sign, exponent
    return {
        "id": 64,  # loans.ID
        "applicant": 64,
        "type": max(map(len, loans.LOAN_TYPES)),
        "amount": max(len(str(a)) for a in amounts),
        "decision": max(map(len, ("APPROVED", "MANUAL_REVIEW", "REJECTED"))),
        "reasons": len(",".join(reason_codes())),  # every code at once: more than can happen
        "payment": ratio,
        "dti": ratio,
        "ltv": ratio,
        "sha": 64,
        "result": loans.RESULT_MAX_CHARS,
        "source": len("s3://") + 63 + len("/") + loans.S3_KEY_BYTES,  # bucket and key limits
    }


def declared(statement: str) -> dict[str, tuple[int, str]]:
    return {name: (int(width), rest) for name, width, _, rest in COLUMN.findall(statement)}


@pytest.mark.parametrize("statement", ["INSERT", "READ_BACK"])
def test_r11_every_json_column_is_wide_enough_and_errs_instead_of_nulling(statement: str) -> None:
    columns = declared(getattr(loans, statement))
    assert len(columns) == {"INSERT": 11, "READ_BACK": 7}[statement]
    bounds = longest()
    for name, (width, behaviour) in columns.items():
        assert bounds[name] <= width, f"{statement}.{name}: {bounds[name]} > {width}"
        assert "ERROR ON ERROR" in behaviour, f"{statement}.{name} would store NULL on an error"
        if name != "source":  # the source may be absent: NULLIF('') makes it NULL on purpose
            assert "ERROR ON EMPTY" in behaviour


def test_r11_the_table_columns_hold_every_value_the_json_columns_pass() -> None:
    table = dict(TABLE_COLUMN.findall(loans.TABLE))
    bounds = longest()
    for column, field in [("loan_id", "id"), ("applicant_id", "applicant"), ("loan_type", "type"),
                          ("decision", "decision"), ("reasons", "reasons"),
                          ("application_sha256", "sha"), ("source", "source")]:  # fmt: skip
        assert bounds[field] <= int(table[column]), column
    # DECIMAL(15,2) takes the largest amount and payment; the ratios fit DECIMAL(20,4) (below
    # 10^12, see NUMBERS) and result_json is TEXT.
    assert "loan_amount DECIMAL(15,2)" in loans.TABLE and "result_json TEXT" in loans.TABLE


def test_r11_the_bounds_are_real() -> None:
    """The codes found are the ones decide() gives, and a float's repr is at most 24 long."""
    assert "DTI_ABOVE_MAXIMUM" in reason_codes() and len(reason_codes()) >= 8
    assert longest()["payment"] == 24
