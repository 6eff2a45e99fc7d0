"""`loanstack migrate` without AWS (SPEC D6): bad input refused in one line before anything is
uploaded, and the splitter's chunks map every line back to the export."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest

from loanstack.ops import migrate
from loanstack.testing import loanbook
from tests.support.cli import ci_env, loanstack, one_error_line

HEADER = ",".join(loanbook.COLUMNS).encode()


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("book.xlsx", b"whatever", "unknown export format '.xlsx'; name it .csv, .jsonl"),
        ("book.csv", b"loanId,applicantId\nL-1,A-1\n", "lacks loanType, loanAmount"),
        (
            "book.csv",
            codecs.BOM_UTF16_LE + HEADER.decode().encode("utf-16-le"),
            "is UTF-16, not UTF-8",
        ),
        ("book.jsonl", b'{"loanId": "L-\xe9"}\n', "is not UTF-8 (line 1, byte 15)"),
        ("book.csv", b"\n\n", "holds no rows"),
    ],
)
def test_bad_input_to_migrate_is_one_line_before_anything_is_uploaded(
    tmp_path: Path, name: str, body: bytes, message: str
) -> None:
    export = tmp_path / name
    export.write_bytes(body)
    # no emulator, no outputs file: the export is judged first, so nothing could be uploaded
    run = loanstack(ci_env(tmp_path), "migrate", str(export))
    assert run.code == 2 and message in one_error_line(run), run.err


def test_a_missing_export_and_a_bad_chunk_size_are_usage_errors(tmp_path: Path) -> None:
    run = loanstack(ci_env(tmp_path), "migrate", str(tmp_path / "gone.csv"))
    assert run.code == 2 and "cannot read export" in one_error_line(run)
    export = tmp_path / "ok.jsonl"
    export.write_text('{"loanId": "L-1"}\n')
    run = loanstack(ci_env(tmp_path), "migrate", str(export), "--chunk-rows", "0")
    assert run.code == 2 and "--chunk-rows must be between 1" in one_error_line(run)
    run = loanstack(ci_env(tmp_path), "migrate", str(export))
    assert run.code == 1 and "run `loanstack deploy` first" in one_error_line(run)


def test_csv_chunks_keep_the_header_and_map_report_lines_to_the_export(tmp_path: Path) -> None:
    path = tmp_path / "book.csv"
    path.write_bytes(
        b"\n" + codecs.BOM_UTF8 + HEADER + b"\n" + b"\n".join(loanbook.row(f"L-{i}") for i in range(5))
        + b"\n\nlast\n"
    )  # fmt: skip
    export = migrate.inspect(path)
    assert export.header_line == 2
    cut = [(chunk, body.read()) for chunk, body in migrate.chunks(export, rows=2)]
    assert [(c.number, c.first_line, c.lines) for c, _ in cut] == [
        (1, 3, 2),
        (2, 5, 2),
        (3, 7, 2),  # L-4 and the blank line after it
        (4, 9, 1),
    ]
    for chunk, body in cut:
        lines = body.split(b"\n")
        assert lines[0] == codecs.BOM_UTF8 + HEADER
        # line n of the chunk is line export_line(n) of the export
        source = path.read_bytes().split(b"\n")
        for n, text in enumerate(lines[1:-1], start=2):
            assert source[chunk.export_line(n, export) - 1] == text
    assert cut[3][0].key(export) == f"incoming/{export.migration_id}/part-00004.csv"
    assert cut[3][0].report_key(export) == (
        f"reports/{export.migration_id}/part-00004.csv.report.json"
    )


def test_the_migration_id_follows_the_content_not_the_file_name(tmp_path: Path) -> None:
    rows = b"".join(json.dumps({"loanId": f"L-{i}"}).encode() + b"\n" for i in range(3))
    (tmp_path / "a.jsonl").write_bytes(rows)
    (tmp_path / "b.jsonl").write_bytes(rows)
    (tmp_path / "c.jsonl").write_bytes(rows + b'{"loanId": "L-3"}\n')
    ids = [migrate.inspect(tmp_path / f"{n}.jsonl").migration_id for n in "abc"]
    assert ids[0] == ids[1] != ids[2]
    first = next(migrate.chunks(migrate.inspect(tmp_path / "a.jsonl"), rows=10))
    assert first[0].export_line(2, migrate.inspect(tmp_path / "a.jsonl")) == 2


def test_the_generated_export_knows_each_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "gen.csv"
    expected = loanbook.write_export(path, 4000)
    lines = path.read_bytes().split(b"\n")
    assert expected.rows == 4000 and sum(expected.summary.values()) == 4000
    assert set(expected.problems.values()) == {"REJECTED", "INVALID", "CONFLICT"}
    for line, decision in expected.problems.items():
        text = lines[line - 1]
        if decision == "REJECTED":
            assert b",500," in text
        elif decision == "CONFLICT":
            assert b",250000," in text
        else:
            assert b"yacht" in text or b"\xff" in text


def test_the_cut_learns_whether_the_ids_come_in_the_primary_keys_order(tmp_path: Path) -> None:
    """Issue 23 item 15: byte order of the UTF-8 ids is the `utf8mb4_bin` key's code point
    order; a repeated id (sent again or a CONFLICT) keeps the order, a smaller one breaks it."""
    in_order = tmp_path / "sorted.csv"
    in_order.write_bytes(
        HEADER + b"\n" + b"\n".join(loanbook.row(i) for i in ("L-1", "L-2", "L-2", "L-9", "M-0"))
    )
    export = migrate.inspect(in_order)
    assert export.order.sorted  # nothing learned before the cut
    for _ in migrate.chunks(export, rows=2):
        pass
    assert export.order.sorted and export.order.first_unsorted_line is None
    shuffled = tmp_path / "shuffled.jsonl"
    ids = ["L-1", "L-3", "L-2", "L-0"]  # "L-2" on line 3 is the first out of order
    shuffled.write_text("".join(json.dumps({"loanId": i}) + "\n" for i in ids))
    export = migrate.inspect(shuffled)
    for _ in migrate.chunks(export, rows=10):
        pass
    assert not export.order.sorted and export.order.first_unsorted_line == 3


def test_the_summary_says_whether_the_export_was_sorted() -> None:
    report: migrate.MigrationReport = {"sortedByLoanId": True}
    assert "loan ids sorted" in migrate.order_line(report)
    report = {"sortedByLoanId": False, "firstUnsortedLine": 7}
    line = migrate.order_line(report)
    assert "not sorted (line 7 is the first out of order)" in line
    assert "docs/benchmarks.md" in line
    assert "not recorded" in migrate.order_line({})


def test_an_unwritable_problem_file_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    export = tmp_path / "ok.jsonl"
    export.write_text('{"loanId": "L-1"}\n')
    where = tmp_path / "missing-dir" / "problems.jsonl"
    run = loanstack(ci_env(tmp_path), "migrate", str(export), "--problems", str(where))
    assert run.code == 2 and "cannot write the problem file" in one_error_line(run), run.err
