"""Corrections (SPEC D8): a decision is never overwritten silently; an explicit correction with
who and why supersedes it and keeps it in loan_decision_history; a CONFLICT discloses nothing
that was recorded."""

from __future__ import annotations

from typing import Any

from tests.integration.test_loan_recording import APP, rows

FIX = {"by": "ops-jane", "reason": "export had amount and income swapped (ticket 42)"}


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
    assert "REJECTED" not in str(conflict) and "correction" in conflict["errors"][0]["message"]
    assert [r[1] for r in rows(loans)] == ["REJECTED"]


def test_d8_a_correction_supersedes_and_keeps_the_history(loans: Any) -> None:
    """Reproducer: a wrong decision (a swapped export) could never be corrected: every later
    submission of the right application was a CONFLICT, forever."""
    wrong = loans.handler({**APP, "creditScore": 500}, None)
    assert wrong["decision"] == "REJECTED"
    fixed = loans.handler({**APP, "correction": FIX}, None)
    assert fixed["decision"] == "APPROVED" and len(fixed["supersedes"]) == 64
    assert [r[1] for r in rows(loans)] == ["APPROVED"]
    [(loan, decision, by, reason, new_sha, old_sha)] = history(loans)
    assert (loan, decision, by, reason) == (APP["loanId"], "REJECTED", FIX["by"], FIX["reason"])
    assert old_sha == fixed["supersedes"] != new_sha
    assert loans.handler(APP, None)["decision"] == "APPROVED"  # the same application: its answer
    again = loans.handler({**APP, "correction": FIX}, None)  # nothing left to supersede
    assert again["decision"] == "APPROVED" and "supersedes" not in again
    assert len(history(loans)) == 1


def test_d8_a_correction_without_who_or_why_is_invalid_and_changes_nothing(loans: Any) -> None:
    loans.handler({**APP, "creditScore": 500}, None)
    answer = loans.handler({**APP, "correction": {"by": "", "reason": "x"}}, None)
    assert answer["decision"] == "INVALID"
    assert answer["errors"] == [{"field": "correction.by", "message": "must be 1-128 characters"}]
    assert [r[1] for r in rows(loans)] == ["REJECTED"]


def test_d8_a_correction_that_lost_a_race_supersedes_nothing(loans: Any, monkeypatch: Any) -> None:
    loans.handler({**APP, "creditScore": 500}, None)
    real = loans.sql

    def racing(client: Any, statement: str, **kwargs: Any) -> Any:
        if statement == loans.SUPERSEDE:  # another correction lands first
            real(client, "UPDATE loan_decisions SET application_sha256 = REPEAT('1', 64)")
        return real(client, statement, **kwargs)

    monkeypatch.setattr(loans, "sql", racing)
    answer = loans.handler({**APP, "correction": FIX}, None)
    assert answer["decision"] == "CONFLICT" and "meanwhile" in answer["errors"][0]["message"]
    assert history(loans) == []  # the history row of a supersession that did not happen is gone
