"""The export side of `loanstack migrate`: the first pass that refuses bad input before anything
is uploaded, and the chunk files cut from the export. The columns, the S3 layout and the line
splitting are the validation function's batch contract (SPEC D6), read from its module.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from loanstack import functions
from loanstack.errors import UsageError
from loanstack.ops.firstlines import FirstLines, IdOrder

# The batch contract is the validation function's (its S3 layout, columns and decisions): read
# from its module, never restated here.
BATCH = functions.contract(functions.VALIDATION)


FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


REQUIRED_COLUMNS: tuple[str, ...] = tuple(f for f in BATCH.FIELDS if f not in BATCH.OPTIONAL_FIELDS)


DEFAULT_CHUNK_ROWS = 10_000


# What each read of the export takes: cut at its last line end, a block of whole lines is split,
# judged and written with one call each, not line by line (docs/benchmarks.md, "Round 5").
READ_BYTES = 4 << 20


@dataclass
class Export:
    """What the first pass learned: the id, the format, the header (CSV), the data lines."""

    path: Path
    kind: str
    digest: str
    header: bytes | None
    header_line: int  # the physical line of the CSV header (0 for JSON Lines)
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    # The handle the digest was read through, kept open so the chunks are cut from the same
    # file even if an export job renames another over the path; and its identity then (device,
    # inode, size, mtime), checked again before each chunk leaves (D8).
    handle: IO[bytes] | None = None
    identity: tuple[int, int, int, int] | None = None
    order: IdOrder = field(default_factory=IdOrder)  # learned by chunks(), in the same pass
    # The file's own SHA-256 (what `sha256sum` prints) and byte count, for the report and the
    # manifest; `digest` above also covers the format and names the migration.
    sha256: str = ""
    size: int = 0

    @property
    def migration_id(self) -> str:
        """The content's digest and how it is cut: a resume with another --chunk-rows is another
        migration, so no report of a chunk cut differently is ever taken for one of this cut."""
        return f"{self.digest[:24]}-{self.chunk_rows}"


@dataclass
class Chunk:
    number: int
    first_line: int  # the export's physical line of the chunk's first data line
    lines: int  # physical data lines in the chunk (blank ones included)
    size: int = 0
    # Lines not sent because their loan id came earlier in the export (D8: the first line with
    # an id is the one migrated, whatever the chunk size or the order chunks are decided in).
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    # The chunk file's SHA-256 (as cut) and the S3 version that holds it (the manifest's).
    sha256: str = ""
    version_id: str | None = None

    def key(self, export: Export) -> str:
        return f"{BATCH.INCOMING}{export.migration_id}/part-{self.number:05d}.{export.kind}"

    def report_key(self, export: Export) -> str:
        return str(BATCH.report_key(self.key(export)))

    def export_line(self, chunk_line: int, export: Export) -> int:
        """A line of the chunk's report as a line of the export (a CSV chunk opens with the
        header, so its data starts at line 2)."""
        return self.first_line + chunk_line - (2 if export.kind == "csv" else 1)


def inspect(path: Path) -> Export:
    """Hash the export and check what the function cannot: format, encoding, CSV columns."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UsageError(
            f"{path}: unknown export format {path.suffix or '(no extension)'!r}; "
            "name it .csv, .jsonl or .ndjson"
        )
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise UsageError(f"cannot read export {path}: {exc.strerror}") from exc
    digest = Digests(kind)
    header: bytes | None = None
    header_line = 0
    try:
        before = identity(handle)
        number = 0
        for block in line_blocks(handle, digest):
            if header is not None:
                continue  # only hashed: the header is found
            for line in split_lines(block):
                number += 1
                if line.strip():
                    check_first_line(path, number, line)
                    header, header_line = (line, number) if kind == "csv" else (b"", 0)
                    if kind == "csv":
                        check_columns(path, number, line)
                    break
        if header is None:
            raise UsageError(f"{path} holds no rows")
        if identity(handle) != before:
            raise UsageError(f"{path} changed while it was read; run again once it is complete")
    except BaseException:
        handle.close()
        raise
    return Export(
        path,
        kind,
        digest.tagged.hexdigest(),
        header if kind == "csv" else None,
        header_line,
        handle=handle,
        identity=before,
        sha256=digest.plain.hexdigest(),
        size=digest.size,
    )


class Digests:
    """Both digests of one read: `tagged` = sha256(format NUL bytes), which names the migration
    (the same bytes as .csv and as .jsonl are two migrations), and `plain` = the file's SHA-256
    as `sha256sum` prints it, which the report and the manifest give an auditor."""

    def __init__(self, kind: str) -> None:
        self.tagged = hashlib.sha256(kind.encode() + b"\0")
        self.plain = hashlib.sha256()
        self.size = 0

    def update(self, block: bytes) -> None:
        self.tagged.update(block)
        self.plain.update(block)
        self.size += len(block)


# Lines end at "\r\n", "\n" or a lone "\r" exactly as the validation function splits them, so
# the export's line numbers are the function's: https://docs.python.org/3/glossary.html#term-universal-newlines
LINE_END = re.compile(rb"\r\n|\r|\n")


def line_blocks(handle: Readable, digest: Any = None) -> Iterator[bytes]:
    """The file in blocks of whole lines, each of about READ_BYTES: a read is cut after its last
    line end ("\n", or a "\r" that is not the read's last byte: a "\r\n" is never cut), the
    rest carried to the next block. Every block but the file's last ends with a line end; a
    line longer than a read is carried whole (joined once, when it ends)."""
    carry: list[bytes] = []
    for data in iter(lambda: handle.read(READ_BYTES), b""):
        if digest is not None:
            digest.update(data)
        cut = max(data.rfind(b"\n"), data.rfind(b"\r", 0, len(data) - 1)) + 1
        if cut == 0:
            carry.append(data)
            continue
        yield b"".join([*carry, data[:cut]]) if carry else data[:cut]
        carry = [data[cut:]] if cut < len(data) else []
    if carry:
        yield b"".join(carry)


def split_lines(block: bytes) -> list[bytes]:
    """A block's lines (line_blocks), without their line ends, as `physical_lines` gives them."""
    lines = LINE_END.split(block) if b"\r" in block else block.split(b"\n")
    if not lines[-1]:
        lines.pop()  # the block ended with a line end: nothing follows it
    return lines


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class PositionalReader:
    """Reads of a file by position (os.pread), leaving the handle's own position alone: the
    export read again from its start while it is being cut."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.fd, self.at = handle.fileno(), 0

    def read(self, size: int) -> bytes:
        data = os.pread(self.fd, size, self.at)
        self.at += len(data)
        return data


def physical_lines(handle: Readable, digest: Any = None) -> Iterator[tuple[int, bytes]]:
    """(number, bytes without the line end), split as the function splits; linear in the file
    (a long line's pieces are joined once, when it ends)."""
    parts: list[bytes] = []
    number, after_cr = 0, False
    for block in iter(lambda: handle.read(READ_BYTES), b""):
        if digest is not None:
            digest.update(block)
        if after_cr and block.startswith(b"\n"):
            block = block[1:]  # the "\n" of a "\r\n" cut between two reads
        after_cr = block.endswith(b"\r")
        *complete, rest = LINE_END.split(block) if b"\r" in block else block.split(b"\n")
        for line in complete:
            number += 1
            yield number, b"".join([*parts, line]) if parts else line
            parts = []
        if rest:
            parts.append(rest)
    if parts:
        yield number + 1, b"".join(parts)


def check_first_line(path: Path, number: int, line: bytes) -> None:
    if line.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise UsageError(f"{path} is UTF-16, not UTF-8; convert it: iconv -f UTF-16 -t UTF-8")
    try:
        line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{path} is not UTF-8 (line {number}, byte {exc.start + 1}); convert it, e.g. "
            "iconv -f LATIN1 -t UTF-8"
        ) from exc


def check_columns(path: Path, number: int, line: bytes) -> None:
    try:
        columns = next(csv.reader([line.decode("utf-8-sig")], strict=True))
    except csv.Error as exc:
        raise UsageError(f"{path}: the CSV header (line {number}) is not valid CSV: {exc}") from exc
    twice = sorted({c for c in columns if c and columns.count(c) > 1})
    if twice:
        raise UsageError(
            f"{path}: the CSV header (line {number}) names {', '.join(twice)} more than once; "
            "which of the cells is meant cannot be known"
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise UsageError(
            f"{path}: the CSV header (line {number}) lacks {', '.join(missing)}; "
            f"the columns are {', '.join(REQUIRED_COLUMNS)} and collateralValue"
        )


# --- second pass: chunks ----------------------------------------------------------------------


def chunks(export: Export, rows: int) -> Iterator[tuple[Chunk, IO[bytes]]]:
    """Each chunk with its file (a temporary file, rewound): at most `rows` data lines.

    Cut from the handle the digest was read through, hashed again on the way; a chunk leaves
    only while that file is unchanged, and the end proves the digest (D8). A line whose loan id
    an earlier line holds goes as a blank line (numbers stay) and is the chunk's duplicate.
    """
    handle = export.handle if export.handle is not None else export.path.open("rb")
    handle.seek(0)
    digest = hashlib.sha256(export.kind.encode() + b"\0")
    export.order = IdOrder()

    def reread() -> Iterator[tuple[int, bytes]]:
        for number, line in physical_lines(PositionalReader(handle)):
            if number > export.header_line:
                yield number, line

    cutter = Cutter(
        export, rows, FirstLines(BATCH, export.kind, export.header, export.order, reread)
    )
    try:
        for block in line_blocks(handle, digest):
            for done in cutter.feed(split_lines(block)):
                check_unchanged(export, handle)
                yield done
        check_unchanged(export, handle)
        if digest.hexdigest() != export.digest:
            raise changed(export)
        if cutter.current is not None and cutter.body is not None:
            yield cutter.finished()
        if export.handle is None:
            handle.close()
    finally:
        cutter.first_lines.close()


class Cutter:
    """The chunk being cut: its lines are written a run at a time (one join and one write for
    the lines of a block that go to one chunk), hashed as they are written."""

    def __init__(self, export: Export, rows: int, first_lines: FirstLines) -> None:
        self.export, self.rows, self.first_lines = export, rows, first_lines
        self.number = 0  # the export's physical lines seen so far
        self.chunks = 0
        self.current: Chunk | None = None
        self.body: IO[bytes] | None = None
        self.digest = hashlib.sha256()

    def feed(self, lines: list[bytes]) -> Iterator[tuple[Chunk, IO[bytes]]]:
        """The chunks these lines (the export's next) complete."""
        export, i, n = self.export, 0, len(lines)
        if self.number < export.header_line:  # the CSV header and any blank lines before it
            i = min(export.header_line - self.number, n)
            if i == export.header_line - self.number and lines[i - 1] != export.header:
                raise changed(export)
        while i < n:
            if self.current is None:
                while i < n and not lines[i].strip():
                    i += 1  # blank lines between chunks are no rows
                if i == n:
                    break
                self.start(self.number + i + 1)
            assert self.current is not None and self.body is not None  # noqa: S101 (start)
            take = lines[i : i + self.rows - self.current.lines]
            self.write(self.number + i + 1, take)
            i += len(take)
            if self.current.lines >= self.rows:
                yield self.finished()
        self.number += n

    def start(self, first_line: int) -> None:
        self.chunks += 1
        self.current = Chunk(self.chunks, first_line, 0)
        self.body = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the caller, per chunk
        self.digest = hashlib.sha256()
        if self.export.header is not None:
            self.put(self.export.header + b"\n")

    def write(self, first: int, lines: list[bytes]) -> None:
        """Lines from the export's line `first` on, into the chunk; a duplicate goes as a blank
        line, and to the chunk's duplicates."""
        assert self.current is not None  # noqa: S101 (start)
        joined = b"\n".join(lines)
        held = self.first_lines.duplicates_in(first, lines, joined)
        if held:
            kept = list(lines)
            for i, problem in held:
                kept[i] = b""
                self.current.duplicates.append(problem)
            joined = b"\n".join(kept)
        self.put(joined + b"\n")
        self.current.lines += len(lines)

    def put(self, data: bytes) -> None:
        assert self.body is not None  # noqa: S101 (start)
        self.body.write(data)
        self.digest.update(data)

    def finished(self) -> tuple[Chunk, IO[bytes]]:
        chunk, body = self.current, self.body
        assert chunk is not None and body is not None  # noqa: S101 (start)
        chunk.size = body.tell()
        chunk.sha256 = self.digest.hexdigest()
        body.seek(0)
        self.current, self.body = None, None
        return chunk, body


def identity(handle: IO[bytes]) -> tuple[int, int, int, int]:
    """What changes when a file is written or replaced: device, inode, size, mtime."""
    found = os.fstat(handle.fileno())
    return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns)


def changed(export: Export) -> UsageError:
    return UsageError(
        f"{export.path} changed while it was migrated (its SHA-256 was {export.sha256[:24]}); "
        "wait until the export is complete, then run the command again"
    )


def check_unchanged(export: Export, handle: IO[bytes]) -> None:
    if export.identity is not None and identity(handle) != export.identity:
        raise changed(export)


# --- AWS side ---------------------------------------------------------------------------------
