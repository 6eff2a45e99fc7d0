"""A template body read as CloudFormation reads it: JSON as strict JSON, not through PyYAML,
and a body that is no template refused with CloudFormation's ValidationError.

moto reads every template body with PyYAML's pure-Python loader first (a JSON document is also
YAML) and falls back to `json.loads` only when that fails. For this project's ~200-KB JSON
template that is 0.5 s of CPU a read, and a deploy reads the body twice (the change set, then
the stack): about 1 s of the 1.4 s an embedded deploy costs in all, paid by every deploy and
update of the test suite. `json.loads` gives the same dictionary in 2 ms
(tests/unit/test_template_format.py compares the two on the template).

CloudFormation itself takes a template in either format, reads a JSON one as JSON and follows
the ECMA-404 JSON standard
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/template-formats.html), so a
JSON number such as `1e5` is a number, where YAML 1.1 would make it a string, and `NaN`,
`Infinity` and `-Infinity` (which Python's `json` accepts as an extension) are not JSON: the body
is refused, "Template format error: JSON not well-formed.". A body that is not a JSON object (a
YAML template, with or without short-form tags such as `!Ref`) goes to moto's own reader, as
before; one that neither reader can read, or that is no mapping (`- a`, a bare `foo`: what a
file name passed as the body gives), is refused with the ValidationError CloudFormation answers
("... not well-formed.", "... unsupported structure.":
https://repost.aws/knowledge-center/cloudformation-template-validation), not an HTTP 500.
ValidateTemplate reads the body the same way first (moto hands it straight to cfn-lint, which
accepts all of the above).
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

import yaml  # type: ignore[import-untyped]
from moto.cloudformation import models as cfn_models
from moto.cloudformation.exceptions import ValidationError

from loanstack.emulator import fence

FORMAT_ERROR = "Template format error: "


def refuse_constant(name: str) -> NoReturn:
    """`json.loads`' `parse_constant`: NaN and the infinities are not ECMA-404 JSON."""
    raise ValidationError(message=f"{FORMAT_ERROR}JSON not well-formed.")


def as_json(template: str) -> dict[str, Any] | None:
    """The body's object when it is a JSON object, else None (moto's reader decides); a JSON
    body holding NaN or an infinity is refused."""
    if not template.lstrip().startswith("{"):
        return None
    try:
        parsed = json.loads(template, parse_constant=refuse_constant)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def parse_stack_template(template: str) -> dict[str, Any]:
    """`Stack.parse_template`: JSON first, moto's YAML-first reader otherwise; a body neither
    reads as a mapping is CloudFormation's ValidationError."""
    parsed = as_json(template)
    if parsed is not None:
        return parsed
    original = fence.original(cfn_models.Stack, "parse_template")
    try:
        found = original.__func__(template)
    except (yaml.YAMLError, ValueError) as exc:
        kind = "JSON" if template.lstrip().startswith("{") else "YAML"
        raise ValidationError(message=f"{FORMAT_ERROR}{kind} not well-formed.") from exc
    if not isinstance(found, dict):
        raise ValidationError(message=f"{FORMAT_ERROR}unsupported structure.")
    return found


def parse_change_set_template(self: Any) -> None:
    """`ChangeSet._parse_template`: read as `Stack.parse_template` above reads it."""
    self.template_dict = parse_stack_template(self.template)


def validate_template(self: Any, template: str) -> list[Any]:
    """`CloudFormationBackend.validate_template`: the body read as a stack's is (refused the
    same way), then moto's cfn-lint checks."""
    parse_stack_template(template)
    return list(
        fence.original(cfn_models.CloudFormationBackend, "validate_template")(self, template)
    )
