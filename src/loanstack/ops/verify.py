"""`loanstack verify`: prove a migration by reconciling the export with the decisions table.

Independently of the function's reports (SPEC D8): every line of the export is parsed, judged
and fingerprinted by the validation function's own code (imported from lib/functions, never
copied), and compared with the row the database holds for its loan id. Each line ends in one
state, so the counts add up to the file; rows this export recorded that no line explains are
extra. The export is streamed and the table read in pages through the Data API; both go into a
temporary SQLite file, so memory stays flat whatever their size. Exit status 0 only when every
line reconciles.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from botocore.exceptions import ClientError
from rich.console import Console
from rich.text import Text

from loanstack import functions
from loanstack.aws.outputs import output
from loanstack.errors import DeployError, UsageError
from loanstack.ops.export import FORMATS

# Line states. The first four are expected outcomes of a migration; the last three are not.
RECONCILED = "reconciled"  # stored with this content and the decision the rules give
INVALID = "invalid"  # the function refuses the line: nothing stored from it
REPEATED = "repeated"  # the same application as an earlier line with its loan id
DUPLICATE = "duplicate"  # an earlier line has the loan id with other content (migrate: CONFLICT)
MISSING = "missing"
CHANGED = "changed"  # the stored content is not this line's (another fingerprint)
UNEXPECTED = "unexpected decision"  # the stored decision is not what the rules give
EXTRA = "extra"  # recorded by this export, yet no line of it holds the loan id
FAILURES = (MISSING, CHANGED, UNEXPECTED, EXTRA)
STATES = (RECONCILED, INVALID, REPEATED, DUPLICATE, MISSING, CHANGED, UNEXPECTED)
# A page of (id, sha, decision, mine) rows is at most ~300 bytes each in the Data API's JSON:
# 2,000 of them stay well inside its 1 MiB response limit.
# https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.limitations.html
PAGE_ROWS = 2000
PAGE = """SELECT loan_id, application_sha256, decision, COALESCE(source LIKE :mine, 0),
 CAST(loan_amount AS CHAR)
 FROM loan_decisions WHERE loan_id > :after ORDER BY loan_id LIMIT {rows}"""
SHOWN = 50  # issues printed; the rest are counted (all go to --report)
# The thresholds the deployed function decides with (README, "Rules").
THRESHOLD_PREFIXES = ("MIN_", "MAX_", "REVIEW_", "TERMS_")


@cache
def validation() -> ModuleType:
    """The validation function's module, loaded from its source as Lambda loads `index`."""
    return functions.fresh(functions.VALIDATION)


# --- the export ---------------------------------------------------------------------------------


class Hashing:
    """A binary reader that hashes what passes through, as migrate hashes the export: `digest`
    is the migration id's (the format, a NUL, the bytes), `plain` the file's own SHA-256 (what
    `sha256sum` prints), `size` its byte count."""

    def __init__(self, handle: IO[bytes], kind: str) -> None:
        self.handle = handle
        self.digest = hashlib.sha256(kind.encode() + b"\0")
        self.plain = hashlib.sha256()
        self.size = 0

    def read(self, size: int) -> bytes:
        block = self.handle.read(size)
        self.digest.update(block)
        self.plain.update(block)
        self.size += len(block)
        return block


@dataclass
class Line:
    number: int
    loan_id: str | None
    sha: str | None  # the function's fingerprint of the normalised application; None if INVALID
    decision: str  # what the rules give now (INVALID for a line the function refuses)
    detail: str = ""
    amount: str | None = None  # loanAmount in cents as the function records it (valid lines)


def export_kind(path: Path) -> str:
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UsageError(f"{path}: unknown export format; name it .csv, .jsonl or .ndjson")
    return kind


def read_export(path: Path, limits: dict[str, Any]) -> tuple[Iterator[Line], Hashing]:
    """Each data line of the export judged by the function's code, and the reader's digest
    (complete once the lines are consumed)."""
    kind = export_kind(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise UsageError(f"cannot read export {path}: {exc.strerror}") from exc
    reader = Hashing(handle, kind)
    fn = validation()

    def lines() -> Iterator[Line]:
        with handle:
            text = fn.text_lines(reader, fn.MAX_LINE_BYTES)
            for number, raw in fn.rows_of(f"incoming/{path.name}", text):
                if isinstance(raw, fn.BadHeader):
                    raise UsageError(f"{path}: {raw.message}")
                if isinstance(raw, fn.Unreadable):
                    loan_id = raw.loan_id if isinstance(raw.loan_id, str) else None
                    yield Line(number, loan_id, None, "INVALID", f"{raw.field}: {raw.message}")
                    continue
                loan_id = raw.get("loanId") if isinstance(raw, dict) else None
                loan_id = loan_id if isinstance(loan_id, str) else None
                clean, result = fn.evaluate(raw, limits)
                if clean is None:
                    why = "; ".join(f"{e['field']}: {e['message']}" for e in result["errors"])
                    yield Line(number, loan_id, None, "INVALID", why)
                else:
                    amount = str(fn.to_cents(fn.exact(clean["loanAmount"])))
                    yield Line(
                        number, loan_id, fn.fingerprint(clean), result["decision"], "", amount
                    )

    return lines(), reader


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """The deployed function's thresholds in os.environ while its rules read them."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def thresholds(function_environment: dict[str, str]) -> dict[str, Any]:
    rules = {k: v for k, v in function_environment.items() if k.startswith(THRESHOLD_PREFIXES)}
    with environment(rules):
        return dict(validation().thresholds())


# --- the database -------------------------------------------------------------------------------


@dataclass
class Database:
    """The decisions table through the Data API (the same door the function uses, D1)."""

    client: Any
    cluster_arn: str
    secret_arn: str
    name: str = "loans"
    page_rows: int = PAGE_ROWS
    calls: int = 0

    def rows(self, mine: str) -> Iterator[tuple[str, str, str, bool, str]]:
        """(loan id, fingerprint, decision, recorded by this export?, loan amount) for every stored row, in
        pages by loan id (keyset: each page starts after the last id of the one before)."""
        after = ""
        while True:
            reply = self.page(after, mine)
            records = reply.get("records", [])
            for loan_id, sha, decision, own, amount in records:
                yield (
                    loan_id["stringValue"],
                    sha["stringValue"],
                    decision["stringValue"],
                    bool(own.get("longValue", 0) or own.get("booleanValue", False)),
                    amount["stringValue"],
                )
            if len(records) < self.page_rows:
                return
            after = records[-1][0]["stringValue"]

    def page(self, after: str, mine: str) -> dict[str, Any]:
        self.calls += 1
        try:
            return dict(
                self.client.execute_statement(
                    resourceArn=self.cluster_arn,
                    secretArn=self.secret_arn,
                    database=self.name,
                    sql=PAGE.format(rows=self.page_rows),
                    parameters=[
                        {"name": "after", "value": {"stringValue": after}},
                        {"name": "mine", "value": {"stringValue": mine}},
                    ],
                )
            )
        except ClientError as exc:
            message = str(exc.response.get("Error", {}).get("Message", ""))
            if "doesn't exist" in message and "loan_decisions" in message:
                return {"records": []}  # nothing recorded yet: every valid line is missing
            raise DeployError(f"the Data API failed: {message or exc}") from exc


# --- reconciliation -------------------------------------------------------------------------------


HASH_TOTAL_MODULUS = 2**256


@dataclass
class Totals:
    """Control totals of a set of loans: how many, the sum of loanAmount (to the cent, as
    recorded), and a hash total of the loan ids: the sum modulo 2**256 of each id's SHA-256
    (its UTF-8 bytes) read as a big-endian integer, in hex. Order does not matter, so the
    export's side and the table's side are computed alike:
    `sum(int(sha256(i.encode()).hexdigest(), 16) for i in ids) % 2**256`."""

    rows: int = 0
    amount: Decimal = Decimal("0.00")
    id_hash: int = 0

    def add(self, loan_id: str, amount: str) -> None:
        self.rows += 1
        self.amount += Decimal(amount)
        digest = hashlib.sha256(loan_id.encode("utf-8")).digest()
        self.id_hash = (self.id_hash + int.from_bytes(digest, "big")) % HASH_TOTAL_MODULUS

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "loanAmount": str(self.amount.quantize(Decimal("0.01"))),
            "loanIdHashTotal": f"{self.id_hash:064x}",
        }


@dataclass
class Reconciliation:
    export: str
    sha256: str = ""  # the file's own SHA-256, as sha256sum prints it
    bytes: int = 0
    id_digest: str = ""  # sha256(format NUL bytes): the migration id's first 24 characters
    lines: int = 0
    source: Totals = field(default_factory=Totals)  # the loans the export should record
    recorded: Totals = field(default_factory=Totals)  # what the table holds for them
    counts: Counter[str] = field(default_factory=Counter)
    issues: list[dict[str, Any]] = field(default_factory=list)  # the first SHOWN, by line
    report: Path | None = None

    @property
    def reconciled(self) -> bool:
        totals_agree = self.source.as_dict() == self.recorded.as_dict()
        return totals_agree and not any(self.counts[s] for s in FAILURES)

    def summary(self) -> dict[str, Any]:
        return {
            "export": self.export,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "lines": self.lines,
            "controlTotals": {"source": self.source.as_dict(), "recorded": self.recorded.as_dict()},
            "counts": {s: self.counts[s] for s in (*STATES, EXTRA) if self.counts[s]},
            "reconciled": self.reconciled,
            "issues": self.issues,
            **({"report": str(self.report)} if self.report else {}),
        }


SCHEMA = """
CREATE TABLE line (n INTEGER PRIMARY KEY, loan_id TEXT, sha TEXT, decision TEXT, detail TEXT,
 amount TEXT);
CREATE TABLE stored (loan_id TEXT PRIMARY KEY, sha TEXT, decision TEXT, mine INTEGER, amount TEXT)
 WITHOUT ROWID;
"""
FIRST_LINES = """CREATE TABLE first (loan_id TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID;
INSERT INTO first SELECT loan_id, MIN(n) FROM line WHERE loan_id IS NOT NULL GROUP BY loan_id"""
# Each line's state: the first line of a loan id (valid or not) is the one migrated (D8).
STATE = f"""
SELECT l.n, l.loan_id, l.decision, l.detail, s.decision,
 CASE
  WHEN l.sha IS NULL THEN '{INVALID}'
  WHEN f.n <> l.n AND f.sha = l.sha THEN '{REPEATED}'
  WHEN f.n <> l.n THEN '{DUPLICATE}'
  WHEN s.loan_id IS NULL THEN '{MISSING}'
  WHEN s.sha <> l.sha THEN '{CHANGED}'
  WHEN s.decision <> l.decision THEN '{UNEXPECTED}'
  ELSE '{RECONCILED}'
 END
FROM line AS l
LEFT JOIN first AS i ON i.loan_id = l.loan_id
LEFT JOIN line AS f ON f.n = i.n
LEFT JOIN stored AS s ON s.loan_id = l.loan_id
ORDER BY l.n
"""  # noqa: S608 (the state names are constants of this module; no input is formatted in)
# Control totals: the loans the export should record (the first line of each id, when valid) and
# what the table holds for those ids or recorded from this export.
SOURCE_LOANS = """SELECT l.loan_id, l.amount FROM first AS f JOIN line AS l ON l.n = f.n
 WHERE l.sha IS NOT NULL"""
RECORDED_LOANS = """SELECT s.loan_id, s.amount FROM stored AS s WHERE s.mine OR EXISTS (
 SELECT 1 FROM first AS f JOIN line AS l ON l.n = f.n
 WHERE f.loan_id = s.loan_id AND l.sha IS NOT NULL)"""
EXTRA_ROWS = """SELECT s.loan_id, s.decision FROM stored AS s
 WHERE s.mine AND NOT EXISTS (SELECT 1 FROM first WHERE loan_id = s.loan_id) ORDER BY s.loan_id"""


def reconcile(
    path: Path,
    database: Database,
    limits: dict[str, Any],
    report: Path | None = None,
) -> Reconciliation:
    """Every line's state and the extra rows; the full list as JSON Lines in `report`."""
    result = Reconciliation(path.name, report=report)
    lines, reader = read_export(path, limits)
    with tempfile.TemporaryDirectory(prefix="loanstack-verify-") as work:
        db = sqlite3.connect(Path(work) / "verify.sqlite")
        try:
            db.executescript(SCHEMA)
            insert(db, "INSERT INTO line VALUES (?, ?, ?, ?, ?, ?)", (
                (x.number, x.loan_id, x.sha, x.decision, x.detail, x.amount) for x in lines
            ))  # fmt: skip
            db.executescript(FIRST_LINES)
            result.sha256, result.bytes = reader.plain.hexdigest(), reader.size
            result.id_digest = reader.digest.hexdigest()
            # rows any chunk of this export recorded: migrate's ids start with the digest
            mine = f"%/incoming/{result.id_digest[:24]}-%"
            insert(db, "INSERT INTO stored VALUES (?, ?, ?, ?, ?)", database.rows(mine))
            for loan_id, amount in db.execute(SOURCE_LOANS):
                result.source.add(loan_id, amount)
            for loan_id, amount in db.execute(RECORDED_LOANS):
                result.recorded.add(loan_id, amount)
            with open_report(report) as out:
                for n, loan_id, decision, detail, recorded, state in db.execute(STATE):
                    result.lines += 1
                    result.counts[state] += 1
                    if state in (RECONCILED, REPEATED, INVALID):
                        continue
                    issue = {"line": n, "loanId": loan_id, "state": state}
                    if state == UNEXPECTED:
                        issue |= {"expected": decision, "recorded": recorded}
                    elif detail:
                        issue["detail"] = detail
                    note(result, out, issue)
                for loan_id, recorded in db.execute(EXTRA_ROWS):
                    result.counts[EXTRA] += 1
                    note(result, out, {"loanId": loan_id, "state": EXTRA, "recorded": recorded})
        finally:
            db.close()
    return result


def insert(db: sqlite3.Connection, statement: str, rows: Iterator[Any]) -> None:
    """executemany in batches: an iterator is consumed lazily, so memory holds one batch."""
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= 10_000:
            db.executemany(statement, batch)
            batch.clear()
    db.executemany(statement, batch)
    db.commit()


@contextmanager
def open_report(path: Path | None) -> Iterator[IO[str] | None]:
    if path is None:
        yield None
        return
    try:
        with path.open("w", encoding="utf-8") as out:
            yield out
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from exc


def note(result: Reconciliation, out: IO[str] | None, issue: dict[str, Any]) -> None:
    if len(result.issues) < SHOWN:
        result.issues.append(issue)
    if out is not None:
        out.write(json.dumps(issue, sort_keys=True) + "\n")


def check(
    target: Any, outputs: dict[str, str], path: Path, report: Path | None = None
) -> Reconciliation:
    """Reconcile `path` with the stack's database, judged with its function's thresholds."""
    database = Database(
        target.client("rds-data"),
        output(outputs, "DBClusterArn"),
        output(outputs, "DBSecretArn"),
    )
    limits = thresholds(function_environment(target, outputs))
    return reconcile(path, database, limits, report)


def after_migrate(
    target: Any, outputs: dict[str, str], migrated: Mapping[str, Any], path: Path, console: Console
) -> dict[str, Any]:
    """`migrate`'s last step: the proof, printed, as the report's "verify" entry. An export that
    is no longer the one migrated (another SHA-256) does not reconcile whatever its lines say."""
    result = check(target, outputs, path)
    print_result(console, result)
    summary = result.summary()
    if result.sha256 != migrated.get("sha256"):
        summary["reconciled"] = False
        summary["error"] = f"{path} changed since it was migrated (SHA-256 {result.sha256[:24]})"
        console.print(Text(summary["error"], style="bold red"))
    return summary


def function_environment(target: Any, outputs: dict[str, str]) -> dict[str, str]:
    """The validation function's environment (its thresholds), so the rules judge as it did."""
    name = output(outputs, "LoanValidationFunctionName")
    found = target.client("lambda").get_function_configuration(FunctionName=name)
    return dict(found.get("Environment", {}).get("Variables", {}))


def print_result(console: Console, result: Reconciliation) -> None:
    counts = ", ".join(
        f"{state} {result.counts[state]:,}" for state in (*STATES, EXTRA) if result.counts[state]
    )
    console.print(
        Text(f"{result.export} (sha256 {result.sha256[:24]}): {result.lines:,} lines: {counts}")
    )
    for issue in result.issues:
        where = f"line {issue['line']}" if "line" in issue else "no line"
        extra = issue.get("detail") or (
            f"recorded {issue['recorded']}, the rules give {issue['expected']}"
            if issue["state"] == UNEXPECTED
            else ""
        )
        console.print(
            Text(f"{where}: {issue.get('loanId') or '-'} {issue['state']} {extra}".rstrip())
        )
    hidden = sum(result.counts[s] for s in (DUPLICATE, *FAILURES)) - len(result.issues)
    if hidden > 0:
        console.print(Text(f"... and {hidden:,} more (--report FILE lists them all)"))
    verdict = "every line reconciles" if result.reconciled else "NOT reconciled"
    console.print(Text(verdict, style="bold green" if result.reconciled else "bold red"))
