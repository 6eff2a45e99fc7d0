"""The migration manifest (SPEC D8, a migration is proven): one JSON document per `loanstack migrate` run, plus
a short text summary, as evidence an auditor can check later.

It says who ran what on which file: the migration id, the operator (STS GetCallerIdentity's
ARN), UTC start and end, the tool's version and git commit, the validation function's version
and CodeSha256 (Lambda GetFunction), the export's SHA-256 (the file's bytes, as `sha256sum`
prints it) and size, each chunk's SHA-256 and S3 VersionId, the control totals of the source
and of what the table records (from `loanstack verify`'s reconciliation), and the problem rows
by reference: their count per decision with each decision's disposition, and the problem file's
S3 key, size and SHA-256 (a row's disposition follows from its decision alone, so the file and
the table say every row's; a 1,000,000-row list is never held or written here, SPEC D6). It
is written under `manifests/<migration-id>/` of the documents bucket, a prefix the validation function's role is not granted (tests/unit/test_manifest_policy.py reads
the role's policy), also when the run fails (`Recorder` is finished in a `finally`).
`manifest_check` compares a manifest with the export and the database later (`loanstack verify
--manifest FILE`).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.text import Text

import loanstack
from loanstack import render as layout
from loanstack.aws.outputs import StackRecord
from loanstack.errors import DeployError, Interrupted, Terminated
from loanstack.ops.export import BATCH, Export

PREFIX = "manifests/"  # not in LoanValidationFunctionRole's s3:PutObject resources
VERSION = 1
UNAVAILABLE = "unavailable"
# What happened to a problem row, by its decision (the batch contract's decisions).
DISPOSITIONS = {
    "INVALID": "refused by validation: nothing recorded; correct the source row and migrate it",
    "REJECTED": "recorded as REJECTED",
    "CONFLICT": "not recorded: the loan id already holds another application (see `correct`)",
}
FAILED_CHUNK = "not processed: its chunk is in the dead-letter queue; run again --retry-failed"


class ManifestExport(TypedDict):
    name: str
    format: str  # jsonl | csv
    sha256: str
    bytes: int
    chunkRows: int


class ManifestChunk(TypedDict):
    key: str  # incoming/<migration>/part-NNNNN.<format>
    lines: str  # "first-last", 1-based lines of the export
    bytes: int
    sha256: str
    versionId: str | None


class ManifestReport(TypedDict):
    key: str  # reports/<migration>/migration.report.json
    rows: int | None
    summary: dict[str, int] | None


class Disposition(TypedDict):
    rows: int
    disposition: str


class ManifestProblems(TypedDict):
    """The problem rows by reference: the file that lists every one (S3 key, bytes, SHA-256)
    and the count per decision with what became of those rows."""

    rows: int | None
    file: dict[str, Any]
    byDecision: dict[str, Disposition]


class Manifest(TypedDict):
    """manifests/<migration>/<startedAt>.manifest.json, version VERSION: what `verify --manifest`
    reads back, so its keys are a contract with runs written earlier."""

    manifestVersion: int
    migration: str
    operator: str
    startedAt: str
    endedAt: str
    outcome: str
    error: NotRequired[str]
    tool: dict[str, Any]  # name, version, gitCommit (None outside git), gitDirty
    function: dict[str, Any]  # name, arn, version, codeSha256 (or error)
    export: ManifestExport
    chunks: list[ManifestChunk]
    report: ManifestReport | None
    controlTotals: dict[str, Any] | None  # source and recorded (verify's control totals)
    verify: dict[str, Any] | None  # reconciled, lines, counts, error
    problems: ManifestProblems | None
    failedChunks: list[dict[str, Any]]  # the report's failed chunks, each with its disposition


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def git_commit() -> dict[str, Any]:
    """The commit of the checkout the tool runs from, and whether it had local changes; none
    outside a git checkout (an installed wheel)."""
    where = Path(loanstack.__file__).resolve().parent
    try:
        commit = subprocess.run(  # noqa: S603 - fixed argument list, no shell
            ["git", "-C", str(where), "rev-parse", "HEAD"],  # noqa: S607 - git from PATH
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(  # noqa: S603
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"gitCommit": None}
    return {"gitCommit": commit, "gitDirty": bool(dirty)}


def operator(target: Any) -> str:
    """The caller's ARN, as CloudTrail would name it."""
    try:
        return str(target.client("sts").get_caller_identity()["Arn"])
    except (ClientError, BotoCoreError, KeyError) as exc:
        return f"{UNAVAILABLE}: {exc}"


def function_code(target: Any, stack: StackRecord) -> dict[str, Any]:
    """The validation function as it ran: its name, ARN, version and CodeSha256."""
    name = stack.function_name
    try:
        found = target.client("lambda").get_function(FunctionName=name)["Configuration"]
    except (ClientError, BotoCoreError, KeyError) as exc:
        return {"name": name, "error": f"{UNAVAILABLE}: {exc}"}
    return {
        "name": name,
        "arn": found.get("FunctionArn"),
        "version": found.get("Version"),
        "codeSha256": found.get("CodeSha256"),
    }


@dataclass
class Recorder:
    """One run's manifest, filled as the run goes and written once by `finish`."""

    target: Any
    bucket: str
    export: Export
    chunk_rows: int
    operator: str
    function: dict[str, Any]
    started: str = field(default_factory=utc_now)
    chunks: list[Any] = field(default_factory=list)  # migrate's Options.seen (export.Chunk)
    report: Mapping[str, Any] | None = None
    key: str = ""

    @classmethod
    def start(cls, target: Any, stack: StackRecord, export: Export, chunk_rows: int) -> Recorder:
        return cls(
            target,
            stack.bucket,
            export,
            chunk_rows,
            operator(target),
            function_code(target, stack),
        )

    @property
    def migration(self) -> str:
        self.export.chunk_rows = self.chunk_rows
        return self.export.migration_id

    def document(self, error: BaseException | None) -> Manifest:
        report = dict(self.report or {})
        proof = report.get("verify") or {}
        failed = report.get("failedChunks", [])
        document: Manifest = {
            "manifestVersion": VERSION,
            "migration": self.migration,
            "operator": self.operator,
            "startedAt": self.started,
            "endedAt": utc_now(),
            "outcome": outcome(error, report),
            "tool": {"name": "loanstack", "version": loanstack.__version__, **git_commit()},
            "function": self.function,
            "export": {
                "name": self.export.path.name,
                "format": self.export.kind,
                "sha256": self.export.sha256,
                "bytes": self.export.size,
                "chunkRows": self.chunk_rows,
            },
            "chunks": [
                {
                    "key": c.key(self.export),
                    "lines": f"{c.first_line}-{c.first_line + c.lines - 1}",
                    "bytes": c.size,
                    "sha256": c.sha256,
                    "versionId": c.version_id,
                }
                for c in self.chunks
            ],
            "report": (
                {
                    "key": f"{BATCH.REPORTS}{self.migration}/migration.report.json",
                    "rows": report.get("rows"),
                    "summary": report.get("summary"),
                }
                if report
                else None
            ),
            "controlTotals": proof.get("controlTotals"),
            "verify": (
                {k: proof[k] for k in ("reconciled", "lines", "counts", "error") if k in proof}
                if proof
                else None
            ),
            "problems": problems_by_reference(report),
            "failedChunks": [{**c, "disposition": FAILED_CHUNK} for c in failed],
        }
        if error is not None:
            document["error"] = one_line(error)
        return document

    def finish(self, error: BaseException | None) -> Manifest:
        """Write the manifest and its summary under manifests/<migration>/; the document."""
        document = self.document(error)
        stamp = document["startedAt"].replace(":", "").replace("-", "")
        self.key = f"{PREFIX}{self.migration}/{stamp}.manifest.json"
        s3 = self.target.client("s3")
        s3.put_object(
            Bucket=self.bucket,
            Key=self.key,
            Body=json.dumps(document, indent=1, sort_keys=True).encode(),
            ContentType="application/json",
        )
        s3.put_object(
            Bucket=self.bucket,
            Key=self.key.removesuffix(".json") + ".txt",
            Body=summary(document).encode(),
            ContentType="text/plain; charset=utf-8",
        )
        return document


def outcome(error: BaseException | None, report: Mapping[str, Any]) -> str:
    if isinstance(error, Interrupted | KeyboardInterrupt | Terminated):
        return "interrupted"
    if error is not None or report.get("failedChunks"):
        return "failed"
    if report.get("verify", {}).get("reconciled") is False:
        return "not reconciled"
    return "succeeded" if report.get("verify") else "succeeded (not verified)"


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def problems_by_reference(report: Mapping[str, Any]) -> ManifestProblems | None:
    """The problem rows as counts per decision, each with its disposition, and the file that
    lists them (the report's `problemsFile`: S3 key, rows, bytes, SHA-256); None before a
    report exists."""
    found = report.get("problemsFile")
    if not found:
        return None
    summary = report.get("summary", {})
    counts = {d: n for d, n in summary.items() if d not in BATCH.ACCEPTED and n}
    return {
        "rows": found.get("rows"),
        "file": {k: found.get(k) for k in ("key", "bytes", "sha256")},
        "byDecision": {
            d: {"rows": n, "disposition": disposition(d)} for d, n in sorted(counts.items())
        },
    }


def disposition(decision: str) -> str:
    """What became of a problem row with this decision."""
    return DISPOSITIONS.get(decision, f"recorded as {decision}")


def summary(document: Mapping[str, Any]) -> str:
    """The manifest in a few lines for a person."""
    export, fn = document["export"], document["function"]
    totals = document.get("controlTotals") or {}
    lines = [
        f"Migration {document['migration']}: {document['outcome']}",
        f"operator   {document['operator']}",
        f"UTC        {document['startedAt']} to {document['endedAt']}",
        f"tool       loanstack {document['tool']['version']} "
        f"commit {document['tool'].get('gitCommit') or 'none'}",
        f"function   {fn.get('name')} version {fn.get('version')} "
        f"CodeSha256 {fn.get('codeSha256')}",
        f"export     {export['name']} sha256 {export['sha256']} ({export['bytes']:,} bytes)",
        f"chunks     {len(document['chunks'])} uploaded or present, "
        f"{len(document['failedChunks'])} failed",
    ]
    for side in ("source", "recorded"):
        if side in totals:
            t = totals[side]
            lines.append(
                f"{side:<10} {t['rows']:,} loans, loanAmount {t['loanAmount']}, "
                f"id hash total {t['loanIdHashTotal'][:16]}"
            )
    problems = document.get("problems") or {}
    lines.append(
        f"problems   {layout.plural(problems.get('rows') or 0, 'row')}, listed in "
        f"{problems.get('file', {}).get('key', 'no file')} (sha256 "
        f"{str(problems.get('file', {}).get('sha256'))[:16]})"
    )
    if "error" in document:
        lines.append(f"error      {document['error']}")
    return "\n".join(lines) + "\n"


def finish_quietly(recorder: Recorder, error: BaseException, console: Console) -> Manifest | None:
    """finish() in a `finally` while another error is on its way: a failed write is said in one
    line and does not hide that error."""
    try:
        document = recorder.finish(error)
    except (ClientError, BotoCoreError) as exc:
        console.print(Text(f"could not write the migration manifest: {exc}", style="bold red"))
        return None
    console.print(Text(f"manifest s3://{recorder.bucket}/{recorder.key}"))
    return document


def finish_or_fail(recorder: Recorder, console: Console) -> Manifest:
    """finish() after a run that went through: without its manifest the run is not done."""
    try:
        document = recorder.finish(None)
    except (ClientError, BotoCoreError) as exc:
        raise DeployError(
            f"the migration ran, but its manifest could not be written: {exc}"
        ) from exc
    console.print(Text(f"manifest s3://{recorder.bucket}/{recorder.key}"))
    return document
