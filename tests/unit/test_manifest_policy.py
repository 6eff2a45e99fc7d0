"""The migration manifest is written where the validation function cannot overwrite it (issue 22
item 8): LoanValidationFunctionRole's policy grants no S3 write on `manifests/`, and neither
does the documents bucket's policy.

Identity-based and resource-based policies are evaluated together within one account: an
action on an object is allowed when either grants it and nothing denies it
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html).
Writes to an object are the actions that create, replace or delete it or change its retention
(https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html).
"""

from __future__ import annotations

import copy
import json
import re
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from loanstack import names
from loanstack.ops import manifest

TEMPLATE = Path(__file__).resolve().parents[2] / "lib" / "TapStack.json"
KNOWN = {
    "AWS::Partition": "aws",
    "AWS::AccountId": "123456789012",
    "AWS::Region": "us-east-1",
    "EnvironmentSuffix": "dev42",
}
BUCKET = "s3-loandocuments-dev42-123456789012-us-east-1"
WRITES = (
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:PutObjectRetention",
    "s3:BypassGovernanceRetention",
    "s3:PutObjectLegalHold",
    "s3:PutObjectAcl",
    "s3:PutObjectTagging",
    "s3:RestoreObject",
)
MANIFEST_OBJECT = f"arn:aws:s3:::{BUCKET}/{manifest.PREFIX}abc-100/20261130T000000.manifest.json"


def template() -> dict[str, Any]:
    return dict(json.loads(TEMPLATE.read_text(encoding="utf-8")))


def resolve(value: Any) -> list[str]:
    """An ARN as text: Fn::Sub with the known names filled in; anything else (a GetAtt, a Ref
    to another resource) becomes a value no S3 object ARN matches."""
    if isinstance(value, list):
        return [r for v in value for r in resolve(v)]
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        text = value["Fn::Sub"]
        text = text.replace("${LoanDocumentsBucket.Arn}", f"arn:aws:s3:::{BUCKET}")
        text = text.replace("${LoanDocumentsBucket}", BUCKET)
        return [re.sub(r"\$\{([^}]+)\}", lambda m: KNOWN.get(m.group(1), "<unknown>"), text)]
    return ["<symbolic>"]


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def grants_write(statements: list[dict[str, Any]], arn: str) -> list[str]:
    """The Sids of Allow statements that let a write action reach `arn`."""
    found = []
    for st in statements:
        if st.get("Effect") != "Allow":
            continue
        assert "NotAction" not in st and "NotResource" not in st, st
        actions = [a.lower() for a in listed(st.get("Action", []))]
        writes = [w for w in WRITES if any(fnmatchcase(w.lower(), a) for a in actions)]
        if writes and any(fnmatchcase(arn, r) for r in resolve(st.get("Resource", []))):
            found.append(str(st.get("Sid", "?")))
    return found


def role_statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    role = doc["Resources"][f"{names.VALIDATION_FUNCTION}Role"]["Properties"]
    assert not role.get("ManagedPolicyArns")  # a managed policy could grant anything
    return [st for p in role.get("Policies", []) for st in listed(p["PolicyDocument"]["Statement"])]


def test_the_validation_role_cannot_write_under_manifests() -> None:
    statements = role_statements(template())
    assert grants_write(statements, MANIFEST_OBJECT) == []
    # it can write where it must (the checker sees grants): reports/ and validations/
    assert grants_write(statements, f"arn:aws:s3:::{BUCKET}/reports/x/migration.report.json")
    assert grants_write(statements, f"arn:aws:s3:::{BUCKET}/validations/L1.json")


def test_the_documents_bucket_policy_grants_no_write_under_manifests() -> None:
    doc = template()
    policy = doc["Resources"]["LoanDocumentsBucketPolicy"]["Properties"]["PolicyDocument"]
    assert grants_write(listed(policy["Statement"]), MANIFEST_OBJECT) == []


def test_the_check_bites_on_a_role_that_may_write_the_whole_bucket() -> None:
    doc = copy.deepcopy(template())
    role = doc["Resources"][f"{names.VALIDATION_FUNCTION}Role"]["Properties"]
    for policy in role["Policies"]:
        for st in listed(policy["PolicyDocument"]["Statement"]):
            if st.get("Sid") == "WriteResults":
                st["Resource"] = {"Fn::Sub": "${LoanDocumentsBucket.Arn}/*"}
    assert grants_write(role_statements(doc), MANIFEST_OBJECT) == ["WriteResults"]
    role["Policies"][0]["PolicyDocument"]["Statement"].append(
        {"Effect": "Allow", "Action": "s3:*", "Resource": f"arn:aws:s3:::{BUCKET}/manifests/*"}
    )
    assert len(grants_write(role_statements(doc), MANIFEST_OBJECT)) == 2
