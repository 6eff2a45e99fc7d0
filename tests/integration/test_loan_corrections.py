"""Corrections (SPEC D8): a decision is never overwritten silently; `loanstack correct`, with
who and why, supersedes it and keeps it in loan_decision_history; a CONFLICT discloses nothing
that was recorded."""

from __future__ import annotations

import os
from typing import Any

import pytest

from loanstack.errors import UsageError
from loanstack.ops import correct
from loanstack.ops.verify import Database
from tests.integration.test_loan_recording import APP, rows

BY, WHY = "ops-jane", "export had amount and income swapped (ticket 42)"


def database(loans: Any) -> Database:
    return Database(
        loans.rds_data_client(), os.environ["DB_CLUSTER_ARN"], os.environ["DB_SECRET_ARN"]
    )


def history(loans: Any) -> list[tuple[Any, ...]]:
    with loans.bridge.server.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT loan_id, decision, corrected_by, reason, superseded_by_sha256,"
            " application_sha256 FROM loan_decision_history ORDER BY seq"
        )
        return list(cur.fetchall())


def test_d8_an_unmarked_resubmission_is_a_conflict_that_discloses_nothing(loans: Any) -> None:
    loans.handler({**APP, "creditScore": 500}, None)  # recorded: REJECTED
    conflict = loans.handler(APP, None)
    assert conflict["decision"] == "CONFLICT" and conflict["loanId"] == APP["loanId"]
    assert set(conflict) == {"loanId", "decision", "errors"}  # no recorded decision or content
    assert "REJECTED" not in str(conflict)
    assert [r[1] for r in rows(loans)] == ["REJECTED"]


def test_d8_a_correction_supersedes_and_keeps_the_history(loans: Any) -> None:
    """Reproducer: a wrong decision (a swapped export) could never be corrected: every later
    submission of the right application was a CONFLICT, forever."""
    assert loans.handler({**APP, "creditScore": 500}, None)["decision"] == "REJECTED"
    fixed = correct.correct(database(loans), APP, BY, WHY, loans.thresholds())
    assert fixed["decision"] == "APPROVED" and len(fixed["supersedes"]) == 64
    assert [r[1] for r in rows(loans)] == ["APPROVED"]
    [(loan, decision, by, reason, new_sha, old_sha)] = history(loans)
    assert (loan, decision, by, reason) == (APP["loanId"], "REJECTED", BY, WHY)
    assert old_sha == fixed["supersedes"] != new_sha
    assert loans.handler(APP, None)["decision"] == "APPROVED"  # the function answers as stored
    again = correct.correct(database(loans), APP, BY, WHY, loans.thresholds())
    assert again["supersedes"] is None and len(history(loans)) == 1  # nothing left to supersede


def test_d8_a_correction_without_who_or_why_or_record_changes_nothing(loans: Any) -> None:
    with pytest.raises(UsageError, match="nothing is recorded"):
        correct.correct(database(loans), APP, BY, WHY, loans.thresholds())
    loans.handler({**APP, "creditScore": 500}, None)
    with pytest.raises(UsageError, match="--by must be 1-128 characters"):
        correct.correct(database(loans), APP, " ", WHY, loans.thresholds())
    with pytest.raises(UsageError, match="INVALID: creditScore"):
        correct.correct(database(loans), {**APP, "creditScore": 1}, BY, WHY, loans.thresholds())
    assert [r[1] for r in rows(loans)] == ["REJECTED"]


def test_d8_a_correction_that_lost_a_race_supersedes_nothing(
    loans: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    loans.handler({**APP, "creditScore": 500}, None)
    real = correct.run

    def racing(database: Database, statement: str, **values: str) -> Any:
        if statement == correct.SUPERSEDE:  # another correction lands first
            real(database, "UPDATE loan_decisions SET application_sha256 = REPEAT('1', 64)")
        return real(database, statement, **values)

    monkeypatch.setattr(correct, "run", racing)
    with pytest.raises(correct.Superseded, match="changed meanwhile"):
        correct.correct(database(loans), APP, BY, WHY, loans.thresholds())
    assert history(loans) == []  # the history row of a supersession that did not happen is gone
