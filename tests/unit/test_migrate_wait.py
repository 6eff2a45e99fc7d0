"""`migrate` waiting for the chunks' reports lists only the reports that may be new: each poll
starts after the last report already seen below every awaited one (a ListObjects response costs
the emulator per key listed, and polls come every half second)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from loanstack.ops import migrate
from loanstack.ops.batchpath import BatchPath
from loanstack.ops.export import Chunk, Export


class Reports:
    """An S3 client whose bucket gains reports as it is polled: `landing[i]` are the chunk
    numbers whose reports appear before the i-th listing."""

    def __init__(self, export: Export, layout: list[Chunk], landing: list[list[int]]) -> None:
        self.export, self.layout, self.landing = export, layout, landing
        self.stored: set[str] = set()
        self.listed: list[list[str]] = []

    def get_paginator(self, name: str) -> Reports:
        assert name == "list_objects_v2"
        return self

    def paginate(self, Bucket: str, Prefix: str, StartAfter: str = "") -> list[dict[str, Any]]:
        if self.landing:
            for number in self.landing.pop(0):
                self.stored.add(self.layout[number - 1].report_key(self.export))
        keys = sorted(k for k in self.stored if k.startswith(Prefix) and k > StartAfter)
        self.listed.append(keys)
        return [{"Contents": [{"Key": k, "Size": 1} for k in keys]}]


class NoDeadLetters:
    def receive_message(self, **_: Any) -> dict[str, Any]:
        return {}


def waited(landing: list[list[int]], chunks: int) -> list[list[str]]:
    export = Export(Path("book.csv"), "csv", "0" * 64, None, 0)
    layout = [Chunk(n, 1 + (n - 1) * 10, 10) for n in range(1, chunks + 1)]
    s3 = Reports(export, layout, landing)
    stack = BatchPath(s3, NoDeadLetters(), "bucket", "queue")
    options = migrate.Options(poll=0.0)
    failed = migrate.wait(export, layout, stack, Console(quiet=True), options)
    assert failed == []
    assert s3.stored == {c.report_key(export) for c in layout}
    return s3.listed


def test_each_report_is_listed_once_when_the_reports_land_in_order() -> None:
    listed = waited([[], [1], [], [2], [3], [4], [5]], chunks=5)
    assert sum(len(keys) for keys in listed) == 5  # every report again on each poll: 15


def test_a_report_that_lands_early_is_kept_and_the_wait_ends_when_all_are_in() -> None:
    listed = waited([[3], [1], [5], [2, 4]], chunks=5)
    assert [len(keys) for keys in listed] == [1, 2, 2, 4]  # 3 / 1 3 / 3 5 / 2 3 4 5


def test_the_listing_starts_after_the_last_report_below_every_awaited_one() -> None:
    assert migrate.listed_after({"r/1", "r/2", "r/4"}, ["r/3", "r/5"]) == "r/2"
    assert migrate.listed_after({"r/2"}, ["r/1"]) is None
    assert migrate.listed_after({"r/1"}, []) is None
