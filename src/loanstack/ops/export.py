"""The export side of `loanstack migrate`: the first pass that refuses bad input before anything
is uploaded, and the chunk files cut from the export. The columns, the S3 layout and the line
splitting are the validation function's batch contract (SPEC D6), read from its module.
"""

from __future__ import annotations

import codecs
import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from loanstack import functions
from loanstack.errors import UsageError

# The batch contract is the validation function's (its S3 layout, columns and decisions): read
# from its module, never restated here.
BATCH = functions.contract(functions.VALIDATION)


FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


REQUIRED_COLUMNS: tuple[str, ...] = tuple(f for f in BATCH.FIELDS if f not in BATCH.OPTIONAL_FIELDS)


DEFAULT_CHUNK_ROWS = 10_000


READ_BYTES = 1 << 20


@dataclass
class Export:
    """What the first pass learned: the id, the format, the header (CSV), the data lines."""

    path: Path
    kind: str
    digest: str
    header: bytes | None
    header_line: int  # the physical line of the CSV header (0 for JSON Lines)
    chunk_rows: int = DEFAULT_CHUNK_ROWS

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
    digest = hashlib.sha256(kind.encode() + b"\0")
    header: bytes | None = None
    header_line = 0
    with handle:
        for number, line in physical_lines(handle, digest):
            if header is None and line.strip():
                check_first_line(path, number, line)
                if kind != "csv":
                    header = b""
                    continue
                header, header_line = line, number
                check_columns(path, number, line)
    if header is None:
        raise UsageError(f"{path} holds no rows")
    return Export(path, kind, digest.hexdigest(), header if kind == "csv" else None, header_line)


def physical_lines(handle: IO[bytes], digest: Any = None) -> Iterator[tuple[int, bytes]]:
    """(number, bytes without the newline), split on b"\\n" exactly as the function splits."""
    rest = b""
    number = 0
    for block in iter(lambda: handle.read(READ_BYTES), b""):
        if digest is not None:
            digest.update(block)
        *complete, rest = (rest + block).split(b"\n")
        for line in complete:
            number += 1
            yield number, line
    if rest:
        yield number + 1, rest


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
    import csv

    try:
        columns = next(csv.reader([line.decode("utf-8-sig")], strict=True))
    except csv.Error as exc:
        raise UsageError(f"{path}: the CSV header (line {number}) is not valid CSV: {exc}") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise UsageError(
            f"{path}: the CSV header (line {number}) lacks {', '.join(missing)}; "
            f"the columns are {', '.join(REQUIRED_COLUMNS)} and {', '.join(BATCH.OPTIONAL_FIELDS)}"
        )


def chunks(export: Export, rows: int) -> Iterator[tuple[Chunk, IO[bytes]]]:
    """Each chunk with its file (a temporary file, rewound): at most `rows` data lines."""
    number, current, body = 0, None, None
    with export.path.open("rb") as handle:
        for line_number, line in physical_lines(handle):
            if line_number <= export.header_line:
                continue  # the CSV header and any blank lines before it
            if current is None and not line.strip():
                continue  # blank lines between chunks are no rows
            if current is None:
                number += 1
                current = Chunk(number, line_number, 0)
                body = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the caller, per chunk
                if export.header is not None:
                    body.write(export.header + b"\n")
            assert body is not None
            body.write(line + b"\n")
            current.lines = line_number - current.first_line + 1
            if current.lines >= rows:
                yield finished(current, body)
                current, body = None, None
        if current is not None and body is not None:
            yield finished(current, body)


def finished(chunk: Chunk, body: IO[bytes]) -> tuple[Chunk, IO[bytes]]:
    chunk.size = body.tell()
    body.seek(0)
    return chunk, body
