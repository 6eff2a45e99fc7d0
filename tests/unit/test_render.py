"""Issue 21 item 10: ids, ARNs and S3 URIs are never split or cut, at 80 or 40 columns, at a
terminal or in a pipe; a piped table is tab-separated; counts read as English; no Python
`True`/`False` and no `1.33334e-05` in what a person reads."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest

from loanstack import render

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:" + "s" * 67  # 120 characters
MIGRATION = "9f" * 32  # a migration id: the export's SHA-256
URI = f"s3://loan-documents-123456789012-dev42/incoming/{MIGRATION}/part-00001.csv"


def shown(width: int, terminal: bool) -> str:
    out = io.StringIO()
    console = render.console(file=out, width=width, force_terminal=terminal, color_system=None)
    render.records(
        console,
        f"Migration {MIGRATION}",
        ("output", "value", "flag"),
        [("DBSecretArn", ARN, True), ("Chunk", URI, False)],
    )
    console.print(f"migration {MIGRATION}: export.csv to {URI}")
    return out.getvalue()


@pytest.mark.parametrize("terminal", [True, False])
@pytest.mark.parametrize("width", [80, 40])
def test_ids_arns_and_uris_stay_whole_on_one_line(width: int, terminal: bool) -> None:
    assert len(ARN) == 120
    text = shown(width, terminal)
    for value in (ARN, URI, MIGRATION):
        assert any(value in line for line in text.splitlines()), (value, text)
    assert "\u2026" not in text
    assert "True" not in text and "False" not in text
    assert "yes" in text and "no" in text


def test_a_piped_table_is_tab_separated_without_padding() -> None:
    lines = shown(80, terminal=False).splitlines()
    assert lines[0] == f"# Migration {MIGRATION}"
    assert lines[1] == "output\tvalue\tflag"
    assert lines[2] == f"DBSecretArn\t{ARN}\tyes"
    assert lines[3] == f"Chunk\t{URI}\tno"


def test_a_value_with_tabs_or_newlines_stays_one_field() -> None:
    out = io.StringIO()
    console = render.console(file=out, width=80)
    render.records(console, "t", ("a", "b"), [("x\ty", "one\ntwo")])
    assert out.getvalue().splitlines()[2] == "x y\tone two"


@pytest.mark.parametrize(
    ("count", "expected"),
    [(0, "0 changes"), (1, "1 change"), (2, "2 changes"), (1500, "1,500 changes")],
)
def test_plurals(count: int, expected: str) -> None:
    assert render.plural(count, "change") == expected


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (Decimal("0.0000133334"), "0.0000133334"),
        (1.33334e-05, "0.0000133334"),
        (Decimal("0.10"), "0.1"),
        (Decimal("1E+2"), "100"),
        (0, "0"),
    ],
)
def test_numbers_are_plain_decimals(number: Decimal | float, expected: str) -> None:
    assert render.plain(number) == expected
    assert "e" not in render.plain(number).lower()


def test_a_change_set_of_one_reads_1_change_and_replacement_yes() -> None:
    from loanstack.stack.events import show_change_set

    out = io.StringIO()
    change = {"ResourceChange": {"Action": "Modify", "LogicalResourceId": "VPC"}}
    change["ResourceChange"] |= {"ResourceType": "AWS::EC2::VPC", "Replacement": "True"}
    show_change_set(render.console(file=out, width=80), "tapstack-dev42", "UPDATE", [change])
    text = out.getvalue()
    assert "(update, 1 change)" in text and "1 changes" not in text
    assert "Modify\tVPC\tAWS::EC2::VPC\tyes\t" in text and "True" not in text
