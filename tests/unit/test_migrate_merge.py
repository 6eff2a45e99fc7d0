"""One chunk's problem rows merged as a block (migrate_report.chunk_problems, write_all): in
export line order whatever order the report gives them, with the held-back lines among them,
each written exactly as `json.dumps(row, sort_keys=True)` and hashed as the file's bytes."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

from loanstack.ops import migrate_report as report
from loanstack.ops.export import Chunk, Export


def row(line: int, loan_id: str, decision: str = "INVALID") -> dict[str, Any]:
    return {"line": line, "loanId": loan_id, "decision": decision, "errors": [{"field": "é"}]}


def test_a_chunks_rows_are_written_in_export_line_order_as_json_dumps_writes_them() -> None:
    export = Export(Path("book.csv"), "csv", "0" * 64, b"h", 1)
    chunk = Chunk(2, 101, 10)  # export lines 101-110; the chunk's data starts at its line 2
    chunk.duplicates = [row(104, "L-3", "CONFLICT")]
    held = report.HeldBack()
    held.keep(chunk)
    chunk_report: Any = {"problems": [row(9, "L-8"), row(2, "L-1"), row(6, "L-5")]}
    spool = io.BytesIO()
    out = report.ProblemWriter(spool)
    try:
        out.write_all(report.chunk_problems(export, chunk, chunk_report, held))
    finally:
        held.close()
    lines = spool.getvalue().splitlines()
    assert [json.loads(x)["line"] for x in lines] == [101, 104, 105, 108]
    expected = [
        json.dumps(r, sort_keys=True).encode()
        for r in (row(101, "L-1"), row(104, "L-3", "CONFLICT"), row(105, "L-5"), row(108, "L-8"))
    ]
    assert lines == expected
    assert out.described("k") == {
        "key": "k",
        "rows": 4,
        "bytes": len(spool.getvalue()),
        "sha256": hashlib.sha256(spool.getvalue()).hexdigest(),
    }
    assert [p["line"] for p in out.first] == [101, 104, 105, 108]
