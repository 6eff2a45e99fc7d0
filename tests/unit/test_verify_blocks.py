"""verify cuts a large export into blocks of whole lines for its workers (Parallel.cut), each
read by the function's own reader (block_lines): together they are exactly the lines one pass
of the reader gives, whatever the line ends (\\r, \\n, \\r\\n, one cut between two reads), byte
order marks, lines too long or not UTF-8, and block size; a line no block ends leaves the rest
to the reader line by line."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loanstack.ops import verify_export
from loanstack.testing import loanbook

FN = verify_export.validation()
PIECES = st.sampled_from(
    [b"L-1,A,1", b"", b"\xef\xbb\xbfbom", b"\xff\xfe", b"\xc3", b"\xa9", b"x" * 40, b'"q,"', b" "]
)
ENDS = st.sampled_from([b"\n", b"\r", b"\r\n", b"\n\r", b"\r\r\n", b""])


def lines_of(data: bytes, block: int, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    monkeypatch.setattr(verify_export, "BLOCK_BYTES", block)
    parallel = object.__new__(verify_export.Parallel)
    parallel.reader = verify_export.Hashing(io.BytesIO(data), "csv")
    parallel.texts = None
    found = [line for n, d in parallel.cut() for line in verify_export.block_lines(n, d)]
    found += list(parallel.texts or [])
    assert parallel.reader.size == len(data)
    return [(n, t if isinstance(t, str) else t.message) for n, t in found]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(PIECES, ENDS), max_size=30), st.integers(1, 64), st.integers(8, 64))
def test_blocks_give_the_lines_of_one_pass(
    monkeypatch: pytest.MonkeyPatch, pieces: list[tuple[bytes, bytes]], block: int, limit: int
) -> None:
    monkeypatch.setattr(
        FN, "MAX_LINE_BYTES", limit
    )  # lines too long, and the fallback, at small sizes
    data = b"".join(piece + end for piece, end in pieces)
    one = [
        (n, t if isinstance(t, str) else t.message)
        for n, t in FN.text_lines(io.BytesIO(data), limit)
    ]
    assert lines_of(data, block, monkeypatch) == one


@pytest.mark.parametrize("ending", [b"\n", b"\r", b"\r\n"])
@pytest.mark.parametrize("block", [5, 300, 1 << 20])
def test_a_csv_export_in_blocks_is_judged_as_in_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ending: bytes, block: int
) -> None:
    path = tmp_path / "book.csv"
    loanbook.write_export(path, 60, every=10)
    text = b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", ending)
    path.write_bytes(text + b"x" * 70_000 + ending + b"L-9,tail")  # a line too long, no last end
    monkeypatch.setattr(verify_export, "BLOCK_BYTES", block)
    limits = FN.thresholds()
    one = list(verify_export.read_export(path, limits, workers=1)[0])
    lines, reader = verify_export.read_export(path, limits, workers=2)
    assert sorted(lines) == sorted(one) and reader.size == path.stat().st_size
    assert len(one) == 62 and {line[3] for line in one} >= {"INVALID", "REJECTED", "APPROVED"}


@pytest.mark.parametrize("name", ["book.csv", "book.jsonl"])
def test_the_pre_pass_digest_is_the_line_pass_digest(tmp_path: Path, name: str) -> None:
    """verify's pre-pass hashes the migration id's digest alone (its own loop); the line
    pass's reader (Hashing) must agree with it, or verify reports the export changed."""
    from loanstack.ops import verify

    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbfloanId\r\nL-1\n" + b"x" * (3 << 20) + b"\rlast")
    with path.open("rb") as handle:
        reader = verify_export.Hashing(handle, verify_export.export_kind(path))
        while reader.read(1 << 20):
            pass
    assert verify.export_digest(path) == reader.digest.hexdigest()
    other = tmp_path / ("other" + path.suffix)
    other.write_bytes(path.read_bytes()[:-1])
    assert verify.export_digest(other) != reader.digest.hexdigest()
