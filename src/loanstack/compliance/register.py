"""The exceptions register: who at the bank owns each accepted finding, and until when.

A reason alone does not let an auditor sign off an accepted finding: they ask who accepted the
risk, when, and when it is looked at again. The developers write the reason where the finding
is accepted (a checkov suppression in the resource's Metadata, an entry of the Control Tower
exceptions file); the bank fills the risk owner, the approval date and the review-by date in
compliance/exceptions-register.json, one entry per accepted finding, "unassigned" until then.
`loanstack check` lists, for prod, every entry still unassigned or past its review-by date: a
warning row, not a failure (dev is the client's test environment).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loanstack import template
from loanstack.compliance import control_tower

REGISTER = template.ROOT / "compliance" / "exceptions-register.json"
UNASSIGNED = "unassigned"
FIELDS = ("risk_owner", "approved", "review_by")


@dataclass(frozen=True)
class Accepted:
    """One accepted finding with what the register says about it."""

    tool: str  # "checkov", "control tower", or "design" for a decision no tool raises
    check: str
    resource: str
    reason: str
    risk_owner: str = UNASSIGNED
    approved: str = UNASSIGNED
    review_by: str = UNASSIGNED

    @property
    def key(self) -> tuple[str, str, str]:
        return self.tool, self.check, self.resource


def suppressions(doc: dict[str, Any]) -> Iterator[Accepted]:
    """Every finding the template accepts: checkov skips in Metadata, with their comment."""
    for logical_id, resource in doc.get("Resources", {}).items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            yield Accepted("checkov", skip["id"], logical_id, skip.get("comment", ""))


def accepted_findings(
    doc: dict[str, Any], exceptions: Path = control_tower.EXCEPTIONS
) -> list[Accepted]:
    """What the tools accept: checkov suppressions, then Control Tower exceptions."""
    found = list(suppressions(doc))
    for (control, resource), reason in control_tower.exceptions(exceptions).items():
        found.append(Accepted("control tower", control, resource, reason))
    return found


def load(path: Path = REGISTER) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def entries(
    doc: dict[str, Any] | None = None,
    path: Path = REGISTER,
    exceptions: Path = control_tower.EXCEPTIONS,
) -> tuple[list[Accepted], list[str]]:
    """(each accepted finding with its owner and dates, problems of the register itself):
    an accepted finding without an entry, or an entry no finding needs any more."""
    doc = template.load() if doc is None else doc
    register = load(path)
    filled = {(e["tool"], e["check"], e["resource"]): e for e in register.get("accepted", [])}
    found, problems = [], []
    for item in accepted_findings(doc, exceptions):
        entry = filled.pop(item.key, None)
        if entry is None:
            problems.append(f"{' '.join(item.key)}: accepted but not in the register")
            entry = {}
        found.append(
            Accepted(*item.key, item.reason, *(str(entry.get(f, UNASSIGNED)) for f in FIELDS))
        )
    for decision in register.get("decisions", []):
        filled.pop(("design", decision["check"], decision["resource"]), None)
        found.append(
            Accepted(
                "design",
                decision["check"],
                decision["resource"],
                decision["reason"],
                *(str(decision.get(f, UNASSIGNED)) for f in FIELDS),
            )
        )
    problems += [f"{' '.join(key)}: in the register, but nothing accepts it" for key in filled]
    return found, problems


def open_items(found: list[Accepted], today: datetime.date) -> Iterator[tuple[Accepted, str]]:
    """Each entry a bank's review would stop at: a field unassigned or not a date, a review-by
    date past, an approval after its own review date."""
    for item in found:
        missing = [f.replace("_", " ") for f in FIELDS if getattr(item, f) == UNASSIGNED]
        if missing:
            yield item, f"unassigned: {', '.join(missing)}"
            continue
        try:
            approved = datetime.date.fromisoformat(item.approved)
            review_by = datetime.date.fromisoformat(item.review_by)
        except ValueError:
            yield item, "approved and review_by must be dates (YYYY-MM-DD)"
            continue
        if review_by < today:
            yield item, f"review overdue since {review_by.isoformat()}"
        elif approved > review_by:
            yield item, "approved after its review-by date"
