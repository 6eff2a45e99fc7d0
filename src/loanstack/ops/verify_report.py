"""`loanstack verify`, the verdict: each line's state, the control totals of both sides, the
issues (the first few kept for the terminal, all written to --report) and how they are printed."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.text import Text

from loanstack.errors import UsageError

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
SHOWN = 50  # issues printed; the rest are counted (all go to --report)


HASH_TOTAL_MODULUS = 2**256
CENTS = re.compile(r"-?[0-9]+\.[0-9]{2}")  # an amount as DECIMAL(.., 2) prints it
ALL_CENTS = re.compile(r"(?:-?[0-9]+\.[0-9]{2}\n)*-?[0-9]+\.[0-9]{2}")  # each of them, a line each
SHA256_DIGEST = type(hashlib.sha256()).digest
BIG_ENDIAN = functools.partial(int.from_bytes, byteorder="big")


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
        self.add_all([(loan_id, amount)])

    def add_all(self, rows: Iterable[tuple[str, str]]) -> None:
        """Many loans at once: a million rows paid ~10 µs each through `add` (a method call, a
        Decimal sum and a 256-bit modulo per row), then ~5 µs in a Python loop; here by C-level
        maps (`amount_sum`, `id_hash_sum`), reduced once."""
        batch = rows if isinstance(rows, list) else list(rows)
        if batch:
            ids, amounts = zip(*batch, strict=True)
            self.add_sums(len(batch), amount_sum(amounts), id_hash_sum(ids))

    def add_sums(self, rows: int, amount: Decimal, id_hash: int) -> None:
        """Loans summed elsewhere: `id_hash` is their ids' `id_hash_sum`, not yet reduced (the
        export's side and the table's side share it for the ids both hold: hashed once)."""
        self.rows += rows
        self.amount += amount
        self.id_hash = (self.id_hash + id_hash) % HASH_TOTAL_MODULUS

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "loanAmount": str(self.amount.quantize(Decimal("0.01"))),
            "loanIdHashTotal": f"{self.id_hash:064x}",
        }


def amount_sum(amounts: Sequence[str]) -> Decimal:
    """The amounts' exact sum: when all are written with two decimals (as the table and verify
    write them), checked by one regular expression and summed as integer cents."""
    digits = "\n".join(amounts)
    whole = digits.replace(".", "").split("\n")
    if len(whole) == len(amounts) and ALL_CENTS.fullmatch(digits):
        return Decimal(sum(map(int, whole))).scaleb(-2)
    cents, odd = 0, Decimal(0)
    for amount in amounts:
        if CENTS.fullmatch(amount):
            cents += int(amount.replace(".", "", 1))
        else:
            odd += Decimal(amount)
    return Decimal(cents).scaleb(-2) + odd


def id_hash_sum(ids: Iterable[str]) -> int:
    """The sum of the ids' SHA-256 (UTF-8) as big-endian integers, unreduced."""
    hashes = map(SHA256_DIGEST, map(hashlib.sha256, map(str.encode, ids)))
    return sum(map(BIG_ENDIAN, hashes))


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
