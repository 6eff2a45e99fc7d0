"""The project's own compliance checks: one small unit per rule, read like cfn-lint's rules.

Each check has an id, the requirement it enforces (docs/requirements.md), a one-line description
and a source link, and returns findings for one environment (`template.Environment`). They iterate
the template, so a resource added later is judged without editing a rule.

Laid out as cfn-lint lays out its rules: the `@check` machinery in `registry`, what several
concerns read the same way in `shared`, and the checks grouped by what they check, one module per
concern (`template_contract`, `names_and_tags`, `survival`, `network`, `encryption_keys`,
`data_tier`, `capacity`, `logs_and_audit`, `iam`). Importing this package registers every check;
`CHECKS` is then in id order (the order of `loanstack check`'s table), whatever the import order.
"""

from __future__ import annotations

from loanstack.compliance.rules import (
    capacity,
    data_tier,
    encryption_keys,
    iam,
    logs_and_audit,
    names_and_tags,
    network,
    survival,
    template_contract,
)
from loanstack.compliance.rules.names_and_tags import global_names
from loanstack.compliance.rules.registry import CHECKS, Check, Finding, Flag, check, run_checks

CONCERNS = (
    template_contract,
    names_and_tags,
    survival,
    network,
    encryption_keys,
    data_tier,
    capacity,
    logs_and_audit,
    iam,
)
CHECKS.sort(key=lambda c: c.id)

__all__ = [
    "CHECKS",
    "CONCERNS",
    "Check",
    "Finding",
    "Flag",
    "check",
    "global_names",
    "run_checks",
]
