"""`loanstack verify`, the export's side: every data line judged by the validation function's own
code (imported from lib/functions, never copied), streamed, and the bytes hashed as they pass."""

from __future__ import annotations

import hashlib
import io
import itertools
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from loanstack import functions
from loanstack.errors import DeployError, UsageError
from loanstack.ops.export import FORMATS
from loanstack.ops.verify_templates import Line as Line  # verify and verify_merge use it from here
from loanstack.ops.verify_templates import Templates

# The thresholds the deployed function decides with (README, "Rules").
THRESHOLD_PREFIXES = ("MIN_", "MAX_", "REVIEW_", "TERMS_")


@cache
def validation() -> ModuleType:
    """The validation function's module, loaded from its source as Lambda loads `index`."""
    return functions.fresh(functions.VALIDATION)


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


def export_kind(path: Path) -> str:
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UsageError(f"{path}: unknown export format; name it .csv, .jsonl or .ndjson")
    return kind


def read_export(
    path: Path, limits: dict[str, Any], workers: int | None = None
) -> tuple[Iterator[Line], Hashing]:
    """Each data line of the export judged by the function's code, and the reader's digest
    (complete once the lines are consumed). A large export is judged by `workers` processes
    (default: one per CPU), started here."""
    kind = export_kind(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise UsageError(f"cannot read export {path}: {exc.strerror}") from exc
    reader = Hashing(handle, kind)
    if workers is None:
        workers = (os.cpu_count() or 1) if path.stat().st_size >= PARALLEL_BYTES else 1
    if workers > 1:
        return Parallel(handle, reader, path, limits, workers).lines(), reader
    return judged(handle, reader, path, limits), reader


def judged(
    handle: IO[bytes], reader: Hashing, path: Path, limits: dict[str, Any]
) -> Iterator[Line]:
    """The lines of `reader` as the function reads and decides them (its parser, its rules)."""
    fn = validation()
    with handle:
        rows = fn.rows_of(f"incoming/{path.name}", fn.text_lines(reader, fn.MAX_LINE_BYTES))
        yield from judge(rows, limits, path)


# What the rules read of a normalised application: the decision is a function of these and the
# thresholds alone (the ids only label the result; tests/unit/test_verify_decisions.py holds the
# function to it by recording what `decide` reads). Lines whose values have the same reprs are
# the same inputs (a float's repr round-trips exactly; an int, a str and None print apart), so
# their decision is computed once and reused: the same rules' answer, not the function's report
# (D8). A loan book repeats a few products' numbers; the cache is bounded, so memory stays flat.
DECISION_FIELDS = (
    "loanType", "loanAmount", "annualInterestRate", "termMonths", "monthlyDebtPayments",
    "annualIncome", "collateralValue", "creditScore",
)  # fmt: skip
DECISIONS_KEPT = 4096
# A miss costs the key (~5 µs a line under load): a batch whose first lines mostly miss (a book
# of all-distinct numbers) stops looking up, so it pays the rules alone, as before the cache.
PROBE_LINES = 512


def judge(
    rows: Iterable[tuple[int, Any]],
    limits: dict[str, Any],
    path: Path,
    clean_out: list[dict[str, Any]] | None = None,
) -> Iterator[Line]:
    """Each (line number, raw row) as the function decides it (`evaluate`: its schema, then its
    rules), fingerprinted; each normalised application also appended to `clean_out`, if given."""
    fn = validation()
    validate, decide, fingerprint, to_cents, exact = (
        fn.validate,
        fn.decide,
        fn.fingerprint,
        fn.to_cents,
        fn.exact,
    )
    unreadable, bad_header = fn.Unreadable, fn.BadHeader
    decisions: dict[tuple[str, ...], str] = {}
    caching, looked_up, hits = True, 0, 0
    for number, raw in rows:
        if isinstance(raw, unreadable):
            if isinstance(raw, bad_header):
                raise UsageError(f"{path}: {raw.message}")
            loan_id = raw.loan_id if isinstance(raw.loan_id, str) else None
            yield number, loan_id, None, "INVALID", f"{raw.field}: {raw.message}", None
            continue
        clean, errors = validate(raw)
        if clean is None:
            loan_id = raw.get("loanId") if isinstance(raw, dict) else None
            why = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
            yield number, loan_id if isinstance(loan_id, str) else None, None, "INVALID", why, None
            continue
        if clean_out is not None:
            clean_out.append(clean)
        if looked_up == PROBE_LINES:
            caching = hits * 4 >= PROBE_LINES
        if caching:
            looked_up += 1
            inputs = tuple(map(repr, map(clean.get, DECISION_FIELDS)))
            decision = decisions.get(inputs)
            if decision is not None:
                hits += 1
            else:
                if len(decisions) >= DECISIONS_KEPT:
                    decisions.clear()
                decision = decisions[inputs] = decide(clean, limits)["decision"]
        else:
            decision = decide(clean, limits)["decision"]
        amount = str(to_cents(exact(clean["loanAmount"])))
        yield number, clean["loanId"], fingerprint(clean), decision, "", amount


# Judging a line (parsing, the rules, the fingerprint) is most of verify's work per line, all of
# it Python: on one core it caps verify near the rules' own rate. A large export is split into
# blocks of whole lines, judged by worker processes (forked by a server process that loaded
# this module: `worker_context`) and collected in order, at most two
# batches per worker in flight, so memory stays flat.
PARALLEL_BYTES = 4 << 20
BATCH_LINES = 5000
BLOCK_BYTES = 1 << 20  # ~7,000 lines of a loan book
_job: dict[str, Any] = {}  # a worker's export name, header line and thresholds


def _start_worker(path: Path, header: tuple[int, str] | None, limits: dict[str, Any]) -> None:
    _job.clear()  # a worker's templates are its export's own
    _job.update(path=path, header=header, limits=limits)


def _judge_block(number: int, data: bytes) -> list[Line]:
    """A worker's block of whole lines (`Parallel.cut`), split and decoded here; in a CSV's
    first block, the header and what comes before it are not rows."""
    header = _job["header"]
    if header is not None and number > header[0]:
        return _templates(header).judge_block(number, data)  # the bytes of lines alike in place
    lines = block_lines(number, data)
    if header is not None:
        lines = [line for line in lines if line[0] > header[0]]
    return _judge_batch(lines)


def _templates(header: tuple[int, str]) -> Templates:
    """The worker's templates, made with its first CSV block."""
    templates: Templates | None = _job.get("templates")
    if templates is None:
        templates = _job["templates"] = Templates(
            header, _job["limits"], _job["path"], validation(), judge
        )
    return templates


def _judge_batch(batch: list[tuple[int, str]]) -> list[Line]:
    """A worker's batch, through the same reader as one pass would take it (a CSV's header
    first, so its cells name the fields)."""
    path, header = _job["path"], _job["header"]
    if header is not None:
        return list(_templates(header).judge(batch))
    rows = validation().rows_of(f"incoming/{path.name}", batch)
    return list(judge(rows, _job["limits"], path))


def worker_context() -> Any:
    """Workers forked from a server process that runs no thread, never from this one: `migrate`
    verifies after its uploads and an embedded emulator serves from threads here, and a child
    forked while another thread holds a lock (logging's, an allocator's, boto3's) waits on it
    forever (two benchmark runs did, with no CPU). The server imports this module once, so a
    worker starts with the tool's code loaded.
    https://docs.python.org/3/library/multiprocessing.html#contexts-and-start-methods"""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


class Parallel:
    """The export's lines judged by a pool of worker processes: the export cut into blocks of
    whole lines (a plain bytes object to each worker, which splits and decodes it with the
    function's own reader), so the main process neither splits nor decodes a line. The pool
    starts with the first line asked for (`lines`), so a failure before it leaves no worker."""

    def __init__(
        self, handle: IO[bytes], reader: Hashing, path: Path, limits: dict[str, Any], workers: int
    ) -> None:
        self.handle, self.path, self.limits, self.workers = handle, path, limits, workers
        self.reader = reader
        self.texts: Iterator[tuple[int, Any]] | None = None  # the rest, line by line
        self.read: list[tuple[int, bytes]] = []  # blocks read for the header, not yet judged
        self.blocks = self.cut()
        self.header = self.csv_header() if path.suffix.lower() == ".csv" else None
        self.pool: ProcessPoolExecutor | None = None

    def cut(self) -> Iterator[tuple[int, bytes]]:
        """(number of its first line, whole lines): each block ends after a complete line end
        (a "\r" is complete only when a byte other than "\n" follows it). A line that no block
        of BLOCK_BYTES ends leaves the rest of the file to the function's reader, line by line
        (`texts`), which bounds its memory whatever the line's length."""
        fn, number, carry = validation(), 1, b""
        while block := self.reader.read(BLOCK_BYTES):
            data = carry + block if carry else block
            end = max(data.rfind(b"\n"), data.rfind(b"\r", 0, len(data) - 1)) + 1
            if end == 0 and len(data) > fn.MAX_LINE_BYTES:
                self.texts = rest_of(fn, number, data, self.reader)
                return
            data, carry = (data[:end], data[end:]) if end else (b"", data)
            if data:
                yield number, data
                number += data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")
        if carry:
            yield number, carry

    def csv_header(self) -> tuple[int, str] | None:
        """The CSV's first non-blank line, checked as the function checks it."""
        fn = validation()
        for number, text in self.first_lines():
            if isinstance(text, str) and not text.strip():
                continue
            cells = text if isinstance(text, fn.Unreadable) else fn.csv_cells(text)
            checked = fn.csv_header(number, cells)
            if isinstance(checked, fn.BadHeader):
                self.handle.close()
                raise UsageError(f"{self.path}: {checked.message}")
            return number, str(text)
        return None

    def first_lines(self) -> Iterator[tuple[int, Any]]:
        """The lines up to the header: of the blocks (kept to be judged), then of `texts`."""
        for number, data in self.blocks:
            self.read.append((number, data))
            yield from block_lines(number, data)
        if self.texts is not None:
            yield from self.texts

    def batches(self, texts: Iterator[tuple[int, Any]]) -> Iterator[list[tuple[int, Any]]]:
        """Decoded lines in batches for the workers; an unreadable one (too long, not UTF-8)
        alone, in its place, to be judged here (its reader's object stays in this process)."""
        fn, batch = validation(), list[tuple[int, Any]]()
        for number, text in texts:
            if isinstance(text, fn.Unreadable):
                if batch:
                    yield batch
                    batch = []
                yield [(number, text)]
                continue
            batch.append((number, text))
            if len(batch) >= BATCH_LINES:
                yield batch
                batch = []
        if batch:
            yield batch

    def jobs(self, pool: ProcessPoolExecutor) -> Iterator[Future[list[Line]] | list[Line]]:
        """The lines' judgements in line order: a worker's future, or lines judged here."""
        fn = validation()
        for number, data in itertools.chain(self.read, self.blocks):
            yield pool.submit(_judge_block, number, data)
        if self.texts is not None:
            for batch in self.batches(self.texts):
                if isinstance(batch[0][1], fn.Unreadable):
                    yield list(judge(batch, self.limits, self.path))
                else:
                    yield pool.submit(_judge_batch, batch)

    def lines(self) -> Iterator[Line]:
        """Every line in order, at most two blocks per worker in flight. A worker that dies
        (killed, out of memory) breaks the pool: every block not yet answered fails at once
        (BrokenProcessPool), where multiprocessing.Pool replaced the worker and waited for its
        block forever. The pool is shut down on every way out.
        https://docs.python.org/3/library/concurrent.futures.html#concurrent.futures.process.BrokenProcessPool"""
        self.pool = pool = ProcessPoolExecutor(
            self.workers,
            mp_context=worker_context(),
            initializer=_start_worker,
            initargs=(self.path, self.header, self.limits),
        )
        pending: deque[Future[list[Line]] | list[Line]] = deque()
        broken = False
        try:
            with self.handle:
                for job in self.jobs(pool):
                    pending.append(job)
                    if len(pending) >= 2 * self.workers:
                        yield from answer(pending.popleft(), pool)
                while pending:
                    yield from answer(pending.popleft(), pool)
        except BrokenProcessPool as exc:
            broken = True
            raise DeployError(f"a verify worker process died ({exc}); run verify again") from None
        finally:
            # Stopped early (an error, Unordered): blocks not started are cancelled; the workers
            # finish the ones they hold and end, and are joined. After a death the rest are
            # killed: a broken pool's own shutdown can wait for ever too.
            if broken:
                killed = workers_of(pool)
                for process in killed:
                    process.kill()
                for process in killed:  # SIGKILL lands later: gone when verify has answered
                    process.join(KILL_WAIT_SECONDS)
            pool.shutdown(wait=not broken, cancel_futures=True)


POLL_SECONDS = 1.0  # how often a wait for a block looks whether a worker died
KILL_WAIT_SECONDS = 5.0  # a killed worker's exit, waited for (it cannot refuse SIGKILL)


def answer(job: Future[list[Line]] | list[Line], pool: ProcessPoolExecutor) -> list[Line]:
    """The block's lines. A worker killed while it held the executor's call queue can leave
    the executor waiting without breaking it (CPython 3.11, seen once in CI), so the wait looks
    at the workers itself between polls."""
    if isinstance(job, list):
        return job
    while True:
        try:
            return job.result(timeout=POLL_SECONDS)
        except TimeoutError:
            dead = [p.exitcode for p in workers_of(pool) if p.exitcode is not None]
            if dead:
                raise BrokenProcessPool(f"a worker exited with code {dead[0]}") from None


def workers_of(pool: ProcessPoolExecutor) -> list[Any]:
    """The executor's worker processes (its `_processes`: no public way to ask)."""
    return list(dict(getattr(pool, "_processes", None) or {}).values())


def block_lines(number: int, data: bytes) -> list[tuple[int, Any]]:
    """A block's lines as the function's reader numbers them in the whole file: a block after
    the first is read behind a blank line, so that its first line is not the file's first (a
    byte order mark opens only that one); the blank line is dropped."""
    fn = validation()
    if number == 1:
        return list(fn.text_lines(io.BytesIO(data), fn.MAX_LINE_BYTES))
    texts = fn.text_lines(io.BytesIO(b"\n" + data), fn.MAX_LINE_BYTES)
    return [(n + number - 2, text) for n, text in texts][1:]


class Prefixed:
    """A reader giving `first`, then what `reader` reads."""

    def __init__(self, first: bytes, reader: Hashing) -> None:
        self.first, self.reader = first, reader

    def read(self, size: int) -> bytes:
        if self.first:
            first, self.first = self.first, b""
            return first
        return self.reader.read(size)


def rest_of(fn: ModuleType, number: int, data: bytes, reader: Hashing) -> Iterator[tuple[int, Any]]:
    """The rest of the file from line `number` (`data`, then the reader), line by line."""
    if number == 1:
        yield from fn.text_lines(Prefixed(data, reader), fn.MAX_LINE_BYTES)
        return
    texts = fn.text_lines(Prefixed(b"\n" + data, reader), fn.MAX_LINE_BYTES)
    next(texts)  # the blank line in front
    for n, text in texts:
        yield n + number - 2, text


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
