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
from concurrent.futures import ThreadPoolExecutor
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal, localcontext
from fractions import Fraction
from functools import cache
from typing import Any
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
RETRYABLE = {
    "DatabaseResumingException",
    "ServiceUnavailableError",
    "InternalServerErrorException",
    "ThrottlingException",
    "TooManyRequestsException",
    "StatementTimeoutException",
}
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
# A table made by an earlier version: case-insensitive ids, ratios up to 10^8, short source.
OUTDATED = """SELECT COUNT(*) FROM information_schema.COLUMNS
 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'loan_decisions' AND (
 (COLUMN_NAME = 'loan_id' AND COLLATION_NAME <> 'utf8mb4_bin')
 OR (COLUMN_NAME IN ('debt_to_income', 'loan_to_value') AND NUMERIC_PRECISION < 20)
 OR (COLUMN_NAME = 'source' AND CHARACTER_MAXIMUM_LENGTH < 1100))"""
# One chunk, one parameter: {"source": ..., "rows": [[id, applicant, type, amount, decision,
# reasons, payment, dti, ltv, sha, result], ...]}. Numbers travel as strings so that the table's
# own strict DECIMAL conversion judges them; a missing LTV or source is "" (NULLIF), not JSON
# null, whose conversion to a string column is not the same on every engine. ORDER BY makes the first of two rows with one id the
# one inserted (https://dev.mysql.com/doc/refman/8.0/en/insert-select.html).
ROW_COLUMNS = """n FOR ORDINALITY,
 id VARCHAR(64) CHARSET utf8mb4 PATH '$[0]' ERROR ON EMPTY,
 applicant VARCHAR(64) CHARSET utf8mb4 PATH '$[1]' ERROR ON EMPTY,
 type VARCHAR(16) CHARSET utf8mb4 PATH '$[2]' ERROR ON EMPTY,
 amount VARCHAR(40) CHARSET utf8mb4 PATH '$[3]' ERROR ON EMPTY,
 decision VARCHAR(16) CHARSET utf8mb4 PATH '$[4]' ERROR ON EMPTY,
 reasons VARCHAR(512) CHARSET utf8mb4 PATH '$[5]' ERROR ON EMPTY,
 payment VARCHAR(40) CHARSET utf8mb4 PATH '$[6]' ERROR ON EMPTY,
 dti VARCHAR(40) CHARSET utf8mb4 PATH '$[7]' ERROR ON EMPTY,
 ltv VARCHAR(40) CHARSET utf8mb4 PATH '$[8]' ERROR ON EMPTY,
 sha VARCHAR(64) CHARSET utf8mb4 PATH '$[9]' ERROR ON EMPTY,
 result VARCHAR(2048) CHARSET utf8mb4 PATH '$[10]' ERROR ON EMPTY"""
INSERT = f"""INSERT INTO loan_decisions (loan_id, applicant_id, loan_type, loan_amount, decision,
 reasons, monthly_payment, debt_to_income, loan_to_value, application_sha256, result_json, source)
 SELECT j.id, j.applicant, j.type, j.amount, j.decision, j.reasons, j.payment, j.dti,
 NULLIF(j.ltv, ''), j.sha, j.result, NULLIF(j.source, '')
 FROM JSON_TABLE(:chunk, '$' COLUMNS (source VARCHAR(1100) CHARSET utf8mb4 PATH '$.source',
 NESTED PATH '$.rows[*]' COLUMNS ({ROW_COLUMNS}))) AS j ORDER BY j.n
 ON DUPLICATE KEY UPDATE loan_decisions.loan_id = loan_decisions.loan_id"""
# Read back only the rows whose stored answer is not the one just computed: a conflict, an answer
# recorded earlier under other rules, or (never expected) a missing row.
READ_BACK = f"""SELECT j.n, d.application_sha256, d.result_json
 FROM JSON_TABLE(:chunk, '$.rows[*]' COLUMNS ({ROW_COLUMNS})) AS j
 LEFT JOIN loan_decisions AS d ON d.loan_id = j.id COLLATE utf8mb4_bin
 WHERE d.loan_id IS NULL OR d.application_sha256 <> j.sha COLLATE utf8mb4_bin
 OR d.result_json <> j.result COLLATE utf8mb4_bin"""
# built once: json.dumps with options builds a new encoder on every call
SORTED = json.JSONEncoder(sort_keys=True)
encode_string: Callable[[str], str] = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]
_table_ready = False


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


def validate(app: Any) -> tuple[dict[str, Any] | None, list[dict[str, str]]]:
    """A normalised application, or None with every bad field named."""
    if not isinstance(app, dict):
        return None, [{"field": "$", "message": "must be a JSON object"}]
    errors = []
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


def payment_in_cents(amount: Decimal, annual_rate_percent: Decimal, months: int) -> Decimal:
    """The payment rounded half up to the cent, exactly: near a half-cent tie (5,334 at 1% over
    one month is 5,338.445) a rate like 1/1200 that Decimal cannot hold exactly could tip the
    rounding, so those rare cases are settled with exact fractions."""
    approx = monthly_payment(amount, annual_rate_percent, months)
    cents = approx.scaleb(2)
    if abs(cents - cents.to_integral_value(ROUND_FLOOR) - Decimal("0.5")) > TIE_MARGIN:
        return to_cents(approx)
    rate = Fraction(annual_rate_percent) / 1200
    if rate == 0:
        exact_payment = Fraction(amount) / months
    else:
        growth = (1 + rate) ** months
        exact_payment = Fraction(amount) * rate * growth / (growth - 1)
    return Decimal(math.floor(exact_payment * 100 + Fraction(1, 2))).scaleb(-2)


def to_ratio(value: Decimal) -> Decimal:
    return value.quantize(BASIS_POINT, ROUND_HALF_UP)


def decide(app: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
    """The decision; ratios are compared as reported (4 places), so 0.95 is never "above" 0.95."""
    loan_type, amount = app["loanType"], exact(app["loanAmount"])
    with localcontext(Context(prec=50)):
        payment = payment_in_cents(amount, exact(app["annualInterestRate"]), app["termMonths"])
        debts = exact(app["monthlyDebtPayments"]) + payment
        dti = to_ratio(debts * 12 / exact(app["annualIncome"]))
        ltv = to_ratio(amount / exact(app["collateralValue"])) if loan_type in SECURED else None
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
            "monthlyPayment": float(payment),
            "debtToIncomeRatio": float(dti),
            "loanToValueRatio": None if ltv is None else float(ltv),
        },
    }


def evaluate(app: Any, limits: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(normalised application or None, result) for one raw application."""
    clean, errors = validate(app)
    if clean is None:
        return None, invalid(errors, app.get("loanId") if isinstance(app, dict) else None)
    return clean, decide(clean, limits)


def invalid(errors: list[dict[str, str]], loan_id: Any = None) -> dict[str, Any]:
    result: dict[str, Any] = {"decision": "INVALID", "errors": errors}
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


def transient(err: ClientError) -> bool:
    error = err.response.get("Error", {})
    code, message = error.get("Code", ""), error.get("Message", "")
    return code in RETRYABLE or "Communications link failure" in message


def authentication_failed(err: ClientError) -> bool:
    """MySQL's 1045 through the Data API. During a password rotation the database takes the new
    password before AWSCURRENT moves to it, and AWS advises retrying across that window:
    https://docs.aws.amazon.com/secretsmanager/latest/userguide/rotation-strategy.html"""
    error = err.response.get("Error", {})
    return error.get("Code") == "BadRequestException" and "Access denied for user" in str(
        error.get("Message", "")
    )


def retry_window(err: ClientError) -> float | None:
    """Seconds in all that an error lasting a known window may be retried, else None.

    A rotation in flight (authentication refused until AWSCURRENT moves) and a paused Aurora
    Serverless v2 cluster resuming ("can take up to 15 seconds", longer after a long pause:
    https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-serverless-v2-auto-pause.html)
    both outlast a handful of quick retries."""
    if authentication_failed(err):
        return env_number("AUTH_RETRY_SECONDS", 90)
    if err.response.get("Error", {}).get("Code") == "DatabaseResumingException":
        return env_number("RESUME_RETRY_SECONDS", 60)
    return None


def with_retries(call: Callable[..., Any], **kwargs: Any) -> Any:
    """Retry transient Data API errors (link failures, throttling) with jittered backoff, at
    most RETRY_ATTEMPTS times; errors with a known window (retry_window) until it has passed."""
    attempts = int(os.environ.get("RETRY_ATTEMPTS", "6"))
    started = time.monotonic()
    attempt = 0
    while True:
        try:
            return call(**kwargs)
        except ClientError as err:
            delay = min(20.0, env_number("RETRY_BASE_SECONDS", 0.5) * 2**attempt)
            delay *= random.uniform(0.5, 1.0)
            window = retry_window(err)
            if window is not None:
                if time.monotonic() + delay > started + window:
                    raise
            elif attempt >= attempts - 1 or not transient(err):
                raise
            logger.warning(
                "transient error, retrying",
                extra={"error": err.response["Error"]["Code"], "attempt": attempt + 1},
            )
            time.sleep(delay)
            attempt += 1


def sql(client: Any, statement: str, **kwargs: Any) -> Any:
    return with_retries(
        client.execute_statement,
        resourceArn=os.environ["DB_CLUSTER_ARN"],
        secretArn=os.environ["DB_SECRET_ARN"],
        database=os.environ.get("DB_NAME", "loans"),
        sql=statement,
        **kwargs,
    )


class OutdatedTable(RuntimeError):
    """The table predates the current column types; an operator migrates it once (README)."""


def ensure_table(client: Any) -> None:
    """Create the table once per execution environment; refuse one of an older version. Its
    migration rebuilds the table (a copying ALTER that blocks writes and outlasts the Data API's
    45-second statement limit on a large table), so it is never run from a cold start."""
    global _table_ready
    if _table_ready:
        return
    sql(client, TABLE)
    if sql(client, OUTDATED)["records"][0][0].get("longValue", 0):
        raise OutdatedTable(
            "loan_decisions has the column types of an earlier version (case-insensitive ids): "
            "run the one-time migration in the README, section 'Upgrading the decisions table'"
        )
    _table_ready = True


def result_text(result: dict[str, Any]) -> str:
    """json.dumps(result, sort_keys=True) of a decision, written out (a test holds them equal)."""
    metrics, ltv = result["metrics"], result["metrics"]["loanToValueRatio"]
    reasons = ", ".join(f'"{code}"' for code in result["reasons"])
    return (
        f'{{"decision": "{result["decision"]}", "loanId": "{result["loanId"]}", "metrics": '
        f'{{"debtToIncomeRatio": {metrics["debtToIncomeRatio"]!r}, "loanToValueRatio": '
        f'{"null" if ltv is None else repr(ltv)}, "monthlyPayment": {metrics["monthlyPayment"]!r}}}, '
        f'"reasons": [{reasons}]}}'
    )


def fingerprint(app: dict[str, Any]) -> str:
    """sha256 of json.dumps(app, sort_keys=True) of a normalised application, written out (the
    same text as ever, so rows stored by earlier versions still match; a test holds them equal)."""
    collateral = app.get("collateralValue")
    text = (
        f'{{"annualIncome": {app["annualIncome"]!r}, "annualInterestRate": '
        f'{app["annualInterestRate"]!r}, "applicantId": "{app["applicantId"]}", '
        + ("" if collateral is None else f'"collateralValue": {collateral!r}, ')
        + f'"creditScore": {app["creditScore"]!r}, "loanAmount": {app["loanAmount"]!r}, '
        f'"loanId": "{app["loanId"]}", "loanType": "{app["loanType"]}", "monthlyDebtPayments": '
        f'{app["monthlyDebtPayments"]!r}, "termMonths": {app["termMonths"]!r}}}'
    )
    return hashlib.sha256(text.encode()).hexdigest()


class Entry:
    """A decided application on its way to Aurora: its row of the chunk document, pre-encoded."""

    __slots__ = ("app", "request_bytes", "result", "text")

    def __init__(self, app: dict[str, Any], result: dict[str, Any]) -> None:
        """Formatted by hand: ids, codes and numbers need no escaping (the schema saw to it), and
        this runs for every row of a migration (issue 12: the function's own cost per row)."""
        self.app, self.result = app, result
        metrics = result["metrics"]
        payment, dti, ltv = (
            repr(metrics["monthlyPayment"]),
            repr(metrics["debtToIncomeRatio"]),
            metrics["loanToValueRatio"],
        )
        stored = result_text(result)
        self.text = (
            f'["{app["loanId"]}","{app["applicantId"]}","{app["loanType"]}",'
            f'"{to_cents(exact(app["loanAmount"]))}","{result["decision"]}",'
            f'"{",".join(result["reasons"])}","{payment}","{dti}",'
            f'"{"" if ltv is None else repr(ltv)}",'
            f'"{fingerprint(app)}",{encode_string(stored)}]'
        )
        # inside the request the document is a JSON string: each quote and backslash doubles
        self.request_bytes = len(self.text) + self.text.count('"') + self.text.count("\\") + 1


class Chunker:
    """Groups entries into chunks that keep every Data API request and response in its limits."""

    def __init__(self, source: str | None) -> None:
        self.source, self.entries, self.request_bytes = source, list[Entry](), 0
        self.max_rows = min(MAX_CHUNK_ROWS, int(os.environ.get("BATCH_SIZE", MAX_CHUNK_ROWS)))
        self.base_bytes = 64 + 2 * len(json.dumps(source))

    def full_with(self, entry: Entry) -> bool:
        return bool(self.entries) and (
            len(self.entries) >= self.max_rows
            or self.base_bytes + self.request_bytes + entry.request_bytes > REQUEST_BUDGET
        )

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.request_bytes += entry.request_bytes

    def take(self) -> list[Entry]:
        entries, self.entries, self.request_bytes = self.entries, [], 0
        return entries


def record_chunk(entries: list[Entry], source: str | None) -> list[dict[str, Any]]:
    """Insert a chunk (a loan id already stored is left alone), then answer from what is stored."""
    if not entries:
        return []
    client = rds_data_client()
    ensure_table(client)
    rows = ",".join(e.text for e in entries)
    document = f'{{"source":{json.dumps(source or "")},"rows":[{rows}]}}'
    chunk = [{"name": "chunk", "value": {"stringValue": document}}]
    sql(client, INSERT, parameters=chunk)
    answers = [e.result for e in entries]
    for n, sha, stored in sql(client, READ_BACK, parameters=chunk)["records"]:
        entry = entries[n["longValue"] - 1]
        if stored.get("isNull"):
            raise RuntimeError(f"loan {entry.app['loanId']} was not stored; process the file again")
        answers[n["longValue"] - 1] = answer(entry, sha["stringValue"], stored["stringValue"])
    return answers


def answer(entry: Entry, stored_sha: str, stored_json: str) -> dict[str, Any]:
    """The stored answer for the same application, else a CONFLICT naming what is recorded."""
    stored = json.loads(stored_json)
    if stored_sha == fingerprint(entry.app):
        return dict(stored)
    return {
        "loanId": entry.app["loanId"],
        "decision": "CONFLICT",
        "errors": [{"field": "loanId", "message": "already recorded with different content"}],
        "recorded": stored["decision"],
    }


def log_result(result: dict[str, Any]) -> None:
    """Ids, decisions and codes only: no applicant data reaches the logs."""
    logger.info(
        "loan decision", extra={k: result.get(k) for k in ("loanId", "decision", "reasons")}
    )


# --- entry points -----------------------------------------------------------------------------


def handle_applications(apps: list[Any]) -> list[dict[str, Any]]:
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
        entry = Entry(clean, result)
        if chunker.full_with(entry):
            flush()
        chunker.add(entry)
        pending.append(position)
    flush()
    for result in results:
        log_result(result)
    write_documents(results)
    return results


def write_documents(results: list[dict[str, Any]]) -> None:
    """validations/<loanId>.json for each decision, written in parallel (a list may hold 10,000)."""
    bucket = os.environ.get("DOCUMENTS_BUCKET")
    decided = [r for r in results if r["decision"] in ("APPROVED", "MANUAL_REVIEW", "REJECTED")]
    if not bucket or not decided:
        return
    s3 = s3_client()

    def put(result: dict[str, Any]) -> None:
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


def handler(event: Any, context: Any) -> dict[str, Any]:
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


def handle_record(index: int, record: Any) -> dict[str, Any]:
    """One record of an S3 event; a malformed one is answered, not retried (it cannot heal)."""
    where = s3_object(record)
    if isinstance(where, str):
        message = (
            f"S3 event record {index} is malformed: {where}; send the ObjectCreated event S3 sends"
        )
        logger.error(message)
        return {"error": message}
    return handle_batch_file(*where)


def physical_lines(body: Any, limit: int, chunk_size: int = 1 << 20) -> Iterator[bytes | None]:
    """Each line's bytes without its newline, or None for a line longer than `limit` bytes.

    Linear in the file: a line is joined once, when it ends; a line past the limit is dropped as
    it streams, so memory stays under `limit` + one read whatever the file holds.
    """
    parts: list[bytes] = []
    size, too_long = 0, False
    for chunk in iter(lambda: body.read(chunk_size), b""):
        *complete, rest = chunk.split(b"\n")
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
    """A line of a batch file that cannot become an application, and why."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


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


def json_row(line: str) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested past Python's limit
        return Unreadable("not valid JSON")


def csv_rows(lines: Iterable[tuple[int, str | Unreadable]]) -> Iterator[tuple[int, Any]]:
    """One record per line: a quote left open is that row's error, never a swallowed file."""
    header: list[str] | Unreadable | None = None
    for number, line in lines:
        if isinstance(line, str) and not line.strip():
            continue
        cells = line if isinstance(line, Unreadable) else csv_cells(line)
        if header is None:
            header = cells
            if isinstance(header, Unreadable):
                header = Unreadable(
                    f"the CSV header (line {number}) is unreadable: {header.message}"
                )
        elif isinstance(header, Unreadable):
            yield number, header
        elif isinstance(cells, Unreadable):
            yield number, cells
        else:
            yield number, from_csv(dict(zip(header, cells, strict=False)))


def csv_cells(line: str) -> list[str] | Unreadable:
    try:
        return next(csv.reader([line], strict=True))
    except csv.Error as err:
        return Unreadable(f"not a valid CSV row ({err}); a quoted field may not span lines")


def from_csv(raw: dict[str, str]) -> dict[str, Any]:
    """CSV has no types: numeric columns are parsed, empty cells are missing, junk stays junk."""
    app: dict[str, Any] = {}
    for name, text in raw.items():
        if text == "":
            continue
        if name in NUMBERS and CSV_NUMBER.fullmatch(text):
            number = float(text)
            integer = NUMBERS[name][0] == "integer" and number.is_integer()
            app[name] = int(number) if integer else number
        else:
            app[name] = text
    return app


def report_key(key: str) -> str:
    """reports/<name>.report.json, or a digest name when that would pass S3's key length."""
    name = "reports/" + key.removeprefix("incoming/") + ".report.json"
    if len(name.encode()) <= S3_KEY_BYTES:
        return name
    return f"reports/long-keys/{hashlib.sha256(key.encode()).hexdigest()}.report.json"


def handle_batch_file(bucket: str, key: str) -> dict[str, Any]:
    """Stream one batch file: byte-sized chunks to Aurora, problem rows to a spooled report."""
    if not key.startswith("incoming/"):
        logger.warning("ignored object outside incoming/", extra={"key": key})
        return {"source": key, "ignored": True}
    s3, limits, source = s3_client(), thresholds(), f"s3://{bucket}/{key}"
    limit = int(os.environ.get("MAX_LINE_BYTES", MAX_LINE_BYTES))
    counts: Counter[str] = Counter()
    chunker, lines_of_chunk = Chunker(source), list[int]()
    with tempfile.TemporaryFile() as report:
        report.write(b'{"problems": [')
        separator = b""

        def note(line: int, result: dict[str, Any]) -> None:
            nonlocal separator
            counts[result["decision"]] += 1
            if result["decision"] not in ("APPROVED", "MANUAL_REVIEW"):
                report.write(
                    separator + json.dumps({"line": line, **result}, sort_keys=True).encode()
                )
                separator = b", "

        def flush() -> None:
            for line, answer in zip(
                lines_of_chunk, record_chunk(chunker.take(), source), strict=True
            ):
                note(line, answer)
            lines_of_chunk.clear()

        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        for line, raw in rows_of(key, text_lines(body, limit)):
            if isinstance(raw, Unreadable):
                note(line, invalid([{"field": "$", "message": raw.message}]))
                continue
            clean, result = evaluate(raw, limits)
            if clean is None:
                note(line, result)
                continue
            entry = Entry(clean, result)
            if chunker.full_with(entry):
                flush()
            chunker.add(entry)
            lines_of_chunk.append(line)
        flush()
        summary = {"source": key, "rows": sum(counts.values()), "summary": dict(counts)}
        report.write(("], " + json.dumps(summary, sort_keys=True)[1:]).encode())
        report.seek(0)
        destination = report_key(key)
        s3.upload_fileobj(
            report, bucket, destination, ExtraArgs={"ContentType": "application/json"}
        )
    logger.info("batch file done", extra={**summary, "report": destination})
    return {**summary, "report": destination}
