"""`loanstack verify`: prove a migration by reconciling the export with the decisions table.

Independently of the function's reports (SPEC D8): every line of the export is parsed, judged
and fingerprinted by the validation function's own code (verify_export), and compared with the
row the database holds for its loan id (verify_db). Each line ends in one state, so the counts
add up to the file; rows this export recorded that no line explains are extra (verify_report).
The export is streamed and the table read in pages through the Data API; both go into temporary
SQLite files, so memory stays flat whatever their size. The table is read on a thread of its own
while the export is judged: its pages are mostly waiting for the database, and the judging is
CPU. Exit status 0 only when every line reconciles.
"""

from __future__ import annotations

import hashlib
import itertools
import sqlite3
import tempfile
import threading
from collections.abc import Iterable, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from loanstack.aws.outputs import StackRecord
from loanstack.errors import UsageError
from loanstack.ops.verify_db import PAGE, PAGE_ROWS, Database, Stored, one_line
from loanstack.ops.verify_digest import Digested, digest_pages
from loanstack.ops.verify_export import (
    THRESHOLD_PREFIXES,
    Hashing,
    Line,
    environment,
    export_kind,
    read_export,
    thresholds,
    validation,
)
from loanstack.ops.verify_merge import Pages, Unordered, merged
from loanstack.ops.verify_report import (
    CHANGED,
    DUPLICATE,
    EXTRA,
    FAILURES,
    INVALID,
    MISSING,
    RECONCILED,
    REPEATED,
    SHOWN,
    STATES,
    UNEXPECTED,
    Reconciliation,
    Totals,
    note,
    open_report,
    print_result,
)

__all__ = [
    "CHANGED", "DUPLICATE", "EXTRA", "FAILURES", "INVALID", "MISSING", "PAGE", "PAGE_ROWS",
    "RECONCILED", "REPEATED", "SHOWN", "STATES", "THRESHOLD_PREFIXES", "UNEXPECTED", "Database",
    "Hashing", "Line", "Reconciliation", "Stored", "Totals", "after_migrate", "check",
    "environment", "export_kind", "function_environment", "print_result", "read_export",
    "reconcile", "thresholds", "validation",
]  # fmt: skip

# Temporary files only this process reads: no journal, no fsync.
FAST = "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
LINES = "CREATE TABLE line (n INTEGER PRIMARY KEY, loan_id TEXT, sha TEXT, decision TEXT, detail TEXT, amount TEXT);"
STORED = """CREATE TABLE stored (loan_id TEXT PRIMARY KEY, sha TEXT, decision TEXT, mine INTEGER,
 amount TEXT) WITHOUT ROWID;"""
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
LEFT JOIN db.stored AS s ON s.loan_id = l.loan_id
ORDER BY l.n
"""  # noqa: S608 (the state names are constants of this module; no input is formatted in)
# Control totals: the loans the export should record (the first line of each id, when valid) and
# what the table holds for those ids or recorded from this export.
SOURCE_LOANS = """SELECT l.loan_id, l.amount FROM first AS f JOIN line AS l ON l.n = f.n
 WHERE l.sha IS NOT NULL"""
RECORDED_LOANS = """SELECT s.loan_id, s.amount FROM db.stored AS s WHERE s.mine OR EXISTS (
 SELECT 1 FROM first AS f JOIN line AS l ON l.n = f.n
 WHERE f.loan_id = s.loan_id AND l.sha IS NOT NULL)"""
EXTRA_ROWS = """SELECT s.loan_id, s.decision FROM db.stored AS s
 WHERE s.mine AND NOT EXISTS (SELECT 1 FROM first WHERE loan_id = s.loan_id) ORDER BY s.loan_id"""


class TableReader(threading.Thread):
    """The table's pages into a SQLite file of their own, on a thread (its own connection):
    the Data API's answers are awaited while the export is judged on the main thread."""

    def __init__(self, database: Database, mine: str, path: Path) -> None:
        super().__init__(name="verify-table", daemon=True)
        self.database, self.mine, self.path = database, mine, path
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with closing(sqlite3.connect(self.path)) as db:
                db.executescript(FAST + STORED)
                for page in self.database.pages(self.mine):
                    db.executemany("INSERT INTO stored VALUES (?, ?, ?, ?, ?)", page)
                db.commit()
        except BaseException as exc:  # re-raised on the main thread, as one line
            self.error = one_line(exc)

    def result(self) -> None:
        self.join()
        if self.error is not None:
            raise self.error


def reconcile(
    path: Path,
    database: Database,
    limits: dict[str, Any],
    report: Path | None = None,
) -> Reconciliation:
    """Every line's state and the extra rows; the full list as JSON Lines in `report`. By a
    streaming merge when the export is in loan id order (verify_merge), else on SQLite."""
    digest = export_digest(path)
    try:
        return reconcile_merged(path, database, limits, report, digest)
    except Unordered:
        return reconcile_sqlite(path, database, limits, report, digest)


def mine(digest: str) -> str:
    """The `source` pattern of the rows this export recorded (migrate's object keys)."""
    return f"%/incoming/{digest[:24]}-%"


def reconcile_merged(
    path: Path, database: Database, limits: dict[str, Any], report: Path | None, digest: str
) -> Reconciliation:
    """The merge, the table compared a group at a time by its digest (verify_digest) and read
    row by row where a group differs; Unordered (raised at the first line out of order) leaves
    nothing behind: the workers and the page reader are stopped, and the report is written
    again from the start."""
    result = Reconciliation(path.name, report=report)
    lines, reader = read_export(path, limits)
    pages = Pages(database, mine(digest), digest_pages)
    pages.start()
    walked, compared = itertools.tee(lines)  # the merge's lines, and the digests' (verify_digest)
    table = Digested(database, mine(digest), pages.items())
    try:
        with open_report(report) as out:
            merged(walked, table.rows(compared), result, out)
        table.settle()
        result.recorded.amount += table.correction  # the database's sums, not the lines'
    finally:
        close = getattr(lines, "close", None)
        if close is not None:
            close()  # a generator's close ends its worker pool
        pages.stop()
    return finished(result, reader, digest, path)


def finished(result: Reconciliation, reader: Hashing, digest: str, path: Path) -> Reconciliation:
    result.sha256, result.bytes = reader.plain.hexdigest(), reader.size
    result.id_digest = reader.digest.hexdigest()
    if result.id_digest != digest:
        raise UsageError(f"{path} changed while it was being verified; run verify again")
    return result


def reconcile_sqlite(
    path: Path, database: Database, limits: dict[str, Any], report: Path | None, digest: str
) -> Reconciliation:
    """Both sides in temporary SQLite files, joined whatever their order."""
    result = Reconciliation(path.name, report=report)
    lines, reader = read_export(path, limits)
    with tempfile.TemporaryDirectory(prefix="loanstack-verify-") as work:
        table = TableReader(database, mine(digest), Path(work) / "stored.sqlite")
        table.start()
        db = sqlite3.connect(Path(work) / "lines.sqlite")
        try:
            db.executescript(FAST + LINES)
            insert(db, "INSERT INTO line VALUES (?, ?, ?, ?, ?, ?)", lines)
            db.executescript(FIRST_LINES)
            finished(result, reader, digest, path)
            table.result()
            db.execute("ATTACH DATABASE ? AS db", (str(Path(work) / "stored.sqlite"),))
            result.source.add_all(db.execute(SOURCE_LOANS))
            result.recorded.add_all(db.execute(RECORDED_LOANS))
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
            table.join()
    return result


def export_digest(path: Path) -> str:
    """The export's digest as migrate's object keys carry it (the format, a NUL, its bytes):
    rows whose source holds its first 24 characters were recorded by this export. Hashed ahead
    of the line-by-line pass so that the table can be read meanwhile; that pass hashes again and
    must agree. Only the migration id's digest: the file's own SHA-256 is that pass's."""
    kind = export_kind(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise UsageError(f"cannot read export {path}: {exc.strerror}") from exc
    digest = hashlib.sha256(kind.encode() + b"\0")
    with handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def insert(db: sqlite3.Connection, statement: str, rows: Iterable[Any]) -> None:
    """executemany in batches: an iterator is consumed lazily, so memory holds one batch."""
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= 20_000:
            db.executemany(statement, batch)
            batch.clear()
    db.executemany(statement, batch)
    db.commit()


def check(
    target: Any, stack: StackRecord, path: Path, report: Path | None = None
) -> Reconciliation:
    """Reconcile `path` with the stack's database, judged with its function's thresholds."""
    database = Database(target.client("rds-data"), stack.cluster_arn, stack.master_secret_arn)
    limits = thresholds(function_environment(target, stack))
    return reconcile(path, database, limits, report)


def after_migrate(
    target: Any, stack: StackRecord, migrated: Mapping[str, Any], path: Path, console: Console
) -> dict[str, Any]:
    """`migrate`'s last step: the proof, printed, as the report's "verify" entry. An export that
    is no longer the one migrated (another SHA-256) does not reconcile whatever its lines say."""
    result = check(target, stack, path)
    print_result(console, result)
    summary = result.summary()
    if result.sha256 != migrated.get("sha256"):
        summary["reconciled"] = False
        summary["error"] = f"{path} changed since it was migrated (SHA-256 {result.sha256[:24]})"
        console.print(Text(summary["error"], style="bold red"))
    return summary


def function_environment(target: Any, stack: StackRecord) -> dict[str, str]:
    """The validation function's environment (its thresholds), so the rules judge as it did."""
    name = stack.function_name
    found = target.client("lambda").get_function_configuration(FunctionName=name)
    return dict(found.get("Environment", {}).get("Variables", {}))
