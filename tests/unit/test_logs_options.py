"""Issue 21 item 12: `loanstack logs --since` takes relative and absolute times, `--format`
prints short lines or JSON Lines (the emulator tier reads them through the CLI:
tests/integration/test_cli_walkthrough.py)."""

from __future__ import annotations

import json

import pytest

from loanstack.errors import UsageError
from loanstack.ops.logs import formatted, parse_since

NOW = 1_796_115_600.0  # 2026-12-01T09:00:00Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10m", (NOW - 600) * 1000),
        ("2h", (NOW - 7200) * 1000),
        ("1d", (NOW - 86400) * 1000),
        ("2026-11-30T09:00Z", (NOW - 86400) * 1000),
        ("2026-11-30T10:00:00+01:00", (NOW - 86400) * 1000),
        ("2026-11-30T09:00:00.500Z", (NOW - 86400) * 1000 + 500),
    ],
)
def test_since_is_relative_or_an_iso_time_with_its_zone(text: str, expected: float) -> None:
    assert parse_since(text, now=NOW) == int(expected)


def test_since_without_a_zone_says_how_to_add_one() -> None:
    with pytest.raises(UsageError, match=r"has no zone: add Z for UTC .*2026-11-30T09:00Z"):
        parse_since("2026-11-30T09:00", now=NOW)


@pytest.mark.parametrize("text", ["yesterday", "10", "m", "-5m", "2026-13-01T00:00Z"])
def test_a_bad_since_names_both_forms(text: str) -> None:
    with pytest.raises(UsageError, match=r"duration \(30s, 10m.*ISO 8601 time with its zone"):
        parse_since(text, now=NOW)


EVENT = {
    "timestamp": int(NOW * 1000) + 7,
    "logStreamName": "2026/12/01/[$LATEST]abc",
    "eventId": "1",
    "message": '{"level": "INFO", "message": "loan decision"}\n',
}


def test_short_is_time_and_message() -> None:
    assert formatted(EVENT, "short") == (
        '2026-12-01T09:00:00.007Z {"level": "INFO", "message": "loan decision"}'
    )


def test_json_is_one_object_per_line_with_camel_case_keys() -> None:
    line = formatted(EVENT, "json")
    assert "\n" not in line
    assert json.loads(line) == {
        "timestamp": "2026-12-01T09:00:00.007Z",
        "logStreamName": "2026/12/01/[$LATEST]abc",
        "eventId": "1",
        "message": '{"level": "INFO", "message": "loan decision"}',
    }


@pytest.mark.parametrize(
    ("logger", "kept"),
    [
        ("botocore.configprovider", False),  # "Found endpoint for rds-data via: ..."
        ("moto.core", False),
        ("werkzeug", False),
        ("loanstack.emulator.rdsdata", False),
        ("botocore.credentials", True),  # Lambda itself shows this one
        ("root", True),
        ("validation", True),
    ],
)
def test_the_emulators_plumbing_stays_out_of_a_functions_log(logger: str, kept: bool) -> None:
    import logging

    from loanstack.emulator.awslambda import NotPlumbing

    record = logging.LogRecord(logger, logging.INFO, __file__, 1, "Found endpoint", (), None)
    assert NotPlumbing().filter(record) is kept
