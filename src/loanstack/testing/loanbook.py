"""Generated loan-book exports for `make demo`, bench/migrate.py and the migration tests.

A CSV export whose bad rows are spread through it at known lines, with what the validation
function must answer for each, so a migration's merged report can be checked line by line.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from loanstack.ops.export import REQUIRED_COLUMNS
from loanstack.template import ROOT

COLUMNS = (*REQUIRED_COLUMNS, "collateralValue")  # the function's schema; migrate checks these


def approved_application(loan_id: str, applicant_id: str) -> dict[str, object]:
    """The README's approved example (examples/approved.json) under another loan id: the one
    sample application the demo, the exports and the post-deploy checks share."""
    return {**example(), "loanId": loan_id, "applicantId": applicant_id}


@functools.cache
def example() -> dict[str, object]:
    """examples/approved.json, read once: a 1,000,000-row export read it once per row."""
    return dict(json.loads((ROOT / "examples" / "approved.json").read_text(encoding="utf-8")))


@dataclass
class Expected:
    """What a correct migration reports: counts per decision, problem lines and their decision."""

    rows: int = 0
    summary: Counter[str] = field(default_factory=Counter)
    problems: dict[int, str] = field(default_factory=dict)  # export line -> decision
    loan_ids: set[str] = field(default_factory=set)  # ids that end up in the database


def row(loan_id: str, **changes: object) -> bytes:
    values = approved_application(loan_id, f"A-{loan_id}") | changes
    return ",".join(str(values[c]) for c in COLUMNS).encode()


def write_export(path: Path, rows: int, every: int = 1000, prefix: str = "M") -> Expected:
    """`rows` applications; in each block of `every`, one review row, and one bad row in turn
    REJECTED, INVALID (unknown type), INVALID (not UTF-8) or CONFLICT (the previous row's id
    with other content); a blank line after each block (not a row)."""
    expected = Expected()
    line = 1
    with path.open("wb") as out:
        out.write(",".join(COLUMNS).encode() + b"\n")
        for i in range(rows):
            loan_id = f"{prefix}-{i:07d}"
            block, place = divmod(i, every)
            decision = "APPROVED"
            text = row(loan_id)
            if place == every // 4:
                decision, text = "MANUAL_REVIEW", row(loan_id, creditScore=620)
            elif place == every // 2 and place > 0:
                kind = block % 4
                if kind == 0:
                    decision, text = "REJECTED", row(loan_id, creditScore=500)
                elif kind == 1:
                    decision, text = "INVALID", row(loan_id, loanType="yacht")
                elif kind == 2:
                    decision, text = (
                        "INVALID",
                        row(loan_id, applicantId="A-\xff").replace("\xff".encode(), b"\xff"),
                    )
                else:
                    previous = f"{prefix}-{i - 1:07d}"
                    decision, text = "CONFLICT", row(previous, loanAmount=250000)
            line += 1
            out.write(text + b"\n")
            expected.rows += 1
            expected.summary[decision] += 1
            if decision in ("APPROVED", "MANUAL_REVIEW", "REJECTED"):
                expected.loan_ids.add(loan_id)
            else:
                expected.problems[line] = decision
            if decision == "REJECTED":
                expected.problems[line] = decision
            if place == every - 1:
                out.write(b"\n")
                line += 1
    return expected


def write_bad_export(path: Path, rows: int, prefix: str = "B") -> None:
    """`rows` applications, every one INVALID (an unknown loan type): the export whose problem
    list is the whole file (issue 20's all-bad benchmark). Written from one template line, and
    nothing kept per row, so a 1,000,000-row file costs the writer no memory either."""
    template = row("ID", loanType="yacht")
    with path.open("wb") as out:
        out.write(",".join(COLUMNS).encode() + b"\n")
        for i in range(rows):
            out.write(template.replace(b"ID", f"{prefix}-{i:07d}".encode(), 1) + b"\n")
