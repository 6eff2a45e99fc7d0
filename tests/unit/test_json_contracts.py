"""The JSON the tool and the validation function write has the keys of its TypedDict, typed once
where the fact lives: the function's results and batch report (lib/functions/loan_validation,
read through loanstack.functions), the stack record (aws.outputs), the migration manifest
(ops.manifest), `loanstack check`'s JSON and SARIF (compliance.report). A key added to the JSON
and not to its type, or the other way round, fails here."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NotRequired, get_origin, get_type_hints

import pytest

from loanstack import functions
from loanstack.aws import outputs
from loanstack.compliance import report
from loanstack.ops import manifest, rotate
from loanstack.ops.export import Chunk, Export

loans = functions.fresh(functions.VALIDATION)
rotation = functions.fresh(functions.ROTATION)

APP = {
    "loanId": "L-1", "applicantId": "A-1", "loanType": "personal", "loanAmount": 20000, "termMonths": 36,
    "annualInterestRate": 8, "creditScore": 720, "annualIncome": 90000, "monthlyDebtPayments": 500,
}  # fmt: skip


def holds(found: Mapping[str, Any], typed: Any, function: Any = loans) -> None:
    """`found` has every required key of the TypedDict `typed` and no key it does not declare.
    Read from the annotations (NotRequired included): with postponed annotations the class's
    own __required_keys__ counts every key as required. The function's module is loaded by
    path, not imported, so its names are given to get_type_hints."""
    module = sys.modules.get(typed.__module__)
    names = vars(module) if module else vars(function)  # a function's module is not imported
    hints = get_type_hints(typed, names, include_extras=True)
    optional = {k for k, v in hints.items() if get_origin(v) is NotRequired}
    assert set(found) <= set(hints), f"{typed.__name__} lacks {sorted(set(found) - set(hints))}"
    missing = set(hints) - optional - set(found)
    assert not missing, f"{typed.__name__}: {sorted(missing)} missing"


def test_holds_refuses_a_key_too_many_and_a_key_missing() -> None:
    with pytest.raises(AssertionError):
        holds({"field": "$", "message": "m", "extra": 1}, loans.FieldError)
    with pytest.raises(AssertionError):
        holds({"field": "$"}, loans.FieldError)


@pytest.mark.parametrize(
    ("change", "typed"),
    [
        ({}, "Decided"),
        ({"creditScore": 400}, "Decided"),
        ({"loanType": "mortgage", "collateralValue": 400000}, "Decided"),  # with its LTV
        ({"loanType": "yacht"}, "Refused"),
        ({"loanId": "not an id!"}, "Refused"),  # INVALID without a loanId
    ],
)
def test_each_result_of_the_function_is_its_typed_dict(change: dict[str, Any], typed: str) -> None:
    _, result = loans.evaluate({**APP, **change}, loans.thresholds())
    holds(result, getattr(loans, typed))
    holds(
        result.get(
            "metrics", {"monthlyPayment": 0, "debtToIncomeRatio": 0, "loanToValueRatio": None}
        ),
        loans.Metrics,
    )
    for error in result.get("errors", []):
        holds(error, loans.FieldError)


def test_a_conflict_is_a_refused_result() -> None:
    clean, result = loans.evaluate(APP, loans.thresholds())
    holds(loans.answer(loans.Entry(clean, result), "0" * 64, "{}"), loans.Refused)


class FakeS3:
    """get_object of one batch file, upload_fileobj of its report (kept)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.uploaded = data, b""

    def get_object(self, **_: Any) -> dict[str, Any]:
        return {"Body": io.BytesIO(self.data)}

    def upload_fileobj(self, fileobj: Any, *_: Any, **__: Any) -> None:
        self.uploaded = fileobj.read()


@pytest.mark.parametrize(
    "data",
    [
        b'{"loanId": "L-1"}\nnot json\n',  # problem rows only: nothing reaches Aurora
        b"loanId,loanId\n1,2\n",  # a file problem: the report carries "error"
    ],
)
def test_the_batch_report_and_answer_are_their_typed_dicts(
    data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = functions.fresh(functions.VALIDATION)
    s3 = FakeS3(data)
    monkeypatch.setattr(module, "s3_client", lambda: s3)
    key = "incoming/x.csv" if data.startswith(b"loanId,") else "incoming/x.jsonl"
    answer = module.handle_batch_file("bucket", key)
    holds(answer, module.BatchAnswer)
    written = json.loads(s3.uploaded)
    holds(written, module.BatchReport)
    for problem in written["problems"]:
        holds(problem, module.Problem)
    assert ("error" in written) == data.startswith(b"loanId,")


def test_the_stack_record_file_is_record_json(tmp_path: Path) -> None:
    record = outputs.StackRecord("s", "123456789012", "eu-west-1", "aws", {"VPCId": "vpc-1"})
    own = outputs.write_record(record, tmp_path / "flat-outputs.json")
    holds(json.loads(own.read_text()), outputs.RecordJson)
    assert outputs.read_record("s", tmp_path / "flat-outputs.json") == record


def test_the_manifest_document_is_a_manifest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manifest, "git_commit", lambda: {"gitCommit": None})
    export = Export(Path("e.csv"), "csv", "ab" * 32, b"h", 1, chunk_rows=10, sha256="cd" * 32)
    recorder = manifest.Recorder(None, "bucket", export, 10, "arn:op", {"name": "fn"})
    recorder.chunks = [Chunk(1, 2, 10, size=5, sha256="ef" * 32, version_id="v1")]
    recorder.report = {
        "rows": 1,
        "summary": {"INVALID": 1},
        "problemsFile": {
            "key": "reports/m/migration.problems.jsonl",
            "rows": 1,
            "bytes": 9,
            "sha256": "aa" * 32,
        },
        "failedChunks": [],
    }
    document = recorder.document(RuntimeError("boom"))
    holds(document, manifest.Manifest)
    assert "error" in document
    holds(document["export"], manifest.ManifestExport)
    holds(document["chunks"][0], manifest.ManifestChunk)
    assert document["report"] is not None
    holds(document["report"], manifest.ManifestReport)
    assert document["problems"] is not None
    holds(document["problems"], manifest.ManifestProblems)
    holds(document["problems"]["byDecision"]["INVALID"], manifest.Disposition)


def test_check_json_and_sarif_are_their_typed_dicts() -> None:
    rows = [
        report.Row("dev", "LS001", "loanstack", "template", "FAIL", "too big", "R1", "", None),
        report.Row("both", "CKV_AWS_18", "checkov", "B", "accepted", "why", "", "/Resources/B", 9),
    ]
    for row in rows:
        holds(report.as_dict(row), report.RowJson)
    log = report.sarif(rows)
    holds(log, report.SarifLog)
    for run in log["runs"]:
        holds(run, report.SarifRun)
        for result in run["results"]:
            holds(result, report.SarifResult)
    holds(log["runs"][0]["results"][1]["suppressions"][0], report.SarifSuppression)


def test_the_rotation_event_the_tool_sends_is_a_rotation_event() -> None:
    sent: list[dict[str, Any]] = []

    class Lambda:
        def invoke(self, FunctionName: str, Payload: bytes) -> dict[str, Any]:
            sent.append(json.loads(Payload))
            return {}

    session = SimpleNamespace(client=lambda *_, **__: Lambda())
    target = SimpleNamespace(session=session, endpoint_url=None)
    rotate.invoke_rotation_step(target, "fn", "arn:secret", "token", "recoverSecret")
    holds(sent[0], rotation.RotationEvent, rotation)
