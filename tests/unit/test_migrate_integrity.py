"""`loanstack migrate` reads what it hashed (SPEC D8): one handle for the digest and the chunks,
the function's line endings, and one stored row per loan id whatever the chunk size."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from loanstack.ops import export as migrate
from loanstack.testing import loanbook as exports

HEADER = b",".join(c.encode() for c in exports.COLUMNS)


def cut(export: migrate.Export, rows: int) -> list[tuple[migrate.Chunk, bytes]]:
    return [(chunk, body.read()) for chunk, body in migrate.chunks(export, rows)]


def test_an_export_renamed_over_after_inspection_is_not_mixed_in(tmp_path: Path) -> None:
    """Reproducer: an export job replaced the file (atomic rename) between the hash and the cut:
    the old header went on top of the new rows (amount and income swapped) under the old id."""
    path = tmp_path / "book.csv"
    old = HEADER + b"\n" + exports.row("L-1") + b"\n"
    path.write_bytes(old)
    export = migrate.inspect(path)
    swapped = list(exports.COLUMNS)
    swapped[3], swapped[7] = swapped[7], swapped[3]  # loanAmount <-> annualIncome
    fresh = tmp_path / "book.csv.tmp"
    fresh.write_bytes(",".join(swapped).encode() + b"\n" + exports.row("L-1") + b"\n")
    os.replace(fresh, path)
    [(_, body)] = cut(export, 10)
    assert body == old  # the file that was hashed, header and rows alike
    export.handle.close()  # type: ignore[union-attr]


def test_an_export_written_in_place_after_inspection_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "book.jsonl"
    path.write_bytes(b"".join(json.dumps({"loanId": f"L-{i}"}).encode() + b"\n" for i in range(4)))
    export = migrate.inspect(path)
    time.sleep(0.02)  # past the file system's timestamp granularity
    with path.open("r+b") as handle:
        handle.seek(12)
        handle.write(b"9")  # same size, other content
    with pytest.raises(migrate.UsageError, match="changed while it was migrated"):
        cut(export, 2)
    export.handle.close()  # type: ignore[union-attr]


@pytest.mark.parametrize("end", [b"\r", b"\r\n", b"\n"], ids=["CR", "CRLF", "LF"])
def test_line_endings_are_the_functions_and_line_numbers_follow(tmp_path: Path, end: bytes) -> None:
    """Reproducer: a CR-only CSV was one line to migrate (refused as an invalid header) and to
    the function (0 rows)."""
    path = tmp_path / "mac.csv"
    lines = [HEADER, exports.row("L-1"), exports.row("L-2"), b"", exports.row("L-3")]
    path.write_bytes(end.join(lines) + end)
    export = migrate.inspect(path)
    chunks = cut(export, 2)
    assert [(c.first_line, c.lines) for c, _ in chunks] == [(2, 2), (5, 1)]  # 4 is blank
    for chunk, body in chunks:
        got = body.split(b"\n")
        assert got[0] == HEADER and got[-1] == b""
        for n, text in enumerate(got[1:-1], start=2):
            assert lines[chunk.export_line(n, export) - 1] == text
    export.handle.close()  # type: ignore[union-attr]


def test_a_header_naming_a_column_twice_is_refused_before_upload(tmp_path: Path) -> None:
    path = tmp_path / "twice.csv"
    path.write_bytes(HEADER + b",loanAmount\n" + exports.row("L-1") + b",1\n")
    with pytest.raises(migrate.UsageError, match="names loanAmount more than once"):
        migrate.inspect(path)


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_the_first_line_of_a_loan_id_is_migrated_whatever_the_chunk_size(
    tmp_path: Path, kind: str
) -> None:
    """Reproducer: one loan id twice with other content: which row was stored depended on
    --chunk-rows (and on which chunk Lambda decided first)."""
    apps = [
        exports.approved_application("L-1", "A-1"),
        exports.approved_application("L-2", "A-2"),
        {**exports.approved_application("L-1", "A-1"), "loanAmount": 250000},  # line 3: held back
        exports.approved_application("L-1", "A-1"),  # line 4: the same application again: sent
    ]
    if kind == "csv":
        text = [HEADER] + [",".join(str(a[c]) for c in exports.COLUMNS).encode() for a in apps]
        offset = 1
    else:
        text = [json.dumps(a).encode() for a in apps]
        offset = 0
    path = tmp_path / f"dup.{kind}"
    path.write_bytes(b"\n".join(text) + b"\n")
    sent_by_size = []
    for rows in (1, 2, 3, 10):
        export = migrate.inspect(path)
        chunks = cut(export, rows)
        duplicates = [d for c, _ in chunks for d in c.duplicates]
        assert [(d["line"], d["loanId"], d["decision"]) for d in duplicates] == [
            (3 + offset, "L-1", "CONFLICT")
        ]
        assert f"also on line {1 + offset}" in duplicates[0]["errors"][0]["message"]
        sent = []
        for chunk, body in chunks:
            data = body.split(b"\n")[offset:-1]
            sent += [(chunk.first_line + i, line) for i, line in enumerate(data) if line.strip()]
        sent_by_size.append(sent)
        export.handle.close()  # type: ignore[union-attr]
    assert all(s == sent_by_size[0] for s in sent_by_size)
    assert [n for n, _ in sent_by_size[0]] == [1 + offset, 2 + offset, 4 + offset]


def test_a_long_line_is_split_in_linear_time(tmp_path: Path) -> None:
    """The splitter re-joined the pending line on every read: quadratic in a line's length."""
    path = tmp_path / "long.jsonl"
    path.write_bytes(b'{"loanId": "L-1"}\n' + b"x" * (64 << 20) + b"\n{}\n")
    started = time.perf_counter()
    with path.open("rb") as handle:
        lines = [(n, len(line)) for n, line in migrate.physical_lines(handle)]
    assert lines == [(1, 17), (2, 64 << 20), (3, 2)]
    assert time.perf_counter() - started < 5  # quadratic: ~64 reads of up to 64 MiB each


def test_a_line_the_function_cannot_read_holds_no_loan_id(tmp_path: Path) -> None:
    """As verify reads it: a line that is not UTF-8 (INVALID in the function) does not make the
    next line of its loan id a duplicate; neither does a JSON object naming loanId twice."""
    path = tmp_path / "bad.csv"
    broken = exports.row("L-1", applicantId="A-\xff").replace("\xff".encode(), b"\xff")
    path.write_bytes(HEADER + b"\n" + broken + b"\n" + exports.row("L-1") + b"\n")
    export = migrate.inspect(path)
    assert [d for c, _ in cut(export, 10) for d in c.duplicates] == []
    export.handle.close()  # type: ignore[union-attr]
    path = tmp_path / "bad.jsonl"
    app = exports.approved_application("L-1", "A-1")
    twice = json.dumps(app)[:-1] + ', "loanId": "L-2"}'
    path.write_bytes(f"{twice}\n{json.dumps(app)}\n".encode())
    export = migrate.inspect(path)
    assert [d for c, _ in cut(export, 10) for d in c.duplicates] == []
    export.handle.close()  # type: ignore[union-attr]
