"""Issue 20, "Flat memory": `loanstack migrate` holds one chunk's rows, never the export's.

A 1,000,000-row export of bad rows took 5.9 GB: every problem row was kept in one list (and
every loan id in a dict, ~150 MiB per million). Each test here measures Python's allocations
(tracemalloc's peak) for a small and a ten times larger input; the larger may cost no more than
a fixed allowance over the smaller. Against the list and the dict they replace, both fail.
"""

from __future__ import annotations

import io
import json
import random
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loanstack.ops import export as cut
from loanstack.ops import migrate_report as report
from loanstack.ops.firstlines import SeenIds
from loanstack.testing import loanbook

ALLOWANCE = 1 << 20  # 1 MiB: what the larger run may cost over the smaller one
CHUNK_ROWS = 500


def peak(work: Callable[[], Any]) -> int:
    """Bytes Python allocated at most while `work` ran, above what was held before."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        work()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


class Reports:
    """An S3 client whose chunk reports are made when asked: every row of every chunk INVALID
    (the all-bad export), so the test holds no more than the code under test asks for."""

    def __init__(self, rows: int) -> None:
        self.rows = rows

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        number = int(Key.rsplit("part-", 1)[1][:5])
        first = (number - 1) * CHUNK_ROWS
        count = min(CHUNK_ROWS, self.rows - first)
        body = {
            "source": Key,
            "rows": count,
            "summary": {"INVALID": count},
            "problems": [
                {
                    "line": n + 1,
                    "loanId": f"L-{first + n:07d}",
                    "decision": "INVALID",
                    "errors": [{"field": "loanType", "message": "must be one of ..."}],
                }
                for n in range(count)
            ],
        }
        return {"Body": io.BytesIO(json.dumps(body).encode())}


def merged(rows: int, tmp: Path) -> int:
    """merge() of `rows` INVALID rows in chunks of CHUNK_ROWS; its peak allocation."""
    export = cut.Export(tmp / "all-bad.jsonl", "jsonl", "0" * 64, None, 0, CHUNK_ROWS)
    layout = [
        cut.Chunk(n + 1, n * CHUNK_ROWS + 1, CHUNK_ROWS) for n in range(-(-rows // CHUNK_ROWS))
    ]
    stack: Any = report.BatchPath(Reports(rows), None, "bucket", "")
    held = report.HeldBack()
    for chunk in layout:
        held.keep(chunk)
    with tempfile.TemporaryFile() as spool:
        out = report.ProblemWriter(spool)
        found = peak(lambda: report.merge(export, layout, stack, [], held, out))
        assert out.rows == rows and len(out.first) == report.SHOWN
        spool.seek(0)
        assert [json.loads(spool.readline())["line"] for _ in range(3)] == [1, 2, 3]
    held.close()
    return found


def test_the_merge_holds_one_chunk_of_problem_rows_not_all_of_them(tmp_path: Path) -> None:
    small, large = merged(2_000, tmp_path), merged(20_000, tmp_path)
    assert large < small + ALLOWANCE, (small, large)  # a list of them all: ~12 MiB more


def written(rows: int, tmp: Path, order: str) -> Path:
    """A CSV export of `rows` distinct loan ids, sorted or shuffled (the ids then need the
    on-disk lookup), with the same application repeated every 100 lines (held back)."""
    path = tmp / f"{order}-{rows}.csv"
    template = loanbook.row("ID")
    ids = [f"L-{i:07d}".encode() for i in range(rows)]
    if order == "shuffled":
        random.Random(rows).shuffle(ids)
    with path.open("wb") as out:
        out.write(",".join(loanbook.COLUMNS).encode() + b"\n")
        for n, loan_id in enumerate(ids):
            out.write(template.replace(b"ID", loan_id, 1) + b"\n")
            if n % 100 == 99:  # a later line, another text: held back as a CONFLICT
                out.write(template.replace(b"ID", loan_id, 1).replace(b",", b", ", 1) + b"\n")
    return path


def cut_all(path: Path) -> tuple[int, int]:
    """chunks() of the whole export, each chunk's file closed as migrate does; its peak
    allocation and the duplicates found."""
    export = cut.inspect(path)
    held = report.HeldBack()

    def run() -> None:
        for chunk, body in cut.chunks(export, CHUNK_ROWS):
            body.close()
            held.keep(chunk)

    try:
        found = peak(run)
        return found, sum(sum(c.values()) for c in held.decisions.values())
    finally:
        held.close()
        assert export.handle is not None
        export.handle.close()


@pytest.mark.parametrize("order", ["sorted", "shuffled"])
def test_cutting_the_export_does_not_grow_with_its_loan_ids(
    tmp_path: Path, order: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two bounds that do not depend on the export are made small, so that both sizes fill
    them: new ids wait in memory up to SeenIds.BATCH (10,000: ~1.5 MiB) before they go to disk,
    and the splitter holds the lines of one read (READ_BYTES, 1 MiB: ~2.7 MiB of lines). What
    is left to grow is what must not."""
    monkeypatch.setattr(SeenIds, "BATCH", 500)
    monkeypatch.setattr(cut, "READ_BYTES", 64 << 10)
    (small, small_held), (large, large_held) = (
        cut_all(written(rows, tmp_path, order)) for rows in (2_000, 20_000)
    )
    assert (small_held, large_held) == (20, 200)
    assert large < small + ALLOWANCE, (small, large)  # a dict of every id: ~3 MiB more


def test_the_ids_on_disk_answer_as_a_dict_would(monkeypatch: pytest.MonkeyPatch) -> None:
    """SeenIds.setdefault against dict.setdefault, through several batch flushes and with the
    `new` shortcut taken only where the caller may (above every id seen so far)."""
    monkeypatch.setattr(SeenIds, "BATCH", 7)
    chooser = random.Random(20)
    seen, expected, highest = SeenIds(), {}, b""
    try:
        for line in range(1, 2000):
            loan_id = f"L-{chooser.randrange(300):03d}".encode()
            sha = chooser.randrange(3)
            new = loan_id > highest and bool(chooser.randrange(2))
            highest = max(highest, loan_id)
            assert seen.setdefault(loan_id, line, sha, new) == expected.setdefault(
                loan_id, (line, sha)
            )
    finally:
        seen.close()
