"""Issue 20, "Fault tests": a migration of 100,000 rows through the faults a production run
meets, on the emulator (emulator/faults.py): a 30-second writer outage, duplicate S3
notifications, one chunk's invocation killed mid-way (ended as Lambda ends one at its Timeout,
then retried asynchronously), and deadlocks. It ends with `verify` reconciling every line and
with one stored row per loan id.

The stack's backoff base is shortened as in test_data_tier_faults.py (RETRY_BASE_SECONDS 0.1),
nothing else: the outage is the issue's 30 s, longer than botocore's own retries of a 504
(at most 15 s), so the function's failover window is what rides it out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from loanstack.aws.outputs import read_stack
from loanstack.aws.target import Target
from loanstack.emulator import Emulator, awslambda_async
from loanstack.ops import migrate, verify
from loanstack.testing import loanbook
from tests.support.stacks import deploy_stack, destroy_stack, stored_ids, tune_validation_function

ROWS = 100_000
CHUNK_ROWS = 10_000  # 11 chunks (the blank line after every 1,000 rows counts as a line)
OUTAGE_SECONDS = 30.0
KNOBS = {"RETRY_BASE_SECONDS": "0.1"}
# How often the migration looks for its reports (a listing and a dead-letter receive: 17 ms of
# CPU in this process each time). The test waits a minute, half of it the outage, in which no
# report can come: at 0.2 s it polled ~300 times (5 s of CPU), at 1 s it finishes at most a
# second later than the last report.
POLL_SECONDS = 1.0


@pytest.fixture(scope="module")
def outputs(
    target: Target, emulator: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    found = deploy_stack(target, "dev", "mft42", Path(tmp_path_factory.mktemp("out")))
    tune_validation_function(target, found, **KNOBS)
    yield found
    emulator.faults.clear()
    destroy_stack(target, "mft42", idle_seconds=120)


def test_a_100000_row_migration_through_an_outage_duplicates_a_kill_and_deadlocks_reconciles(
    target: Target, outputs: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "loanbook.csv"
    expected = loanbook.write_export(path, ROWS, prefix="Q")
    export = migrate.inspect(path)
    export.chunk_rows = CHUNK_ROWS
    cluster, faults = outputs["DBClusterArn"], emulator.faults
    faults.clear()
    faults.duplicate_notifications(3)  # the first three chunks are delivered twice
    faults.kill_invocation(1.0, match=f"{export.migration_id}/part-00003.csv")
    faults.deadlock(2, cluster=cluster)
    # the writer goes away once the chunks are being written, and stays away 30 s
    outage = threading.Timer(3.0, faults.unavailable, (OUTAGE_SECONDS, cluster))
    started = time.monotonic()
    outage.start()
    try:
        report = migrate.migrate(
            export,
            migrate.stack_of(target, read_stack(target.outputs_file)),
            Console(record=True, width=200),
            migrate.Options(chunk_rows=CHUNK_ROWS, timeout=600, poll=POLL_SECONDS),
        )
    finally:
        outage.join()
    assert awslambda_async.wait_idle(180)  # the second deliveries too
    took = time.monotonic() - started

    # every fault was met
    assert took > OUTAGE_SECONDS
    assert faults.killed == 1
    assert not faults.take_deadlock(cluster) and not faults.take_duplicate()

    assert report["failedChunks"] == []
    assert report["rows"] == ROWS and report["summary"] == dict(expected.summary)
    proof = verify.check(target, read_stack(target.outputs_file), path)
    assert proof.reconciled, proof.summary()
    assert proof.lines == ROWS == sum(proof.counts.values())
    ids = stored_ids(target, outputs)
    assert len(ids) == len(set(ids)) and set(ids) == expected.loan_ids
    print(f"100,000 rows through the faults in {took:.1f} s")  # the lead's figure (-s)
