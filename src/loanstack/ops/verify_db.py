"""`loanstack verify`, the database's side: the decisions table read through the Data API (the
same door the function uses, D1), in pages by loan id, each within the Data API's 1 MiB response."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from botocore.exceptions import ClientError

from loanstack import functions
from loanstack.errors import DeployError
from loanstack.ops.rotate import RESUME_SECONDS

# A page comes back as one JSON string (formatRecordsAs JSON): botocore then parses one string,
# not five typed fields per row (most of the time verify spent reading the table), and
# json.loads reads it at C speed. Each row is one column, the database's own JSON array of the
# five values (JSON_ARRAY, in MySQL 8.0 and MariaDB alike, escapes what JSON must): a column
# costs the Data API's server (and the emulator's PyMySQL, on the bench's two cores) per value,
# and the page's arrays are read by one json.loads. On Aurora MySQL 3 JSON_ARRAY is of MySQL's
# JSON type, which the Data API's JSON records may give as nested JSON rather than a string: cast
# to CHAR it is text on both engines (and a row given as an array is still read). A row is at most ~200 bytes of the answer
# (a 64-character id, the 64-hex fingerprint, decision, flag, amount, every quote escaped
# once more): 4,000 of them stay inside the Data API's 1 MiB response limit.
# https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api-json.html
# https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.limitations.html
# https://dev.mysql.com/doc/refman/8.0/en/json-creation-functions.html#function_json-array
PAGE_ROWS = 4000
PAGE = """SELECT CAST(JSON_ARRAY(loan_id, application_sha256, decision,
 COALESCE(source LIKE :mine, 0), CAST(loan_amount AS CHAR)) AS CHAR) AS r
 FROM loan_decisions WHERE loan_id > :after ORDER BY loan_id LIMIT {rows}"""
# (loan id, fingerprint, decision, recorded by this export?, loan amount)
Stored = tuple[str, str, str, bool, str]


@dataclass
class Database:
    """The decisions table through the Data API."""

    client: Any
    cluster_arn: str
    secret_arn: str
    name: str = functions.contract(functions.VALIDATION).DATABASE_NAME
    page_rows: int = PAGE_ROWS
    calls: int = 0
    resume_poll: float = 5.0  # seconds between tries while a paused cluster resumes

    def rows(self, mine: str) -> Iterator[Stored]:
        """Every stored row, in pages by loan id (keyset: each page starts after the last id of
        the one before)."""
        for page in self.pages(mine):
            yield from page

    def pages(self, mine: str) -> Iterator[list[Stored]]:
        after = ""
        while True:
            reply = self.page(after, mine)
            try:
                found = json.loads(reply.get("formattedRecords") or "[]")
                page = values(found)
            except (TypeError, ValueError, KeyError) as exc:
                raise DeployError(
                    f"the Data API answered a page verify cannot read ({type(exc).__name__}: "
                    f"{exc}); run verify again"
                ) from exc
            yield [(i, s, d, m in (1, True, "1"), a) for i, s, d, m, a in page]
            if len(found) < self.page_rows:
                return
            after = page[-1][0]

    def page(self, after: str, mine: str) -> dict[str, Any]:
        """One page; a paused dev cluster (0 ACU) answers DatabaseResumingException while it
        wakes, so the page is asked again until it resumes (as the functions do).
        https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-serverless-v2-auto-pause.html"""
        deadline = time.monotonic() + RESUME_SECONDS
        while True:
            self.calls += 1
            try:
                return dict(
                    self.client.execute_statement(
                        resourceArn=self.cluster_arn,
                        secretArn=self.secret_arn,
                        database=self.name,
                        sql=PAGE.format(rows=self.page_rows),
                        parameters=[
                            {"name": "after", "value": {"stringValue": after}},
                            {"name": "mine", "value": {"stringValue": mine}},
                        ],
                        formatRecordsAs="JSON",
                    )
                )
            except ClientError as exc:
                error = exc.response.get("Error", {})
                message = str(error.get("Message", ""))
                if "doesn't exist" in message and "loan_decisions" in message:
                    return {"formattedRecords": "[]"}  # nothing recorded yet: all missing
                if error.get("Code") == "DatabaseResumingException" and (
                    time.monotonic() < deadline
                ):
                    time.sleep(self.resume_poll)
                    continue
                raise DeployError(f"the Data API failed: {message or exc}") from exc


def values(found: list[dict[str, Any]]) -> list[list[Any]]:
    """Each row's five values. The rows' JSON arrays (the `r` column) are read by one
    json.loads: a page of 4,000 rows parsed one by one paid the call 4,000 times. A row whose
    array came as nested JSON (MySQL's JSON type) is read as it is."""
    arrays = list(map(itemgetter("r"), found))
    if all(type(r) is str for r in arrays):
        return list(json.loads("[" + ",".join(arrays) + "]"))
    read = [r if type(r) is list else json.loads(r) for r in arrays]
    if not all(type(r) is list and len(r) == 5 for r in read):
        raise ValueError("a row is not an array of five values")
    return read


def one_line(exc: BaseException) -> BaseException:
    """What failed on a thread reading the table, as the main thread raises it: a DeployError
    as it is, any other error as one (the CLI's one line, not an unexpected error's), so a
    client's failure no ClientError describes still says what to do; Ctrl-C stays itself."""
    if isinstance(exc, DeployError) or not isinstance(exc, Exception):
        return exc
    said = " ".join(str(exc).split())
    error = DeployError(
        f"reading the decisions table failed ({type(exc).__name__}: {said}); run verify again"
    )
    error.__cause__ = exc
    return error
