"""`loanstack correct`: supersede a recorded decision explicitly, keeping it in a history table.

A decision is never overwritten silently (SPEC D8): the validation function answers CONFLICT to
the same loan id with other content, forever. An operator who knows the recorded decision is
wrong (a swapped export, say) re-decides the loan here, saying who and why: the recorded row
moves to `loan_decision_history` with them, then the row takes the new application's decision.
The decision is the function's own (its module, its deployed thresholds, as `verify` judges);
this runs in the tool, not in the function, so the function's template stays in its size budget
and only operators holding Data API access can correct.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from loanstack.errors import DeployError, UsageError
from loanstack.ops.verify import Database, validation

HISTORY = """CREATE TABLE IF NOT EXISTS loan_decision_history (
 seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
 loan_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
 application_sha256 CHAR(64) NOT NULL,
 decision VARCHAR(16) NOT NULL,
 result_json TEXT NOT NULL,
 source VARCHAR(1100) NULL,
 decided_at TIMESTAMP(3) NOT NULL,
 superseded_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
 superseded_by_sha256 CHAR(64) NOT NULL,
 corrected_by VARCHAR(128) NOT NULL,
 reason VARCHAR(512) NOT NULL,
 KEY loan (loan_id, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""
CURRENT = "SELECT application_sha256 FROM loan_decisions WHERE loan_id = :id"
KEEP = """INSERT INTO loan_decision_history (loan_id, application_sha256, decision, result_json,
 source, decided_at, superseded_by_sha256, corrected_by, reason)
 SELECT loan_id, application_sha256, decision, result_json, source, decided_at, :sha, :by, :reason
 FROM loan_decisions WHERE loan_id = :id AND application_sha256 = :old"""
# Only the row whose content the history row kept is replaced: a correction racing this one
# leaves it updating nothing, and it says so.
SUPERSEDE = """UPDATE loan_decisions SET applicant_id = :applicant, loan_type = :type,
 loan_amount = :amount, decision = :decision, reasons = :reasons, monthly_payment = :payment,
 debt_to_income = :dti, loan_to_value = NULLIF(:ltv, ''), application_sha256 = :sha,
 result_json = :result, source = NULL, decided_at = CURRENT_TIMESTAMP(3)
 WHERE loan_id = :id AND application_sha256 = :old"""
# The history row of a correction that superseded nothing (the newest such: not every engine's
# Data API returns generated ids).
FORGET = """DELETE FROM loan_decision_history WHERE loan_id = :id AND application_sha256 = :old
 AND superseded_by_sha256 = :sha ORDER BY seq DESC LIMIT 1"""
LONGEST = {"by": 128, "reason": 512}


class Superseded(DeployError):
    """The row changed between reading and replacing it: nothing was corrected."""


def parameters(**values: str) -> list[dict[str, Any]]:
    return [{"name": k, "value": {"stringValue": v}} for k, v in values.items()]


def check_who_and_why(by: str, reason: str) -> None:
    """Both required: a supersession nobody can account for is not a correction."""
    for name, value in (("by", by), ("reason", reason)):
        if not value.strip() or len(value) > LONGEST[name]:
            raise UsageError(f"--{name} must be 1-{LONGEST[name]} characters")


def correct(
    database: Database, app: Any, by: str, reason: str, limits: dict[str, Any]
) -> dict[str, Any]:
    """The new decision with "supersedes" (the fingerprint moved to the history), or the
    stored answer when there is nothing to supersede (the same application, or none recorded:
    then the function records it as it would).

    The Data API runs each statement on its own here (no transaction: the emulator has none),
    so the order makes an interruption safe to repeat: the history row is written first, and
    removed again when the row changed meanwhile.
    https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/API_ExecuteStatement.html
    """
    check_who_and_why(by, reason)
    fn = validation()
    clean, result = fn.evaluate(app, limits)
    if clean is None:
        why = "; ".join(f"{e['field']}: {e['message']}" for e in result["errors"])
        raise UsageError(f"the application is INVALID: {why}")
    row = json.loads(fn.Entry(clean, result).text)
    run(database, HISTORY)
    try:
        found = run(database, CURRENT, id=clean["loanId"]).get("records", [])
    except ClientError as exc:  # no decisions table yet: nothing recorded
        if "doesn't exist" not in str(exc):
            raise DeployError(f"the Data API failed: {exc}") from exc
        found = []
    if not found:
        raise UsageError(f"nothing is recorded for loan {clean['loanId']}: invoke it instead")
    old = found[0][0]["stringValue"]
    if old == row[9]:
        return {**result, "supersedes": None}  # this very application is what is recorded
    kept = run(database, KEEP, id=row[0], old=old, sha=row[9], by=by, reason=reason)
    changed = run(
        database, SUPERSEDE,
        id=row[0], applicant=row[1], type=row[2], amount=row[3], decision=row[4], reasons=row[5],
        payment=row[6], dti=row[7], ltv=row[8], sha=row[9], old=old,
        result=json.dumps(result, sort_keys=True),  # as the INSERT writes it (RESULT_JSON)
    )  # fmt: skip
    if not changed.get("numberOfRecordsUpdated"):
        if kept.get("numberOfRecordsUpdated"):
            run(database, FORGET, id=row[0], old=old, sha=row[9])
        raise Superseded(f"loan {row[0]} changed meanwhile; nothing corrected: run it again")
    return {**result, "supersedes": old}


def run(database: Database, statement: str, **values: str) -> dict[str, Any]:
    database.calls += 1
    return dict(
        database.client.execute_statement(
            resourceArn=database.cluster_arn,
            secretArn=database.secret_arn,
            database=database.name,
            sql=statement,
            parameters=parameters(**values),
        )
    )
