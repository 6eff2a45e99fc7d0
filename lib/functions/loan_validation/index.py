"""Validate loan applications, decide, record each decision in Aurora, keep documents in S3.

Input: one application (a JSON object), a list of them, or an S3 ObjectCreated event for a
migration batch file (JSON Lines or CSV) under incoming/. Bad input never raises: it becomes an
INVALID result naming each bad field, and a damaged line of a file is an INVALID row of its
report. Decisions go to Aurora through the RDS Data API (D1), idempotently: the same application
twice is one row and the same answer; the same loan id with other content is a CONFLICT and the
stored row stays. Lists and batch files are written in chunks sized by bytes against the Data
API's limits, each chunk one JSON document (D6), and a file produces one report under reports/.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import random
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal, localcontext
from fractions import Fraction
from functools import cache
from typing import Any, NotRequired, TypedDict, cast
from urllib.parse import unquote_plus

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

logger = logging.getLogger()
CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=16)

LOAN_TYPES = ("personal", "auto", "mortgage", "business")
SECURED = ("mortgage", "auto")
ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# field: (kind, minimum, maximum), both inclusive. Money is at least a cent where it must be
# positive, so every ratio stays below 10^12 and fits DECIMAL(20,4).
NUMBERS = {
    "loanAmount": ("number", 0.01, 1e9),
    "termMonths": ("integer", 1, 480),
    "annualInterestRate": ("number", 0, 100),
    "creditScore": ("integer", 300, 850),
    "annualIncome": ("number", 0.01, 1e10),
    "monthlyDebtPayments": ("number", 0, 1e9),
    "collateralValue": ("number", 0.01, 1e10),
}
CSV_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")
DEFAULT_TERMS = {
    "personal": "12,24,36,48,60",
    "auto": "24,36,48,60,72,84",
    "mortgage": "120,180,240,300,360",
    "business": "12,24,36,48,60,84,120",
}
DEFAULT_MAX_AMOUNT = {"personal": 50000, "auto": 150000, "mortgage": 2000000, "business": 500000}
CENT, BASIS_POINT = Decimal("0.01"), Decimal("0.0001")
# Data API limits (https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.limitations.html
# and BatchExecuteStatement in the API reference): a request of at most 4 MiB including headers and
# JSON notation, a response of at most 1 MiB, at most 64 KB per returned row. A chunk is sized to
# stay well inside them: its document is sent twice (insert, read back), each under
# REQUEST_BUDGET; the read back returns at most one ANSWER_BYTES row per application.
REQUEST_BUDGET = 3 * 2**20
RESPONSE_BUDGET = 3 * 2**18
RESULT_MAX_CHARS = 512  # a decision's JSON is bounded by construction (tested)
ANSWER_BYTES = 2 * RESULT_MAX_CHARS + 256  # one returned row, escaped, with its field wrappers
MAX_CHUNK_ROWS = RESPONSE_BUDGET // ANSWER_BYTES
MAX_LINE_BYTES = 1 << 16  # a batch file's line longer than this is INVALID and skipped
S3_KEY_BYTES = 1024  # https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html
# The batch contract, read by `loanstack migrate` through its loader (loanstack.functions): one
# source for the S3 layout, a CSV batch file's columns and the decisions (SPEC D6).
INCOMING = "incoming/"  # batch files; the report of each goes under REPORTS (`report_key`)
REPORTS = "reports/"
FIELDS = ("loanId", "applicantId", "loanType", *NUMBERS)  # a CSV batch file's columns, in order
OPTIONAL_FIELDS = ("collateralValue",)  # required for the SECURED loan types only
DECISIONS = ("APPROVED", "MANUAL_REVIEW", "REJECTED", "INVALID", "CONFLICT")
ACCEPTED = ("APPROVED", "MANUAL_REVIEW")  # a batch report lists every other row as a problem
DATABASE_NAME = "loans"  # DB_NAME's default; the template sets DB_NAME to the cluster's database
TABLE = """CREATE TABLE IF NOT EXISTS loan_decisions (
 loan_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
 applicant_id VARCHAR(64) NOT NULL,
 loan_type VARCHAR(16) NOT NULL,
 loan_amount DECIMAL(15,2) NOT NULL,
 decision VARCHAR(16) NOT NULL,
 reasons VARCHAR(512) NOT NULL,
 monthly_payment DECIMAL(15,2) NOT NULL,
 debt_to_income DECIMAL(20,4) NOT NULL,
 loan_to_value DECIMAL(20,4) NULL,
 application_sha256 CHAR(64) NOT NULL,
 result_json TEXT NOT NULL,
 source VARCHAR(1100) NULL,
 decided_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""
# Whether the table exists: information_schema shows this user the tables it holds a privilege
# on, so the function's own user (no CREATE privilege) asks before it creates anything.
EXISTS = """SELECT COUNT(*) FROM information_schema.TABLES
 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'loan_decisions'"""
# A table made by an earlier version: case-insensitive ids, ratios up to 10^8, short source.
OUTDATED = """SELECT COUNT(*) FROM information_schema.COLUMNS
 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'loan_decisions' AND (
 (COLUMN_NAME = 'loan_id' AND COLLATION_NAME <> 'utf8mb4_bin')
 OR (COLUMN_NAME IN ('debt_to_income', 'loan_to_value') AND NUMERIC_PRECISION < 20)
 OR (COLUMN_NAME = 'source' AND CHARACTER_MAXIMUM_LENGTH < 1100))"""
# One chunk, one parameter: {"source": ..., "rows": [[id, applicant, type, amount, decision,
# reasons, payment, dti, ltv, sha], ...]}. Numbers travel as strings so that the table's own
# strict DECIMAL conversion judges them; a missing LTV or source is "" (NULLIF), not JSON null,
# whose conversion to a string column is not the same on every engine.
# A chunk never holds one loan id twice (Chunker), so the order of the inserted rows decides
# nothing and needs no ORDER BY (whose sort MariaDB does through temporary files); the rows are
# sent sorted by loan id, so concurrent chunks lock rows in one order and rarely deadlock
# (https://dev.mysql.com/doc/refman/8.0/en/innodb-deadlocks-handling.html).
# Every column is ERROR ON EMPTY and ERROR ON ERROR: MySQL's default stores NULL for a value it
# cannot convert (https://dev.mysql.com/doc/refman/8.0/en/json-table-functions.html). A string
# longer than its column is cut with only a warning on both engines, whatever ON ERROR says, so
# each width is at least the longest value the schema lets through (test_loan_json_columns).
ROW_COLUMNS = """id VARCHAR(64) CHARSET utf8mb4 PATH '$[0]' ERROR ON EMPTY ERROR ON ERROR,
 applicant VARCHAR(64) CHARSET utf8mb4 PATH '$[1]' ERROR ON EMPTY ERROR ON ERROR,
 type VARCHAR(16) CHARSET utf8mb4 PATH '$[2]' ERROR ON EMPTY ERROR ON ERROR,
 amount VARCHAR(40) CHARSET utf8mb4 PATH '$[3]' ERROR ON EMPTY ERROR ON ERROR,
 decision VARCHAR(16) CHARSET utf8mb4 PATH '$[4]' ERROR ON EMPTY ERROR ON ERROR,
 reasons VARCHAR(512) CHARSET utf8mb4 PATH '$[5]' ERROR ON EMPTY ERROR ON ERROR,
 payment VARCHAR(40) CHARSET utf8mb4 PATH '$[6]' ERROR ON EMPTY ERROR ON ERROR,
 dti VARCHAR(40) CHARSET utf8mb4 PATH '$[7]' ERROR ON EMPTY ERROR ON ERROR,
 ltv VARCHAR(40) CHARSET utf8mb4 PATH '$[8]' ERROR ON EMPTY ERROR ON ERROR,
 sha VARCHAR(64) CHARSET utf8mb4 PATH '$[9]' ERROR ON EMPTY ERROR ON ERROR"""
# The stored answer (result_json) is written by the database from the row's own fields, the same
# text as json.dumps(result, sort_keys=True) (ids and reason codes need no escaping, the numbers
# are the floats' repr; test_loan_result_json holds them equal): sending it as well doubled each
# row of the document (every quote of it escaped), and parsing the document is most of the
# database's work per row (docs/benchmarks.md).
RESULT_JSON = """CONCAT('{"decision": "', j.decision, '", "loanId": "', j.id,
 '", "metrics": {"debtToIncomeRatio": ', j.dti, ', "loanToValueRatio": ',
 IF(j.ltv = '', 'null', j.ltv), ', "monthlyPayment": ', j.payment, '}, "reasons": [',
 IF(j.reasons = '', '', CONCAT('"', REPLACE(j.reasons, ',', '", "'), '"')), ']}')"""
INSERT = f"""INSERT INTO loan_decisions (loan_id, applicant_id, loan_type, loan_amount, decision,
 reasons, monthly_payment, debt_to_income, loan_to_value, application_sha256, result_json, source)
 SELECT j.id, j.applicant, j.type, j.amount, j.decision, j.reasons, j.payment, j.dti,
 NULLIF(j.ltv, ''), j.sha, {RESULT_JSON}, NULLIF(j.source, '')
 FROM JSON_TABLE(:chunk, '$' COLUMNS (
 source VARCHAR(1100) CHARSET utf8mb4 PATH '$.source' ERROR ON ERROR,
 NESTED PATH '$.rows[*]' COLUMNS ({ROW_COLUMNS}))) AS j
 ON DUPLICATE KEY UPDATE loan_decisions.loan_id = loan_decisions.loan_id"""  # noqa: S608 (constant column list; values are bound parameters)
# Read back only the rows whose stored answer is not the one just computed: a conflict, an answer
# recorded earlier under other rules, or (never expected) a missing row. Only the columns it uses.
READ_BACK = f"""SELECT j.n, d.application_sha256, d.result_json
 FROM JSON_TABLE(:chunk, '$.rows[*]' COLUMNS (n FOR ORDINALITY,
 id VARCHAR(64) CHARSET utf8mb4 PATH '$[0]' ERROR ON EMPTY ERROR ON ERROR,
 decision VARCHAR(16) CHARSET utf8mb4 PATH '$[4]' ERROR ON EMPTY ERROR ON ERROR,
 reasons VARCHAR(512) CHARSET utf8mb4 PATH '$[5]' ERROR ON EMPTY ERROR ON ERROR,
 payment VARCHAR(40) CHARSET utf8mb4 PATH '$[6]' ERROR ON EMPTY ERROR ON ERROR,
 dti VARCHAR(40) CHARSET utf8mb4 PATH '$[7]' ERROR ON EMPTY ERROR ON ERROR,
 ltv VARCHAR(40) CHARSET utf8mb4 PATH '$[8]' ERROR ON EMPTY ERROR ON ERROR,
 sha VARCHAR(64) CHARSET utf8mb4 PATH '$[9]' ERROR ON EMPTY ERROR ON ERROR)) AS j
 LEFT JOIN loan_decisions AS d ON d.loan_id = j.id COLLATE utf8mb4_bin
 WHERE d.loan_id IS NULL OR d.application_sha256 <> j.sha COLLATE utf8mb4_bin
 OR d.result_json <> {RESULT_JSON} COLLATE utf8mb4_bin"""  # noqa: S608 (constants only)
# With ON DUPLICATE KEY UPDATE a new row counts 1 and an unchanged existing row 0, unless the
# connection set CLIENT_FOUND_ROWS, which counts it 1 as well
# (https://dev.mysql.com/doc/refman/8.0/en/insert-on-duplicate.html). Which one the Data API's
# connections do is asked once per execution environment, on a row known to exist: an UPDATE
# that changes nothing counts 0 without the flag and 1 with it.
FOUND_ROWS_PROBE = "UPDATE loan_decisions SET loan_id = loan_id WHERE loan_id = :id"
_counts_found_rows: bool | None = None
# built once: json.dumps with options builds a new encoder on every call
SORTED = json.JSONEncoder(sort_keys=True)
_table_ready = False


# The JSON this function answers and writes, typed once here (the tool and the tests read these
# through loanstack.functions): a result per application, a report per batch file.
class FieldError(TypedDict):
    field: str  # "$" for the whole application or line
    message: str


class Metrics(TypedDict):
    monthlyPayment: float
    debtToIncomeRatio: float
    loanToValueRatio: float | None  # secured loan types only


class Decided(TypedDict):
    """APPROVED, MANUAL_REVIEW or REJECTED, with the reason codes; stored as it is in Aurora."""

    loanId: str
    decision: str
    reasons: list[str]
    metrics: Metrics


class Refused(TypedDict):
    """INVALID (no loanId when the sent one is no valid id) or CONFLICT (the id is taken)."""

    loanId: NotRequired[str]
    decision: str
    errors: list[FieldError]


Result = Decided | Refused


class Problem(TypedDict):
    """A batch file's row that is not ACCEPTED: its line (1-based) and its result's fields."""

    line: int
    loanId: NotRequired[str]
    decision: str
    reasons: NotRequired[list[str]]
    metrics: NotRequired[Metrics]
    errors: NotRequired[list[FieldError]]


class Counts(TypedDict):
    source: str  # the batch file's key
    rows: int
    summary: dict[str, int]  # decision -> rows
    error: NotRequired[str]  # a problem of the whole file (e.g. its CSV header)


class BatchReport(Counts):
    """reports/<name>.report.json (`report_key`): the problems in line order, then the counts."""

    problems: list[Problem]


class BatchAnswer(Counts):
    """What one batch file's S3 record answers (and logs): the counts and where the report is."""

    report: str


class Ignored(TypedDict):
    """A record of an object outside incoming/ (the notification's filter should prevent it)."""

    source: str
    ignored: bool


class RecordError(TypedDict):
    """A malformed S3 event record, answered (it cannot heal, so it is not retried)."""

    error: str


def env_number(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def env_decimal(name: str, default: float) -> Decimal:
    return Decimal(os.environ.get(name, str(default)))


def thresholds() -> dict[str, Any]:
    """Rule thresholds from the environment; the defaults are documented in the README."""
    return {
        "min_amount": env_decimal("MIN_LOAN_AMOUNT", 1000),
        "max_amount": {
            t: env_decimal(f"MAX_AMOUNT_{t.upper()}", a) for t, a in DEFAULT_MAX_AMOUNT.items()
        },
        "terms": {
            t: {int(x) for x in os.environ.get(f"TERMS_{t.upper()}", d).split(",")}
            for t, d in DEFAULT_TERMS.items()
        },
        "min_score": env_decimal("MIN_CREDIT_SCORE", 580),
        "review_score": env_decimal("REVIEW_CREDIT_SCORE", 660),
        "max_dti": env_decimal("MAX_DTI", 0.43),
        "review_dti": env_decimal("REVIEW_DTI", 0.36),
        "max_ltv": env_decimal("MAX_LTV", 0.95),
        "review_ltv": env_decimal("REVIEW_LTV", 0.80),
    }


# --- schema ---------------------------------------------------------------------------------


def check_number(field: str, value: Any) -> str | None:
    """Ints are compared as ints: a 400-digit integer is out of range, not an OverflowError."""
    kind, low, high = NUMBERS[field]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a{'n integer' if kind == 'integer' else ' number'}"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    if kind == "integer" and isinstance(value, float) and not value.is_integer():
        return "must be a whole number"
    if not low <= value <= high:
        return f"must be between {low:,g} and {high:,.0f}"
    return None


# (field, whole numbers only, minimum, maximum) for the one-pass check of a clean application
NUMBER_CHECKS = tuple((f, kind == "integer", low, high) for f, (kind, low, high) in NUMBERS.items())


def validate(app: Any) -> tuple[dict[str, Any] | None, list[FieldError]]:
    """A normalised application, or None with every bad field named.

    Nearly every row of a migration is clean: one pass that only checks (`clean_or_none`)
    answers those, and only a row it refuses is examined field by field for the messages
    (`examine`), which decides alone whatever the quick pass said (a property test holds the
    two to the same clean application)."""
    clean = clean_or_none(app)
    if clean is not None:
        return clean, []
    return examine(app)


def clean_or_none(app: Any) -> dict[str, Any] | None:
    """`examine`'s normalised application when every field is right, else None (then `examine`
    decides): exact JSON types only, so a bool or a str subclass goes the long way."""
    if type(app) is not dict:
        return None
    loan_id, applicant, loan_type = app.get("loanId"), app.get("applicantId"), app.get("loanType")
    if not (
        type(loan_id) is str
        and type(applicant) is str
        and type(loan_type) is str
        and loan_type in LOAN_TYPES
        and ID.fullmatch(loan_id)
        and ID.fullmatch(applicant)
    ):
        return None
    clean: dict[str, Any] = {"loanId": loan_id, "applicantId": applicant, "loanType": loan_type}
    for field, integer, low, high in NUMBER_CHECKS:
        value: Any = app.get(field)
        kind = type(value)
        if kind is float:  # NaN and the infinities fail the range
            if not low <= value <= high or (integer and not value.is_integer()):
                return None
            clean[field] = int(value) if integer else value
        elif kind is int:
            if not low <= value <= high:
                return None
            clean[field] = value if integer else float(value)
        elif value is None and field == "collateralValue" and loan_type not in SECURED:
            continue
        else:
            return None
    return clean


def examine(app: Any) -> tuple[dict[str, Any] | None, list[FieldError]]:
    """A normalised application, or None with every bad field named."""
    if not isinstance(app, dict):
        return None, [{"field": "$", "message": "must be a JSON object"}]
    errors: list[FieldError] = []
    for field in ("loanId", "applicantId"):
        value = app.get(field)
        if not isinstance(value, str) or not ID.fullmatch(value):
            errors.append({"field": field, "message": "must be 1-64 letters, digits, '-' or '_'"})
    loan_type = app.get("loanType")
    if not isinstance(loan_type, str) or loan_type not in LOAN_TYPES:
        errors.append({"field": "loanType", "message": f"must be one of {', '.join(LOAN_TYPES)}"})
    for field in NUMBERS:
        value = app.get(field)
        if value is None:
            if field != "collateralValue" or loan_type in SECURED:
                errors.append({"field": field, "message": "is required"})
            continue
        problem = check_number(field, value)
        if problem:
            errors.append({"field": field, "message": problem})
    if errors:
        return None, errors
    clean = {f: app[f] for f in ("loanId", "applicantId", "loanType")}
    for field, (kind, *_) in NUMBERS.items():
        if app.get(field) is not None:  # the same types as ever: fingerprints stay comparable
            clean[field] = int(app[field]) if kind == "integer" else float(app[field])
    return clean, []


# --- rules ----------------------------------------------------------------------------------


def exact(value: float) -> Decimal:
    """The decimal the JSON text said (1e-17 stays 1e-17; 0.1 is not 0.1000000000000000055)."""
    return Decimal(repr(value))


def monthly_payment(amount: Decimal, annual_rate_percent: Decimal, months: int) -> Decimal:
    """Standard amortisation, P*r*(1+r)^n / ((1+r)^n - 1), or P/n at 0%, unrounded.

    The precision grows with how small r is, so (1+r)^n - 1 keeps 50 significant digits even for
    a rate of 1e-300 %: the result is exact to far below a cent at every rate the schema takes.
    """
    rate = annual_rate_percent / 1200
    if rate == 0:
        return amount / months
    with localcontext(Context(prec=50 + max(0, -rate.adjusted()))):
        growth = (1 + rate) ** months
        return amount * rate * growth / (growth - 1)


def to_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


TIE_MARGIN = Decimal("1e-20")  # in cents; the Decimal result is good to ~1e-30 of a cent
# Below this annual rate (in %) interest cannot move the payment across a half cent (see
# settled_cents), so a crafted rate like 1e-300 % never reaches monthly_payment's precision of
# 50 + 300 digits nor exact integers of 150,000 digits: every rate costs about what 1 % costs.
NEGLIGIBLE_RATE = Decimal("1e-28")


def payment_in_cents(amount: Decimal, annual_rate_percent: Decimal, months: int) -> Decimal:
    """The payment rounded half up to the cent, exactly: near a half-cent tie (5,334 at 1% over
    one month is 5,338.445) a rate like 1/1200 that Decimal cannot hold exactly could tip the
    rounding, so those rare cases are settled exactly."""
    if annual_rate_percent < NEGLIGIBLE_RATE:
        return settled_cents(amount, annual_rate_percent, months)
    approx = monthly_payment(amount, annual_rate_percent, months)
    cents = approx.scaleb(2)
    if abs(cents - cents.to_integral_value(ROUND_FLOOR) - Decimal("0.5")) > TIE_MARGIN:
        return to_cents(approx)
    return settled_cents(amount, annual_rate_percent, months)


def settled_cents(amount: Decimal, rate: Decimal, months: int) -> Decimal:
    """P/n rounded half up when interest provably cannot reach the next half cent, else exact
    (`rate` is the annual rate in %, as the application gives it).

    With r the monthly rate and g = (1+r)^n, Bernoulli's g - 1 >= n*r gives
    P*r*g/(g-1) = P*r + P*r/(g-1) <= P*r + P/n: the payment lies in [P/n, P/n + 100*P*r] cents.
    When that interval holds no half cent above P/n, the payment rounds as P/n does (a tie rounds
    up either way). Below NEGLIGIBLE_RATE, 100*P*r < 1e11 * 1e-28/1200 < 1e-19 cents, while P/n
    in cents (P a float's shortest decimal: at most 17 digits, at least 0.01) has a denominator
    dividing 2*n*10^16 and so lies at least 1/(960*10^16) > 1e-19 cents from any half cent it is
    not on: the test always holds there. Fractions of P and r are small; g is never formed.
    """
    even = Fraction(amount) * 100 / months
    rounded = math.floor(even + Fraction(1, 2))
    gap = rounded + Fraction(1, 2) - even  # from P/n to the next half cent above it
    if 100 * Fraction(amount) * Fraction(rate) / 1200 < gap:
        return Decimal(rounded).scaleb(-2)
    return exact_cents(amount, rate, months)


def exact_cents(amount: Decimal, rate: Decimal, months: int) -> Decimal:
    """P*r*g/(g-1) rounded half up to the cent in integers, with no Fraction normalising huge
    terms: for a rate of at least NEGLIGIBLE_RATE with a float's 17 digits, (a+b)^n stays under
    ~23,000 digits even at 480 months (about a millisecond; tested)."""
    p, q = Fraction(amount).as_integer_ratio()
    if rate == 0:
        return Decimal((200 * p + q * months) // (2 * q * months)).scaleb(-2)
    a, b = (Fraction(rate) / 1200).as_integer_ratio()
    grown, base = (a + b) ** months, b**months
    below = q * b * (grown - base)  # payment in cents = 100*p*a*grown / below
    return Decimal((200 * p * a * grown + below) // (2 * below)).scaleb(-2)


def to_ratio(value: Decimal) -> Decimal:
    return value.quantize(BASIS_POINT, ROUND_HALF_UP)


# The quick measures' arithmetic is good to a few dozen units in the last place of a float (about
# 1e-14, relative); a value closer than FLOAT_SLACK (relative, ~9e-13) to a tie goes the exact way.
FLOAT_SLACK = 2.0**-40
QUICK_RATE = 1e-100  # below it (0 aside) log1p and expm1 near the subnormals lose precision


def half_up(value: float) -> int | None:
    """`value` (>= 0) rounded half up to an integer, or None when a half integer lies within
    FLOAT_SLACK of it, relatively: from 2**39 on that is every value, so the result is exact."""
    whole = math.floor(value)
    fraction = value - whole  # exact: the float's own fraction bits
    if abs(fraction - 0.5) <= value * FLOAT_SLACK:
        return None
    return whole + (fraction > 0.5)


def quick_measures(app: dict[str, Any]) -> tuple[int, int, int | None] | None:
    """(payment in cents, DTI and LTV in basis points) in float arithmetic, or None when a value
    lies too near a rounding tie for floats to tell (then `exact_measures` decides).

    Each input float is within half a unit in the last place (2**-53, relative) of the decimal
    its JSON text said (the subnormals excluded below), each operation adds at most one unit
    (log1p and expm1: glibc's documented bound is 1-2), and the payment formula
    P*r / (1 - e^(-x)), x = n*log1p(r), passes x's relative error on shrunk by x / (e^x - 1) <= 1:
    about 20 units in all, 2e-15, far inside FLOAT_SLACK. Away from a tie the rounded value is
    then the exact one, which is also what the Decimal path gives (both are tested against the
    exact rational reference, and against each other)."""
    amount, rate, months = app["loanAmount"], app["annualInterestRate"], app["termMonths"]
    debts = app["monthlyDebtPayments"]
    if 0 < debts < 1e-300:
        return None
    if rate == 0:
        cents = half_up(amount * 100 / months)
    elif rate >= QUICK_RATE:
        monthly = rate / 1200
        cents = half_up(amount * 100 * monthly / -math.expm1(-months * math.log1p(monthly)))
    else:
        return None
    if cents is None:
        return None
    dti = half_up((debts + cents / 100) * 120000 / app["annualIncome"])
    if dti is None:
        return None
    if app["loanType"] not in SECURED:
        return cents, dti, None
    ltv = half_up(amount * 10000 / app["collateralValue"])
    return None if ltv is None else (cents, dti, ltv)


def exact_measures(app: dict[str, Any], amount: Decimal) -> tuple[int, int, int | None]:
    """`quick_measures` in Decimal arithmetic, exact to the cent and basis point at every input."""
    with localcontext(Context(prec=50)):
        payment = payment_in_cents(amount, exact(app["annualInterestRate"]), app["termMonths"])
        debts = exact(app["monthlyDebtPayments"]) + payment
        dti = to_ratio(debts * 12 / exact(app["annualIncome"]))
        secured = app["loanType"] in SECURED
        ltv = to_ratio(amount / exact(app["collateralValue"])) if secured else None
        return (
            int(payment.scaleb(2)),
            int(dti.scaleb(4)),
            None if ltv is None else int(ltv.scaleb(4)),
        )


def decide(app: dict[str, Any], limits: dict[str, Any]) -> Decided:
    """The decision; ratios are compared as reported (4 places), so 0.95 is never "above" 0.95.

    The metrics are integers (cents, basis points), from floats where they are sure, else from
    Decimals; a float from an integer n / 10**k is correctly rounded, as float(Decimal) is."""
    loan_type, amount = app["loanType"], exact(app["loanAmount"])
    cents, dti_points, ltv_points = quick_measures(app) or exact_measures(app, amount)
    dti = Decimal(dti_points).scaleb(-4)
    ltv = None if ltv_points is None else Decimal(ltv_points).scaleb(-4)
    reject, review = [], []
    if amount < limits["min_amount"]:
        reject.append("AMOUNT_BELOW_MINIMUM")
    if amount > limits["max_amount"][loan_type]:
        reject.append("AMOUNT_ABOVE_LIMIT")
    if app["termMonths"] not in limits["terms"][loan_type]:
        reject.append("TERM_NOT_ALLOWED")
    if app["creditScore"] < limits["min_score"]:
        reject.append("CREDIT_SCORE_BELOW_MINIMUM")
    elif app["creditScore"] < limits["review_score"]:
        review.append("CREDIT_SCORE_REVIEW_BAND")
    if dti > limits["max_dti"]:
        reject.append("DTI_ABOVE_MAXIMUM")
    elif dti > limits["review_dti"]:
        review.append("DTI_REVIEW_BAND")
    if ltv is not None and ltv > limits["max_ltv"]:
        reject.append("LTV_ABOVE_MAXIMUM")
    elif ltv is not None and ltv > limits["review_ltv"]:
        review.append("LTV_REVIEW_BAND")
    decision = "REJECTED" if reject else "MANUAL_REVIEW" if review else "APPROVED"
    return {
        "loanId": app["loanId"],
        "decision": decision,
        "reasons": reject + review,
        "metrics": {
            "monthlyPayment": cents / 100,
            "debtToIncomeRatio": dti_points / 10000,
            "loanToValueRatio": None if ltv_points is None else ltv_points / 10000,
        },
    }


def evaluate(app: Any, limits: dict[str, Any]) -> tuple[dict[str, Any] | None, Result]:
    """(normalised application or None, result) for one raw application."""
    clean, errors = validate(app)
    if clean is None:
        return None, invalid(errors, app.get("loanId") if isinstance(app, dict) else None)
    return clean, decide(clean, limits)


def invalid(errors: list[FieldError], loan_id: Any = None) -> Refused:
    result: Refused = {"decision": "INVALID", "errors": errors}
    if isinstance(loan_id, str) and ID.fullmatch(loan_id):
        result = {"loanId": loan_id, **result}
    return result


# --- AWS --------------------------------------------------------------------------------------


@cache
def rds_data_client() -> Any:
    """One client per execution environment, reused by every invocation and chunk."""
    return boto3.client("rds-data", config=CONFIG)


@cache
def s3_client() -> Any:
    return boto3.client("s3", config=CONFIG)


# --- Data API failures: what each one means, in one place ---------------------------------------
# A SQL or login failure is BadRequestException on Aurora Serverless v1 ("This error only appears in
# calls from Aurora Serverless v1 databases") and DatabaseErrorException on provisioned and
# Serverless v2 clusters ("There was an error in processing the SQL statement"), so a failure is
# judged by what MySQL said (its error number, else its message), never by the exception's code:
# https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/API_ExecuteStatement.html#API_ExecuteStatement_Errors
SQL_ERROR_CODES = frozenset({"BadRequestException", "DatabaseErrorException"})
ACCESS_DENIED, LOCK_WAIT_TIMEOUT, DEADLOCK = 1045, 1205, 1213
COMMAND_DENIED = 1142  # ER_TABLEACCESS_DENIED_ERROR: the user lacks the privilege
# MySQL's own texts for the numbers that matter here, for a message that carries no number:
# https://dev.mysql.com/doc/mysql-errors/8.0/en/server-error-reference.html
MYSQL_TEXTS = {
    ACCESS_DENIED: "Access denied for user",
    LOCK_WAIT_TIMEOUT: "Lock wait timeout exceeded",
    DEADLOCK: "Deadlock found when trying to get lock",
}
# "Database error code: 1213. Message: ..." (the Data API), "(1213, '...')" (a MySQL client's text)
MYSQL_NUMBER = re.compile(r"error code:?\s*(\d{4})\b|^(?:Database error:\s*)?\((\d{4}),", re.I)
ROTATION, RESUMING, UNAVAILABLE = "rotation", "resuming", "unavailable"
LOCKS, STATEMENT_TIMEOUT, TRANSIENT, PERMANENT = (
    "locks",
    "statement-timeout",
    "transient",
    "permanent",
)
TRANSIENT_CODES = frozenset(
    {
        "ServiceUnavailableError",
        "InternalServerErrorException",
        "ThrottlingException",
        "TooManyRequestsException",
    }
)
# The failures that last a known window, retried until it has passed (seconds, from the
# environment): a rotation in flight (the database has the new password before AWSCURRENT moves,
# and AWS advises retrying across that window:
# https://docs.aws.amazon.com/secretsmanager/latest/userguide/rotation-strategy.html); a paused
# Serverless v2 writer resuming ("can take up to 15 seconds", longer after a long pause:
# https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-serverless-v2-auto-pause.html);
# a writer that is restarting or failing over (DatabaseUnavailableException, "The writer instance in
# the DB cluster isn't available"; DatabaseNotFoundException while the cluster has no instance),
# which takes tens of seconds:
# https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/Concepts.AuroraHighAvailability.html
WINDOWS = {
    ROTATION: ("AUTH_RETRY_SECONDS", 90.0),
    RESUMING: ("RESUME_RETRY_SECONDS", 60.0),
    UNAVAILABLE: ("FAILOVER_RETRY_SECONDS", 90.0),
}
# The Data API stops a statement after 45 s unless continueAfterTimeout is set (then it is rolled
# back): a retry is worth it only when a whole statement still fits in the time left.
# https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.limitations.html
STATEMENT_SECONDS = 45.0
_deadline = math.inf  # when the invocation must stop retrying (monotonic clock); see begin()


def mysql_error(err: ClientError) -> int | None:
    """MySQL's error number inside a Data API SQL error, whichever exception code carries it."""
    error = err.response.get("Error", {})
    if error.get("Code") not in SQL_ERROR_CODES:
        return None
    message = str(error.get("Message", ""))
    found = MYSQL_NUMBER.search(message)
    if found:
        return int(found.group(1) or found.group(2))
    return next((number for number, text in MYSQL_TEXTS.items() if text in message), None)


def classify(err: ClientError) -> str:
    """The one judgement of a Data API failure, which decides how (and whether) it is retried.

    Deadlocks (1213) and lock wait timeouts (1205) roll the statement back, and every statement
    here is idempotent, so they are tried again, as MySQL advises:
    https://dev.mysql.com/doc/refman/8.0/en/innodb-deadlocks-handling.html
    """
    error = err.response.get("Error", {})
    code, message = error.get("Code", ""), str(error.get("Message", ""))
    number = mysql_error(err)
    if number == ACCESS_DENIED:
        return ROTATION
    if number in (DEADLOCK, LOCK_WAIT_TIMEOUT):
        return LOCKS
    if code == "DatabaseResumingException":
        return RESUMING
    if code in ("DatabaseUnavailableException", "DatabaseNotFoundException"):
        return UNAVAILABLE
    if code == "StatementTimeoutException":
        return STATEMENT_TIMEOUT
    if code in TRANSIENT_CODES or "Communications link failure" in message:
        return TRANSIENT
    return PERMANENT


def begin(context: Any) -> None:
    """Start an invocation's clock: no retry may sleep past its remaining time less a reserve
    (TIME_RESERVE_SECONDS) kept for the report and the answer. Without a context (tests, local
    runs) there is no deadline."""
    global _deadline
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        _deadline = math.inf
        return
    _deadline = time.monotonic() + remaining() / 1000 - env_number("TIME_RESERVE_SECONDS", 10)


def may_retry(kind: str, attempt: int, started: float, delay: float) -> bool:
    """Whether a failure of `kind`, after `attempt` retries, is tried again after `delay`."""
    resume_at = time.monotonic() + delay
    if kind == PERMANENT or resume_at > _deadline:
        return False
    if kind in WINDOWS:
        name, default = WINDOWS[kind]
        return resume_at <= started + env_number(name, default)
    if kind == STATEMENT_TIMEOUT:
        return attempt == 0 and resume_at + STATEMENT_SECONDS <= _deadline
    return attempt < int(os.environ.get("RETRY_ATTEMPTS", "6")) - 1


def with_retries(call: Callable[..., Any], **kwargs: Any) -> Any:
    """Call the Data API, retrying as classify() judges the failure, with jittered backoff."""
    started, attempt = time.monotonic(), 0
    while True:
        try:
            return call(**kwargs)
        except ClientError as err:
            kind = classify(err)
            delay = min(20.0, env_number("RETRY_BASE_SECONDS", 0.5) * 2**attempt)
            delay *= random.uniform(0.5, 1.0)  # noqa: S311 (retry jitter, not a secret)
            if not may_retry(kind, attempt, started, delay):
                raise
            logger.warning(
                "transient error, retrying",
                extra={
                    "error": err.response["Error"]["Code"],
                    "kind": kind,
                    "mysqlError": mysql_error(err),
                    "attempt": attempt + 1,
                },
            )
            time.sleep(delay)
            attempt += 1


def sql(client: Any, statement: str, **kwargs: Any) -> Any:
    return with_retries(
        client.execute_statement,
        resourceArn=os.environ["DB_CLUSTER_ARN"],
        secretArn=os.environ["DB_SECRET_ARN"],
        database=os.environ.get("DB_NAME", DATABASE_NAME),
        sql=statement,
        **kwargs,
    )


class MissingTable(RuntimeError):
    """The table is missing and this function may not create it (no DDL privilege)."""


class OutdatedTable(RuntimeError):
    """The table predates the current column types; an operator migrates it once (README)."""


def create_table(client: Any) -> None:
    """Create the table where this function's database user may (a test's or an earlier stack's
    master user). The stack's own user has no DDL privilege (least privilege: AppDatabaseSetup
    creates the table as the master before the first call), so there a missing table is said as
    such rather than as MySQL's "CREATE command denied" (1142)."""
    try:
        sql(client, TABLE)
    except ClientError as err:
        if mysql_error(err) != COMMAND_DENIED:
            raise
        raise MissingTable(
            "loan_decisions does not exist and this function's database user may not create it: "
            "the stack's AppDatabaseSetup creates it (update the stack to run it again)"
        ) from err


def ensure_table(client: Any) -> None:
    """Create the table once per execution environment; refuse one of an older version. Its
    migration rebuilds the table (a copying ALTER that blocks writes and outlasts the Data API's
    45-second statement limit on a large table), so it is never run from a cold start."""
    global _table_ready
    if _table_ready:
        return
    if not sql(client, EXISTS)["records"][0][0].get("longValue", 0):
        create_table(client)
    if sql(client, OUTDATED)["records"][0][0].get("longValue", 0):
        raise OutdatedTable(
            "loan_decisions has the column types of an earlier version (case-insensitive ids): "
            "run the one-time migration in the README, section 'Upgrading the decisions table'"
        )
    _table_ready = True


def fingerprint(app: dict[str, Any]) -> str:
    """sha256 of json.dumps(app, sort_keys=True) of a normalised application, written out (the
    same text as ever, so rows stored by earlier versions still match; a test holds them equal)."""
    return fingerprint_of(fingerprint_parts(app), app["loanId"], app["applicantId"])


def fingerprint_parts(app: dict[str, Any]) -> tuple[str, str, str]:
    """The fingerprint's text around its two ids (the applicant's, then the loan's), which sort
    between the other keys: `loanstack verify` writes the numbers of lines alike once and only
    the ids per line (the ids are ID-checked, so they need no JSON escaping)."""
    collateral = app.get("collateralValue")
    return (
        f'{{"annualIncome": {app["annualIncome"]!r}, "annualInterestRate": '
        f'{app["annualInterestRate"]!r}, "applicantId": "',
        '", '
        + ("" if collateral is None else f'"collateralValue": {collateral!r}, ')
        + f'"creditScore": {app["creditScore"]!r}, "loanAmount": {app["loanAmount"]!r}, '
        '"loanId": "',
        f'", "loanType": "{app["loanType"]}", "monthlyDebtPayments": '
        f'{app["monthlyDebtPayments"]!r}, "termMonths": {app["termMonths"]!r}}}',
    )


def fingerprint_of(parts: tuple[str, str, str], loan_id: str, applicant_id: str) -> str:
    """The fingerprint of the application whose text around its ids is `parts`."""
    text = f"{parts[0]}{applicant_id}{parts[1]}{loan_id}{parts[2]}"
    return hashlib.sha256(text.encode()).hexdigest()


def cents_text(value: float) -> str:
    """str(to_cents(exact(value))): when the float's shortest text has at most two decimals (an
    amount in cents, as exports hold them), that text padded to two; else through Decimal."""
    text = repr(value)
    whole, dot, fraction = text.partition(".")
    if dot and len(fraction) <= 2 and "e" not in fraction:
        return f"{whole}.{fraction:0<2}"
    return str(to_cents(exact(value)))


class Entry:
    """A decided application on its way to Aurora: its row of the chunk document, pre-encoded."""

    __slots__ = ("app", "request_bytes", "result", "text")

    def __init__(self, app: dict[str, Any], result: Decided) -> None:
        """Formatted by hand: ids, codes and numbers need no escaping (the schema saw to it), and
        this runs for every row of a migration (issue 12: the function's own cost per row)."""
        self.app, self.result = app, result
        metrics = result["metrics"]
        payment, dti, ltv = (
            repr(metrics["monthlyPayment"]),
            repr(metrics["debtToIncomeRatio"]),
            metrics["loanToValueRatio"],
        )
        self.text = (
            f'["{app["loanId"]}","{app["applicantId"]}","{app["loanType"]}",'
            f'"{cents_text(app["loanAmount"])}","{result["decision"]}",'
            f'"{",".join(result["reasons"])}","{payment}","{dti}",'
            f'"{"" if ltv is None else repr(ltv)}",'
            f'"{fingerprint(app)}"]'
        )
        # inside the request the document is a JSON string: each quote and backslash doubles
        self.request_bytes = len(self.text) + self.text.count('"') + self.text.count("\\") + 1


class Chunker:
    """Groups entries into chunks that keep every Data API request and response in its limits.

    A loan id already in the chunk closes it: the first row of an id is inserted with its chunk,
    and the repeat, in the next chunk, meets the stored row (its answer or a CONFLICT)."""

    def __init__(self, source: str | None) -> None:
        self.source, self.entries, self.request_bytes = source, list[Entry](), 0
        self.ids: set[str] = set()
        self.max_rows = min(MAX_CHUNK_ROWS, int(os.environ.get("BATCH_SIZE", MAX_CHUNK_ROWS)))
        self.base_bytes = 64 + 2 * len(json.dumps(source))

    def full_with(self, entry: Entry) -> bool:
        return bool(self.entries) and (
            len(self.entries) >= self.max_rows
            or self.base_bytes + self.request_bytes + entry.request_bytes > REQUEST_BUDGET
            or entry.app["loanId"] in self.ids
        )

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.ids.add(entry.app["loanId"])
        self.request_bytes += entry.request_bytes

    def take(self) -> list[Entry]:
        entries, self.entries, self.request_bytes = self.entries, [], 0
        self.ids = set()
        return entries


def record_chunk(entries: list[Entry], source: str | None) -> list[Result]:
    """Insert a chunk (a loan id already stored is left alone), then answer from what is stored.

    When the INSERT counts every row as new, each stored row is the one just sent and the read
    back is skipped (one Data API call and its cost per row saved), provided the count cannot
    include unchanged duplicates (counts_found_rows)."""
    if not entries:
        return []
    client = rds_data_client()
    ensure_table(client)
    order = sorted(range(len(entries)), key=lambda i: entries[i].app["loanId"])
    rows = ",".join(entries[i].text for i in order)
    document = f'{{"source":{json.dumps(source or "")},"rows":[{rows}]}}'
    chunk = [{"name": "chunk", "value": {"stringValue": document}}]
    inserted = sql(client, INSERT, parameters=chunk).get("numberOfRecordsUpdated")
    answers: list[Result] = [e.result for e in entries]
    if inserted == len(entries) and not counts_found_rows(client, entries[0].app["loanId"]):
        return answers
    for n, sha, stored in sql(client, READ_BACK, parameters=chunk)["records"]:
        position = order[n["longValue"] - 1]
        entry = entries[position]
        if stored.get("isNull"):
            raise RuntimeError(f"loan {entry.app['loanId']} was not stored; process the file again")
        answers[position] = answer(entry, sha["stringValue"], stored["stringValue"])
    return answers


def counts_found_rows(client: Any, stored_id: str) -> bool:
    """Whether the Data API's connections count an unchanged row as affected (CLIENT_FOUND_ROWS),
    learnt once from a row known to exist; the probe changes nothing."""
    global _counts_found_rows
    if _counts_found_rows is None:
        probe = [{"name": "id", "value": {"stringValue": stored_id}}]
        found = sql(client, FOUND_ROWS_PROBE, parameters=probe).get("numberOfRecordsUpdated")
        _counts_found_rows = found != 0
        logger.info("Data API counts found rows: %s", _counts_found_rows)
    return _counts_found_rows


def answer(entry: Entry, stored_sha: str, stored_json: str) -> Result:
    """The stored answer for the same application, else a CONFLICT.

    A CONFLICT shows only what the caller sent (its loan id) and that the id is taken: never
    the recorded decision or content, which belong to whoever recorded them (D8)."""
    if stored_sha == fingerprint(entry.app):
        return cast(Decided, dict(json.loads(stored_json)))  # RESULT_JSON wrote it
    return {
        "loanId": entry.app["loanId"],
        "decision": "CONFLICT",
        "errors": [{"field": "loanId", "message": "already recorded with different content"}],
    }


def log_result(result: Result) -> None:
    """Ids, decisions and codes only: no applicant data reaches the logs."""
    logger.info(
        "loan decision", extra={k: result.get(k) for k in ("loanId", "decision", "reasons")}
    )


# --- entry points -----------------------------------------------------------------------------


def handle_applications(apps: list[Any]) -> list[Result]:
    limits = thresholds()
    evaluated = [evaluate(app, limits) for app in apps]
    results = [result for _, result in evaluated]
    chunker = Chunker(None)
    pending: list[int] = []  # positions of the chunk's entries in `results`

    def flush() -> None:
        for position, recorded in zip(pending, record_chunk(chunker.take(), None), strict=True):
            results[position] = recorded
        pending.clear()

    for position, (clean, result) in enumerate(evaluated):
        if clean is None:
            continue
        entry = Entry(clean, cast(Decided, result))  # evaluate decides what it cleans
        if chunker.full_with(entry):
            flush()
        chunker.add(entry)
        pending.append(position)
    flush()
    for result in results:
        log_result(result)
    write_documents(results)
    return results


def write_documents(results: list[Result]) -> None:
    """validations/<loanId>.json for each decision, written in parallel (a list may hold 10,000).
    A loan repeated in one list has one recorded answer, so its document is written once: two
    concurrent writes of one key would race for nothing."""
    bucket = os.environ.get("DOCUMENTS_BUCKET")
    first: dict[str, Result] = {}
    for r in results:
        if r["decision"] in ("APPROVED", "MANUAL_REVIEW", "REJECTED"):
            first.setdefault(str(r["loanId"]), r)
    decided = list(first.values())
    if not bucket or not decided:
        return
    s3 = s3_client()

    def put(result: Result) -> None:
        s3.put_object(
            Bucket=bucket,
            Key=f"validations/{result['loanId']}.json",
            Body=json.dumps(result, sort_keys=True).encode(),
            ContentType="application/json",
        )

    if len(decided) == 1:
        put(decided[0])
        return
    with ThreadPoolExecutor(max_workers=16) as pool:
        for _ in pool.map(put, decided):
            pass  # map re-raises the first failure here


# A direct invocation's answer must fit Lambda's 6 MB synchronous response (an INVALID result
# takes up to ~600 bytes): larger sets go in a batch file, which has no such limit.
# https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
MAX_LIST_ITEMS = 5000
TOO_MANY = (
    f"a list holds at most {MAX_LIST_ITEMS} applications: put larger sets in a batch file "
    "under incoming/ (JSON Lines or CSV)"
)


def handler(event: Any, context: Any) -> dict[str, Any] | Result:
    begin(context)
    if isinstance(event, dict) and "Records" in event and "loanId" not in event:
        records = event["Records"]
        if not isinstance(records, list) or not records:
            return {"reports": [{"error": "Records must be a non-empty list of S3 event records"}]}
        return {"reports": [handle_record(i, r) for i, r in enumerate(records)]}
    if isinstance(event, list):
        if len(event) > MAX_LIST_ITEMS:
            return invalid([{"field": "$", "message": TOO_MANY}])
        results = handle_applications(event)
        return {"results": results, "summary": dict(Counter(r["decision"] for r in results))}
    if isinstance(event, dict):
        return handle_applications([event])[0]
    return invalid(
        [
            {
                "field": "$",
                "message": "expected an application object, a list of them, or an S3 event",
            }
        ]
    )


# --- batch files ------------------------------------------------------------------------------


def s3_object(record: Any) -> tuple[str, str] | str:
    """(bucket, key) of one S3 event record, or what is wrong with it."""
    s3 = record.get("s3") if isinstance(record, dict) else None
    bucket = s3.get("bucket") if isinstance(s3, dict) else None
    obj = s3.get("object") if isinstance(s3, dict) else None
    name = bucket.get("name") if isinstance(bucket, dict) else None
    key = obj.get("key") if isinstance(obj, dict) else None
    if not isinstance(name, str) or not name:
        return "s3.bucket.name must be a non-empty string"
    if not isinstance(key, str) or not key:
        return "s3.object.key must be a non-empty string"
    return name, unquote_plus(key)


def handle_record(index: int, record: Any) -> BatchAnswer | Ignored | RecordError:
    """One record of an S3 event; a malformed one is answered, not retried (it cannot heal)."""
    where = s3_object(record)
    if isinstance(where, str):
        message = (
            f"S3 event record {index} is malformed: {where}; send the ObjectCreated event S3 sends"
        )
        logger.error(message)
        return {"error": message}
    return handle_batch_file(*where)


# A line ends at "\r\n", "\n" or a lone "\r" (Excel for Mac's "CSV (Macintosh)"), as Python's
# universal newlines read it: https://docs.python.org/3/glossary.html#term-universal-newlines
LINE_END = re.compile(rb"\r\n|\r|\n")


def physical_lines(body: Any, limit: int, chunk_size: int = 1 << 20) -> Iterator[bytes | None]:
    """Each line's bytes without its line end, or None for a line longer than `limit` bytes.

    Linear in the file: a line is joined once, when it ends; a line past the limit is dropped as
    it streams, so memory stays under `limit` + one read whatever the file holds. A "\r\n" cut
    between two reads is still one line end.
    """
    parts: list[bytes] = []
    size, too_long, after_cr = 0, False, False
    for chunk in iter(lambda: body.read(chunk_size), b""):
        if after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the "\n" of a "\r\n" whose "\r" ended the last read
        after_cr = chunk.endswith(b"\r")
        *complete, rest = LINE_END.split(chunk) if b"\r" in chunk else chunk.split(b"\n")
        for piece in complete:
            yield None if too_long or size + len(piece) > limit else b"".join([*parts, piece])
            parts, size, too_long = [], 0, False
        if too_long or size + len(rest) > limit:
            parts, size, too_long = [], 0, True
        elif rest:
            parts.append(rest)
            size += len(rest)
    if too_long or parts:
        yield None if too_long else b"".join(parts)


class Unreadable:
    """A line of a batch file that cannot become an application, why, and the field at fault."""

    __slots__ = ("field", "loan_id", "message")

    def __init__(self, message: str, field: str = "$", loan_id: Any = None) -> None:
        self.message, self.field, self.loan_id = message, field, loan_id

    def result(self) -> Refused:
        return invalid([{"field": self.field, "message": self.message}], self.loan_id)


class BadHeader(Unreadable):
    """A CSV header that cannot be read or is ambiguous: a problem of the whole file."""


class DuplicateKey(ValueError):
    """A JSON object naming one key twice (the json module would keep the last silently)."""


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """object_pairs_hook refusing duplicate keys: https://docs.python.org/3/library/json.html"""
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        raise DuplicateKey(next(k for k, _ in pairs if k in seen or seen.add(k)))  # type: ignore[func-returns-value]
    return found


def text_lines(body: Any, limit: int = MAX_LINE_BYTES) -> Iterator[tuple[int, str | Unreadable]]:
    """(line number, text): a line too long or not UTF-8 is Unreadable, and reading goes on."""
    for number, raw in enumerate(physical_lines(body, limit), start=1):
        if raw is None:
            yield number, Unreadable(f"line longer than {limit} bytes")
            continue
        try:  # a byte order mark may open the first line
            yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as err:
            yield number, Unreadable(f"not valid UTF-8 (byte {err.start + 1} of the line)")


def rows_of(key: str, lines: Iterable[tuple[int, str | Unreadable]]) -> Iterator[tuple[int, Any]]:
    """(line number, raw application or Unreadable) for each non-blank data line."""
    if key.lower().endswith(".csv"):
        yield from csv_rows(lines)
        return
    for number, line in lines:
        if isinstance(line, Unreadable):
            yield number, line
        elif line.strip():
            yield number, json_row(line)


# built once: json.loads with a hook builds a new decoder for every line (half a row's parsing)
JSON_ROW = json.JSONDecoder(object_pairs_hook=unique_keys)


def json_row(line: str) -> Any:
    """The line's value; a duplicate key is INVALID naming it (which of the two values is meant
    cannot be known), and so is a number of more digits than Python converts (4,300:
    https://docs.python.org/3/library/stdtypes.html#int-max-str-digits)."""
    try:
        return JSON_ROW.decode(line)
    except DuplicateKey as dup:
        return Unreadable("is given twice", field=str(dup)[:64])
    except ValueError as err:
        if "digits" in str(err):
            return Unreadable("a number of over 4,300 digits")
        return Unreadable("not valid JSON")
    except RecursionError:  # "[[[[..." nested past Python's limit
        return Unreadable("not valid JSON (nested too deeply)")


def csv_rows(lines: Iterable[tuple[int, str | Unreadable]]) -> Iterator[tuple[int, Any]]:
    """One record per line: a quote left open is that row's error, never a swallowed file.

    A header that cannot be read or names a column twice is yielded once as a BadHeader (the
    file's problem), then every data line is INVALID with its message.
    """
    header: list[str] | BadHeader | None = None
    for number, line in lines:
        if isinstance(line, str) and not line.strip():
            continue
        cells = line if isinstance(line, Unreadable) else csv_cells(line)
        if header is None:
            header = csv_header(number, cells)
            if isinstance(header, BadHeader):
                yield number, header
        elif isinstance(header, BadHeader):
            yield number, Unreadable(header.message)
        elif isinstance(cells, Unreadable):
            yield number, cells
        elif len(cells) > len(header):
            row = dict(zip(header, cells, strict=False))
            yield (
                number,
                Unreadable(
                    f"{len(cells)} cells; the header has {len(header)}",
                    field=f"column {len(header) + 1}",
                    loan_id=row.get("loanId"),
                ),
            )
        else:
            yield number, from_csv(dict(zip(header, cells, strict=False)))


def csv_header(number: int, cells: list[str] | Unreadable) -> list[str] | BadHeader:
    """The column names, or why the file cannot be read: an unreadable header or a column named
    twice (which of its cells is meant cannot be known)."""
    if isinstance(cells, Unreadable):
        return BadHeader(f"the CSV header (line {number}) is unreadable: {cells.message}")
    named = [c for c in cells if c]
    twice = sorted({c for c in named if named.count(c) > 1})
    if twice:
        return BadHeader(f"the CSV header (line {number}) names {', '.join(twice)} twice")
    return cells


def csv_cells(line: str) -> list[str] | Unreadable:
    """The line's cells. A line with no quote and no line end (nearly every line of an export)
    holds nothing else the csv module treats specially in its default dialect, so its cells are
    the text between its commas, got without building a reader (a property test holds the two
    equal on any text): https://docs.python.org/3/library/csv.html#dialects-and-formatting-parameters"""
    if (
        line
        and '"' not in line
        and "\r" not in line
        and "\n" not in line
        and len(line) <= csv.field_size_limit()
    ):
        return line.split(",")
    return csv_cells_read(line)


def csv_cells_read(line: str) -> list[str] | Unreadable:
    """The line's cells as the csv module reads them, or why it cannot."""
    try:
        return next(csv.reader([line], strict=True))
    except csv.Error as err:
        return Unreadable(f"not a valid CSV row ({err}); a quoted field may not span lines")


# a numeric column's name -> whether it takes whole numbers only
WHOLE_NUMBERS = {field: kind == "integer" for field, (kind, *_) in NUMBERS.items()}


def from_csv(raw: dict[str, str]) -> dict[str, Any]:
    """CSV has no types: numeric columns are parsed, empty cells are missing, junk stays junk.

    A cell of ASCII digits only (most numeric cells of an export) is a CSV_NUMBER without
    running the pattern: `isdigit` alone would also pass other scripts' digits, which the
    pattern refuses (a property test holds the two equal)."""
    app: dict[str, Any] = {}
    for name, text in raw.items():
        if not text:
            continue
        whole = WHOLE_NUMBERS.get(name)
        if whole is None or not ((text.isdigit() and text.isascii()) or CSV_NUMBER.fullmatch(text)):
            app[name] = text
            continue
        number = float(text)
        app[name] = int(number) if whole and number.is_integer() else number
    return app


Lined = list[tuple[int, Result]]  # (line number, answer) of a batch file's rows


class InOrder:
    """A batch file's chunks recorded one after the other, in file order, on one thread, while
    the caller reads and decides the next chunk: the function's own work no longer waits for
    each chunk's Data API call (the database's time per row, in series before), and the
    statements reach Aurora in the same order as ever, so which row of a loan id is stored first
    is unchanged. At most one chunk is in flight: a chunk's answers are taken (its failure
    raised) before the next is sent, so nothing is written after a chunk that failed."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.pending: tuple[Future[list[Result]], list[int], Lined] | None = None

    def __enter__(self) -> InOrder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True)  # a chunk in flight ends before the handler answers

    def send(self, entries: list[Entry], lines: list[int], held: Lined) -> Lined:
        """Send a chunk (its entries, their line numbers, the problem rows held with it); the
        answers of the chunk sent before it, in line order."""
        answered = self.settle()
        self.pending = (self.pool.submit(record_chunk, entries, self.source), lines, held)
        return answered

    def settle(self) -> Lined:
        """The answers of the chunk in flight (when there is one), in line order."""
        if self.pending is None:
            return []
        future, lines, held = self.pending
        self.pending = None
        answered = zip(lines, future.result(), strict=True)
        return sorted([*answered, *held], key=lambda pair: pair[0])


def report_key(key: str) -> str:
    """reports/<name>.report.json, or a digest name when that would pass S3's key length."""
    name = "reports/" + key.removeprefix("incoming/") + ".report.json"
    if len(name.encode()) <= S3_KEY_BYTES:
        return name
    return f"reports/long-keys/{hashlib.sha256(key.encode()).hexdigest()}.report.json"


def handle_batch_file(bucket: str, key: str) -> BatchAnswer | Ignored:
    """Stream one batch file: byte-sized chunks to Aurora, problem rows to a spooled report."""
    if not key.startswith("incoming/"):
        logger.warning("ignored object outside incoming/", extra={"key": key})
        return {"source": key, "ignored": True}
    s3, limits, source = s3_client(), thresholds(), f"s3://{bucket}/{key}"
    limit = int(os.environ.get("MAX_LINE_BYTES", MAX_LINE_BYTES))
    counts: Counter[str] = Counter()
    chunker, lines_of_chunk = Chunker(source), list[int]()
    held: list[tuple[int, Result]] = []  # problem rows met while the chunk fills
    file_problem: str | None = None
    with tempfile.TemporaryFile() as report, InOrder(source) as recorder:
        report.write(b'{"problems": [')
        separator = b""

        def note(line: int, result: Result) -> None:
            nonlocal separator
            counts[result["decision"]] += 1
            if result["decision"] not in ("APPROVED", "MANUAL_REVIEW"):
                report.write(separator + SORTED.encode({"line": line, **result}).encode())
                separator = b", "

        def flush() -> None:
            """The chunk goes to Aurora; the one before it is noted (answers and the problem
            rows held meanwhile, in line order) as it comes back."""
            for line, answer in recorder.send(chunker.take(), lines_of_chunk[:], held[:]):
                note(line, answer)
            lines_of_chunk.clear()
            held.clear()

        def hold(line: int, result: Result) -> None:
            held.append((line, result))
            if len(held) >= MAX_CHUNK_ROWS:  # a file of problems only: memory stays bounded
                flush()

        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        for line, raw in rows_of(key, text_lines(body, limit)):
            if isinstance(raw, BadHeader):
                file_problem = raw.message
                continue
            if isinstance(raw, Unreadable):
                hold(line, raw.result())
                continue
            clean, result = evaluate(raw, limits)
            if clean is None:
                hold(line, result)
                continue
            entry = Entry(clean, cast(Decided, result))  # evaluate decides what it cleans
            if chunker.full_with(entry):
                flush()
            chunker.add(entry)
            lines_of_chunk.append(line)
        flush()
        for line, answer in recorder.settle():
            note(line, answer)
        summary: Counts = {
            "source": key,
            "rows": sum(counts.values()),
            "summary": dict(counts),
        }
        if file_problem is not None:  # never a silent 0 rows: the report says why
            summary["error"] = file_problem
            logger.error(file_problem)
        report.write(("], " + json.dumps(summary, sort_keys=True)[1:]).encode())
        report.seek(0)
        destination = report_key(key)
        s3.upload_fileobj(
            report, bucket, destination, ExtraArgs={"ContentType": "application/json"}
        )
    logger.info("batch file done", extra={**summary, "report": destination})
    return {**summary, "report": destination}
