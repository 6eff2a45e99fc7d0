"""`loanstack verify` judges a large export in worker processes: the lines it yields must be
exactly those of one pass through the function's reader, whatever the batch boundaries."""

from __future__ import annotations

import json
import multiprocessing.forkserver
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from loanstack.errors import DeployError
from loanstack.ops import verify, verify_db, verify_export
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
    first = next(lines)  # the pool starts with the lines
    parallel = lines.gi_frame.f_locals["self"]  # type: ignore[attr-defined]
    workers = list(parallel.pool._processes)
    assert workers and all(parent_of(pid) != os.getpid() for pid in workers)
    assert len([first, *lines]) == 50


def forkserver_children() -> list[int]:
    """Live processes the forkserver started (verify's workers): none once verify has ended."""
    server = multiprocessing.forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == server and stat[0] != "Z":
                found.append(int(entry.name))
    return found


def test_a_dead_worker_is_one_line_not_a_wait_forever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """multiprocessing.Pool replaces a killed worker but never answers the block it held: verify
    waited forever. A dead worker now ends verify with one line, and no worker is left."""
    path = tmp_path / "book.csv"
    loanbook.write_export(path, 20_000)
    monkeypatch.setattr(verify_export, "BLOCK_BYTES", 1 << 15)  # many blocks in flight
    limits = verify_export.validation().thresholds()
    lines, _reader = verify_export.read_export(path, limits, workers=2)
    next(lines)
    parallel = lines.gi_frame.f_locals["self"]  # type: ignore[attr-defined]
    for pid in list(parallel.pool._processes):
        os.kill(pid, signal.SIGKILL)
    outcome: list[object] = []

    def consume() -> None:
        try:
            outcome.append(sum(1 for _ in lines))
        except BaseException as exc:  # what the test looks at
            outcome.append(exc)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    reader.join(180)
    assert outcome, "verify still waits for the dead worker's block"
    error = outcome[0]
    assert isinstance(error, DeployError), error
    assert "a verify worker process died" in str(error) and str(error).endswith("run verify again")
    assert "\n" not in str(error)
    assert forkserver_children() == []


def test_no_worker_is_left_after_a_failure_before_the_first_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table fails before the merge takes its first line: the generator never started, so
    its close ran nothing, and the pool its constructor started stayed up."""
    path = tmp_path / "book.csv"
    loanbook.write_export(path, 2_000)
    monkeypatch.setattr(verify_export, "PARALLEL_BYTES", 0)

    class Failing:
        def execute_statement(self, **_: Any) -> dict[str, Any]:
            raise DeployError("the Data API failed: nothing here")

    database = verify_db.Database(Failing(), "arn:cluster", "arn:secret")
    with pytest.raises(DeployError, match="nothing here"):
        verify.reconcile(path, database, verify_export.validation().thresholds())
    assert forkserver_children() == []


def test_issues_after_a_line_too_long_for_a_block_stay_in_line_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a line no block ends, the rest is read line by line: an unreadable line there was
    judged at once and given before the lines still in the workers (D8: issues in line order)."""
    path = tmp_path / "book.csv"
    loanbook.write_export(path, 40, every=1000)
    head, *rows = path.read_bytes().split(b"\n")
    long_line, bad_line = b"x" * 70_000, b"\xff\xfe,not UTF-8"
    path.write_bytes(b"\n".join([head, *rows[:3], long_line, bad_line, *rows[3:]]))
    monkeypatch.setattr(verify_export, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(verify_export, "BATCH_LINES", 4)
    limits = verify_export.validation().thresholds()
    lines, _reader = verify_export.read_export(path, limits, workers=2)
    numbers = [line[0] for line in lines]
    assert 5 in numbers and 6 in numbers  # the long line and the one not UTF-8 are reported
    assert numbers == sorted(numbers)
    assert sorted(judged(path, 1)) == sorted(judged(path, 2))
