"""Validate loan applications, decide, record each decision in Aurora, keep documents in S3.

Input: one application (a JSON object), a list of them, or an S3 ObjectCreated event for a
migration batch file (JSON Lines or CSV) under incoming/. Bad input never raises: it becomes an
INVALID result naming each bad field. Decisions go to Aurora through the RDS Data API (D1),
idempotently: the same application twice is one row and the same answer; the same loan id with
other content is a CONFLICT and the stored row stays. Batch files are streamed and written in
bounded Data API batches (D6), and produce one report under reports/.
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
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from typing import Any
from urllib.parse import unquote_plus

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

logger = logging.getLogger()
CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"})

LOAN_TYPES = ("personal", "auto", "mortgage", "business")
SECURED = ("mortgage", "auto")
ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# field: (kind, minimum, maximum, minimum exclusive)
NUMBERS = {
    "loanAmount": ("number", 0, 1e9, True),
    "termMonths": ("integer", 1, 480, False),
    "annualInterestRate": ("number", 0, 100, False),
    "creditScore": ("integer", 300, 850, False),
    "annualIncome": ("number", 0, 1e10, True),
    "monthlyDebtPayments": ("number", 0, 1e9, False),
    "collateralValue": ("number", 0, 1e10, True),
}
DEFAULT_TERMS = {
    "personal": "12,24,36,48,60",
    "auto": "24,36,48,60,72,84",
    "mortgage": "120,180,240,300,360",
    "business": "12,24,36,48,60,84,120",
}
DEFAULT_MAX_AMOUNT = {"personal": 50000, "auto": 150000, "mortgage": 2000000, "business": 500000}
RETRYABLE = {
    "DatabaseResumingException",
    "ServiceUnavailableError",
    "InternalServerErrorException",
    "ThrottlingException",
    "TooManyRequestsException",
    "StatementTimeoutException",
}
TABLE = """CREATE TABLE IF NOT EXISTS loan_decisions (
 loan_id VARCHAR(64) NOT NULL PRIMARY KEY,
 applicant_id VARCHAR(64) NOT NULL,
 loan_type VARCHAR(16) NOT NULL,
 loan_amount DECIMAL(15,2) NOT NULL,
 decision VARCHAR(16) NOT NULL,
 reasons VARCHAR(512) NOT NULL,
 monthly_payment DECIMAL(15,2) NOT NULL,
 debt_to_income DECIMAL(12,4) NOT NULL,
 loan_to_value DECIMAL(12,4) NULL,
 application_sha256 CHAR(64) NOT NULL,
 result_json TEXT NOT NULL,
 source VARCHAR(1024) NULL,
 decided_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""
INSERT = (
    "INSERT INTO loan_decisions (loan_id, applicant_id, loan_type, loan_amount, decision, reasons,"
    " monthly_payment, debt_to_income, loan_to_value, application_sha256, result_json, source)"
    " VALUES (:loan_id, :applicant_id, :loan_type, :loan_amount, :decision, :reasons,"
    " :monthly_payment, :debt_to_income, :loan_to_value, :sha, :result, :source)"
    " ON DUPLICATE KEY UPDATE loan_id = loan_id"
)
_table_ready = False


def env_number(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def thresholds() -> dict[str, Any]:
    """Rule thresholds from the environment; the defaults are documented in the README."""
    return {
        "min_amount": env_number("MIN_LOAN_AMOUNT", 1000),
        "max_amount": {
            t: env_number(f"MAX_AMOUNT_{t.upper()}", a) for t, a in DEFAULT_MAX_AMOUNT.items()
        },
        "terms": {
            t: {int(x) for x in os.environ.get(f"TERMS_{t.upper()}", d).split(",")}
            for t, d in DEFAULT_TERMS.items()
        },
        "min_score": env_number("MIN_CREDIT_SCORE", 580),
        "review_score": env_number("REVIEW_CREDIT_SCORE", 660),
        "max_dti": env_number("MAX_DTI", 0.43),
        "review_dti": env_number("REVIEW_DTI", 0.36),
        "max_ltv": env_number("MAX_LTV", 0.95),
        "review_ltv": env_number("REVIEW_LTV", 0.80),
    }


# --- schema ---------------------------------------------------------------------------------


def check_number(field: str, value: Any) -> str | None:
    kind, low, high, exclusive = NUMBERS[field]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a{'n integer' if kind == 'integer' else ' number'}"
    if not math.isfinite(value):
        return "must be a finite number"
    if kind == "integer" and value != int(value):
        return "must be a whole number"
    if value < low or (exclusive and value == low) or value > high:
        return f"must be {'>' if exclusive else '>='} {low} and <= {high:g}"
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
    if loan_type not in LOAN_TYPES:
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
        if app.get(field) is not None:
            clean[field] = int(app[field]) if kind == "integer" else float(app[field])
    return clean, []


# --- rules ----------------------------------------------------------------------------------


def cents(value: float) -> float:
    return float(Decimal(repr(value)).quantize(Decimal("0.01"), ROUND_HALF_UP))


def ratio(value: float) -> float:
    return float(Decimal(repr(value)).quantize(Decimal("0.0001"), ROUND_HALF_UP))


def monthly_payment(amount: float, annual_rate_percent: float, months: int) -> float:
    """Standard amortisation: P*r / (1 - (1+r)^-n), or P/n at 0%."""
    rate = annual_rate_percent / 100 / 12
    if rate == 0:
        return amount / months
    return amount * rate / (1 - (1 + rate) ** -months)


def decide(app: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
    loan_type, amount = app["loanType"], app["loanAmount"]
    payment = monthly_payment(amount, app["annualInterestRate"], app["termMonths"])
    dti = (app["monthlyDebtPayments"] + payment) / (app["annualIncome"] / 12)
    ltv = amount / app["collateralValue"] if loan_type in SECURED else None
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
            "monthlyPayment": cents(payment),
            "debtToIncomeRatio": ratio(dti),
            "loanToValueRatio": None if ltv is None else ratio(ltv),
        },
    }


def evaluate(app: Any, limits: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(normalised application or None, result) for one raw application."""
    clean, errors = validate(app)
    if clean is None:
        result: dict[str, Any] = {"decision": "INVALID", "errors": errors}
        loan_id = app.get("loanId") if isinstance(app, dict) else None
        if isinstance(loan_id, str) and ID.fullmatch(loan_id):
            result = {"loanId": loan_id, **result}
        return None, result
    return clean, decide(clean, limits)


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


def with_retries(call: Callable[..., Any], **kwargs: Any) -> Any:
    """Retry transient Data API errors (cluster resuming, link failures) with jittered backoff;
    an authentication failure (a rotation in flight) for at most AUTH_RETRY_SECONDS in all."""
    attempts = int(os.environ.get("RETRY_ATTEMPTS", "6"))
    auth_deadline = time.monotonic() + env_number("AUTH_RETRY_SECONDS", 90)
    attempt = 0
    while True:
        try:
            return call(**kwargs)
        except ClientError as err:
            delay = min(20.0, env_number("RETRY_BASE_SECONDS", 0.5) * 2**attempt)
            delay *= random.uniform(0.5, 1.0)
            if authentication_failed(err):
                if time.monotonic() + delay > auth_deadline:
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
        client.execute_statement
        if "parameterSets" not in kwargs
        else client.batch_execute_statement,
        resourceArn=os.environ["DB_CLUSTER_ARN"],
        secretArn=os.environ["DB_SECRET_ARN"],
        database=os.environ.get("DB_NAME", "loans"),
        sql=statement,
        **kwargs,
    )


def value(v: Any) -> dict[str, Any]:
    if v is None:
        return {"isNull": True}
    if isinstance(v, float):
        return {"stringValue": repr(v)}
    return {"stringValue": str(v)}


def fingerprint(app: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(app, sort_keys=True).encode()).hexdigest()


def row(app: dict[str, Any], result: dict[str, Any], source: str | None) -> list[dict[str, Any]]:
    metrics = result["metrics"]
    fields = {
        "loan_id": app["loanId"],
        "applicant_id": app["applicantId"],
        "loan_type": app["loanType"],
        "loan_amount": cents(app["loanAmount"]),
        "decision": result["decision"],
        "reasons": ",".join(result["reasons"]),
        "monthly_payment": metrics["monthlyPayment"],
        "debt_to_income": metrics["debtToIncomeRatio"],
        "loan_to_value": metrics["loanToValueRatio"],
        "sha": fingerprint(app),
        "result": json.dumps(result, sort_keys=True),
        "source": source,
    }
    decimal = {"loan_amount", "monthly_payment", "debt_to_income", "loan_to_value"}
    return [
        {
            "name": k,
            "value": value(v),
            **({"typeHint": "DECIMAL"} if k in decimal and v is not None else {}),
        }
        for k, v in fields.items()
    ]


def record(
    pairs: list[tuple[dict[str, Any], dict[str, Any]]], source: str | None
) -> list[dict[str, Any]]:
    """Insert decisions (duplicates are no-ops), then answer each from what is stored."""
    global _table_ready
    if not pairs:
        return []
    client = rds_data_client()
    if not _table_ready:
        sql(client, TABLE)
        _table_ready = True
    sql(client, INSERT, parameterSets=[row(app, result, source) for app, result in pairs])
    ids = sorted({app["loanId"] for app, _ in pairs})
    names = ", ".join(f":id{i}" for i in range(len(ids)))
    found = sql(
        client,
        f"SELECT loan_id, application_sha256, result_json FROM loan_decisions WHERE loan_id IN ({names})",
        parameters=[{"name": f"id{i}", "value": {"stringValue": v}} for i, v in enumerate(ids)],
    )["records"]
    stored = {r[0]["stringValue"]: (r[1]["stringValue"], r[2]["stringValue"]) for r in found}
    answers = []
    for app, _ in pairs:
        sha, stored_json = stored[app["loanId"]]
        if sha == fingerprint(app):
            answers.append(json.loads(stored_json))
        else:
            answers.append(
                {
                    "loanId": app["loanId"],
                    "decision": "CONFLICT",
                    "errors": [
                        {"field": "loanId", "message": "already recorded with different content"}
                    ],
                    "recorded": json.loads(stored_json)["decision"],
                }
            )
    return answers


def log_result(result: dict[str, Any]) -> None:
    """Ids, decisions and codes only: no applicant data reaches the logs."""
    logger.info(
        "loan decision", extra={k: result.get(k) for k in ("loanId", "decision", "reasons")}
    )


# --- entry points -----------------------------------------------------------------------------


def handle_applications(apps: list[Any]) -> list[dict[str, Any]]:
    limits = thresholds()
    evaluated = [evaluate(app, limits) for app in apps]
    valid = [(clean, result) for clean, result in evaluated if clean is not None]
    answers = iter(record(valid, None))
    results = [next(answers) if clean is not None else result for clean, result in evaluated]
    bucket = os.environ.get("DOCUMENTS_BUCKET")
    s3 = s3_client() if bucket else None
    for result in results:
        log_result(result)
        if s3 and result["decision"] in ("APPROVED", "MANUAL_REVIEW", "REJECTED"):
            s3.put_object(
                Bucket=bucket,
                Key=f"validations/{result['loanId']}.json",
                Body=json.dumps(result, sort_keys=True).encode(),
                ContentType="application/json",
            )
    return results


def is_s3_event(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return (
        isinstance(records, list)
        and bool(records)
        and all(isinstance(r, dict) and "s3" in r for r in records)
    )


def handler(event: Any, context: Any) -> dict[str, Any]:
    if is_s3_event(event):
        return {"reports": [handle_batch_file(r["s3"]) for r in event["Records"]]}
    if isinstance(event, list):
        results = handle_applications(event)
        return {"results": results, "summary": dict(Counter(r["decision"] for r in results))}
    if isinstance(event, dict):
        return handle_applications([event])[0]
    return {
        "decision": "INVALID",
        "errors": [
            {
                "field": "$",
                "message": "expected an application object, a list of them, or an S3 event",
            }
        ],
    }


# --- batch files ------------------------------------------------------------------------------


def text_lines(body: Any, chunk_size: int = 1 << 16) -> Iterator[str]:
    """Decoded lines (ends kept, for CSV's quoted newlines), read in fixed-size chunks.

    Each line is decoded on its own, so damage late in a file spares the lines before it.
    """
    pending, encoding = b"", "utf-8-sig"  # a byte order mark may open the first line
    for chunk in iter(lambda: body.read(chunk_size), b""):
        *complete, pending = (pending + chunk).split(b"\n")
        for raw in complete:
            yield raw.decode(encoding) + "\n"
            encoding = "utf-8"
    if pending:
        yield pending.decode(encoding) + "\n"


def rows_of(key: str, lines: Iterable[str]) -> Iterator[tuple[int, Any]]:
    """(line number, raw application) for each record; an unparseable JSON line yields None."""
    if key.lower().endswith(".csv"):
        reader = csv.DictReader(lines)
        for raw in reader:
            yield reader.line_num, from_csv(raw)
        return
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except ValueError:
                yield number, None


def from_csv(raw: dict[str | None, Any]) -> dict[str, Any]:
    """CSV has no types: numeric columns are parsed, empty cells are missing, junk stays junk."""
    app: dict[str, Any] = {}
    for name, text in raw.items():
        if name is None or text is None or text == "":
            continue
        if name in NUMBERS:
            try:
                number = float(text)
                app[name] = (
                    int(number) if NUMBERS[name][0] == "integer" and number.is_integer() else number
                )
            except ValueError:
                app[name] = text
        else:
            app[name] = text
    return app


def handle_batch_file(s3_event: dict[str, Any]) -> dict[str, Any]:
    """Stream one batch file: bounded chunks to Aurora, problem rows to a spooled report."""
    bucket, key = s3_event["bucket"]["name"], unquote_plus(s3_event["object"]["key"])
    if not key.startswith("incoming/"):
        logger.warning("ignored object outside incoming/", extra={"key": key})
        return {"source": key, "ignored": True}
    s3, limits = s3_client(), thresholds()
    size = int(os.environ.get("BATCH_SIZE", "200"))
    counts: Counter[str] = Counter()
    chunk: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
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
            answers = record([(app, result) for _, app, result in chunk], f"s3://{bucket}/{key}")
            for (line, _, _), answer in zip(chunk, answers, strict=True):
                note(line, answer)
            chunk.clear()

        error = None
        lines = text_lines(s3.get_object(Bucket=bucket, Key=key)["Body"])
        try:
            for line, raw in rows_of(key, lines):
                if raw is None:
                    note(
                        line,
                        {
                            "decision": "INVALID",
                            "errors": [{"field": "$", "message": "not valid JSON"}],
                        },
                    )
                    continue
                clean, result = evaluate(raw, limits)
                if clean is None:
                    note(line, result)
                    continue
                chunk.append((line, clean, result))
                if len(chunk) >= size:
                    flush()
        except (UnicodeDecodeError, csv.Error) as err:
            error = f"file could not be read past this point: {err}"
        flush()
        summary = {
            "source": key,
            "rows": sum(counts.values()),
            "summary": dict(counts),
            "error": error,
        }
        report.write(("], " + json.dumps(summary, sort_keys=True)[1:]).encode())
        report.seek(0)
        report_key = "reports/" + key.removeprefix("incoming/") + ".report.json"
        s3.upload_fileobj(report, bucket, report_key, ExtraArgs={"ContentType": "application/json"})
    logger.info("batch file done", extra={**summary, "report": report_key})
    return {**summary, "report": report_key}
