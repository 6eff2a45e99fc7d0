"""The export cut a block at a time (export.line_blocks, Cutter, FirstLines.duplicates_in) gives
exactly what cutting it a line at a time gives: the same lines, numbers, chunks, chunk bytes,
held-back duplicates and id order, whatever the line ends (CR, LF, CRLF mixed), the read size,
the chunk size, blank, quoted, non-UTF-8 or over-long lines, and a missing last line end."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from loanstack.ops import export as cut
from loanstack.ops.firstlines import FirstLines, IdOrder, not_utf8
from loanstack.testing import loanbook

ENDS = (b"\n", b"\r\n", b"\r")
COLUMNS = list(loanbook.COLUMNS)


def reference_lines(data: bytes) -> list[bytes]:
    """Lines as the function splits them (universal newlines), without their ends."""
    lines = cut.LINE_END.split(data)
    return lines[:-1] if not lines[-1] else lines


def reference_cut(export: cut.Export, rows: int) -> tuple[list[Any], IdOrder]:
    """The cut a line at a time, as `chunks` did before it took blocks: first line of each id
    kept in a dict (the same text again is sent, other text held back as a CONFLICT)."""
    order = IdOrder()
    reader = FirstLines(cut.BATCH, export.kind, export.header, order)
    seen: dict[bytes, tuple[int, bytes]] = {}
    found: list[Any] = []
    current: dict[str, Any] | None = None
    for number, line in enumerate(reference_lines(export.path.read_bytes()), start=1):
        if number <= export.header_line:
            continue
        if current is None and not line.strip():
            continue
        if current is None:
            head = export.header + b"\n" if export.header is not None else b""
            current = {"first": number, "body": head, "duplicates": []}
        loan_id = reader.loan_id(number, line) if line.strip() else None
        if loan_id:
            order.see(number, loan_id)
            first, text = seen.setdefault(loan_id, (number, line))
            if first != number and text != line:
                current["duplicates"].append((number, loan_id.decode(errors="replace"), first))
                line = b""
        current["body"] += line + b"\n"
        current["lines"] = number - current["first"] + 1
        if current["lines"] >= rows:
            found.append(current)
            current = None
    if current is not None:
        found.append(current)
    reader.close()
    return found, order


def block_cut(export: cut.Export, rows: int) -> list[Any]:
    found = []
    for chunk, body in cut.chunks(export, rows):
        with body:
            data = body.read()
        assert chunk.size == len(data)
        found.append(
            {
                "first": chunk.first_line,
                "lines": chunk.lines,
                "body": data,
                "duplicates": [
                    (d["line"], d["loanId"], int(d["errors"][0]["message"].split()[3]))
                    for d in chunk.duplicates
                ],
            }
        )
    return found


def row_line(loan_id: str, amount: int, column: int) -> bytes:
    values = [str(v) for v in loanbook.approved_application(loan_id, "A-1").values()]
    cells = dict(zip(loanbook.approved_application(loan_id, "A-1"), values, strict=True))
    cells["loanAmount"] = str(amount)
    names = header_names(column)
    return ",".join(cells.get(n, "") for n in names).encode()


def header_names(column: int) -> list[str]:
    names = [c for c in COLUMNS if c != "loanId"]
    names.insert(column, "loanId")
    return names


# built once, not once per line drawn (hypothesis validates each new strategy at its first draw)
KINDS = st.sampled_from(
    ["new"] * 6
    + ["same", "other", "earlier", "blank", "spaces", "quoted", "latin1"]
    + ["nocomma", "leading", "long", "empty-id", "control"]
)
SPACES = st.sampled_from([b" ", b"\t ", b"\x0c"])
LINE_ENDS = st.sampled_from(ENDS)


@st.composite
def exports(draw: st.DrawFn) -> tuple[bytes, int]:
    """An export of mostly rising ids, with what breaks a run: repeats (same text and other
    text), an id out of order, blank and space-only lines, quotes, non-UTF-8 bytes, a line
    without commas, a leading space, a line longer than the function reads."""
    column = draw(st.sampled_from([0, 2]))
    lines = [b",".join(n.encode() for n in header_names(column))]
    for next_id in range(1, draw(st.integers(0, 40)) + 1):
        kind = draw(KINDS)
        loan_id = f"L-{next_id:04d}"
        previous = f"L-{max(next_id - 1, 1):04d}"
        if kind == "new":
            text = row_line(loan_id, 1000, column)
        elif kind == "same":
            text = row_line(previous, 1000, column)
        elif kind == "other":
            text = row_line(previous, 2000, column)
        elif kind == "earlier":
            text = row_line(f"L-{draw(st.integers(1, next_id)):04d}", 3000, column)
        elif kind == "blank":
            text = b""
        elif kind == "spaces":
            text = draw(SPACES)
        elif kind == "quoted":
            text = row_line(loan_id, 1000, column).replace(b"mortgage", b'"mort,gage"')
        elif kind == "latin1":
            text = row_line(loan_id, 1000, column).replace(b"A-1", b"A-\xff")
        elif kind == "nocomma":
            text = loan_id.encode()
        elif kind == "leading":
            text = b" " + row_line(loan_id, 1000, column)
        elif kind == "control":  # an id below " ": below a line of spaces taken for an id
            text = row_line(f"\x01{loan_id}", 1000, column)
        elif kind == "long":
            text = row_line(loan_id, 1000, column) + b"x" * 200
        else:
            text = b"," + row_line(loan_id, 1000, column).split(b",", 1)[1]
        lines.append(text)
    ends = [draw(LINE_ENDS) for _ in lines]
    data = b"".join(line + end for line, end in zip(lines, ends, strict=True))
    if draw(st.booleans()) and data.endswith(ENDS) and len(lines) > 1:
        data = data.rstrip(b"\r\n")  # no line end after the last line
    return data, column


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    case=exports(),
    read=st.sampled_from([5, 17, 64, 1 << 12]),
    rows=st.integers(1, 7),
)
@example(  # a row without an id, a line of spaces (blank: no id either), an id below " "
    case=(
        b",".join(c.encode() for c in header_names(0))
        + b"\n,x\n \n"
        + row_line("\x01L-1", 1000, 0)
        + b"\n",
        0,
    ),
    read=1 << 12,
    rows=3,
)
def test_the_block_cut_equals_the_line_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: tuple[bytes, int], read: int, rows: int
) -> None:
    data, _ = case
    monkeypatch.setattr(cut, "READ_BYTES", read)
    monkeypatch.setattr(cut.BATCH, "MAX_LINE_BYTES", 300)  # the "long" lines pass it
    path = tmp_path / "book.csv"
    path.write_bytes(data)
    export = cut.inspect(path)
    try:
        expected, order = reference_cut(export, rows)
        got = block_cut(export, rows)
        assert got == expected
        assert (export.order.sorted, export.order.first_unsorted_line) == (
            order.sorted,
            order.first_unsorted_line,
        )
    finally:
        assert export.handle is not None
        export.handle.close()


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(
        st.sampled_from([b"a", b"bc", b"\n", b"\r", b"\r\n", b",", b"x" * 40]), max_size=40
    ),
    read=st.integers(1, 50),
)
def test_blocks_split_as_the_line_splitter_splits(pieces: list[bytes], read: int) -> None:
    """line_blocks + split_lines against physical_lines (a "\\r\\n" across two reads, a lone
    "\\r", no line end at the end), and every byte hashed once."""
    data = b"".join(pieces)
    old = cut.READ_BYTES
    cut.READ_BYTES = read
    try:
        digest = cut.Digests("csv")
        lines = [
            line
            for block in cut.line_blocks(io.BytesIO(data), digest)
            for line in cut.split_lines(block)
        ]
        expected = [line for _, line in cut.physical_lines(io.BytesIO(data))]
    finally:
        cut.READ_BYTES = old
    assert lines == expected == reference_lines(data)
    assert digest.size == len(data)


def test_lines_not_utf8_are_found_in_a_block() -> None:
    joined = b"\n".join([b"ok", b"bad\xff", b"ok", b"\xc3", b"fine \xc3\xa9"])
    assert not_utf8(joined) == {1, 3}
    assert not_utf8(b"all\nfine") == set()


def test_a_sorted_export_keeps_no_ids_until_one_comes_out_of_order(tmp_path: Path) -> None:
    """Sorted, nothing is stored; the first id out of order stores every id before it (read
    again from the file) and is then judged against them: here a CONFLICT with line 2."""
    header = b",".join(c.encode() for c in COLUMNS)
    path = tmp_path / "book.csv"
    body = [row_line(f"L-{i}", 1000, 0) for i in range(1, 6)] + [row_line("L-1", 2000, 0)]
    path.write_bytes(header + b"\n" + b"\n".join(body) + b"\n")
    export = cut.inspect(path)
    try:
        chunks = []
        for chunk, handle in cut.chunks(export, 4):
            handle.close()
            chunks.append(chunk)
        assert [(d["line"], d["loanId"]) for c in chunks for d in c.duplicates] == [(7, "L-1")]
        assert "also on line 2 " in chunks[-1].duplicates[0]["errors"][0]["message"]
        assert export.order.first_unsorted_line == 7
    finally:
        assert export.handle is not None
        export.handle.close()
