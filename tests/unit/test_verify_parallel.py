"""`loanstack verify` judges a large export in worker processes: the lines it yields must be
exactly those of one pass through the function's reader, whatever the batch boundaries."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from loanstack.ops import verify_export
from loanstack.testing import loanbook


def judged(path: Path, workers: int) -> list[verify_export.Line]:
    limits = verify_export.validation().thresholds()
    lines, reader = verify_export.read_export(path, limits, workers=workers)
    found = sorted(lines)
    assert reader.size == path.stat().st_size  # the whole file went through the hash
    return found


@pytest.mark.parametrize("batch", [1, 7, 5000])
def test_a_csv_export_is_judged_in_parallel_as_in_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    path = tmp_path / "book.csv"
    loanbook.write_export(path, 120, every=10)  # review, rejected, invalid, not UTF-8, conflicts
    path.write_bytes(path.read_bytes() + b"\n\n" + b"x" * 70_000 + b"\n")  # a line too long
    monkeypatch.setattr(verify_export, "BATCH_LINES", batch)
    one = judged(path, 1)
    assert len(one) == 121 and {line[3] for line in one} >= {"INVALID", "REJECTED"}
    assert judged(path, 2) == one


def test_a_jsonl_export_is_judged_in_parallel_as_in_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = loanbook.approved_application("J-1", "A-1")
    rows = [json.dumps({**app, "loanId": f"J-{i}"}).encode() for i in range(30)]
    rows[3], rows[9] = b"{broken", b'{"loanId": "J-9", "loanId": "J-10"}'
    path = tmp_path / "book.jsonl"
    path.write_bytes(b"\r\n".join(rows) + b"\r\n\xff\xfe\n")
    monkeypatch.setattr(verify_export, "BATCH_LINES", 4)
    assert judged(path, 2) == judged(path, 1)


def test_a_bad_csv_header_is_refused_in_parallel_as_in_one_pass(tmp_path: Path) -> None:
    path = tmp_path / "book.csv"
    path.write_bytes(b"loanId,loanId\nL-1,L-2\n")
    for workers in (1, 2):
        with pytest.raises(verify_export.UsageError, match="names loanId twice"):
            judged(path, workers)


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_the_workers_are_not_forked_from_the_tools_process(tmp_path: Path) -> None:
    """`migrate` verifies after its upload threads ran, and an embedded emulator serves from
    threads in the tool's process: a worker forked from it can inherit a lock another thread
    held and wait on it forever (seen twice in benchmark runs). The workers come from a
    server process that runs no thread of ours."""
    path = tmp_path / "book.csv"
    loanbook.write_export(path, 50, every=10)
    limits = verify_export.validation().thresholds()
    lines, _reader = verify_export.read_export(path, limits, workers=2)
    parallel = lines.gi_frame.f_locals["self"]  # type: ignore[attr-defined]
    workers = [process.pid for process in parallel.pool._pool]
    assert workers and all(parent_of(pid) != os.getpid() for pid in workers)
    assert len(list(lines)) == 50
