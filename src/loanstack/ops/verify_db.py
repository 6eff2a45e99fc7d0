"""`loanstack verify`, the database's side: the decisions table read through the Data API (the
same door the function uses, D1), in pages by loan id, each within the Data API's 1 MiB response."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from botocore.exceptions import ClientError

from loanstack import functions
from loanstack.errors import DeployError
from loanstack.ops.rotate import RESUME_SECONDS

# A page comes back as one JSON string (formatRecordsAs JSON): botocore then parses one string,
# not five typed fields per row, and json.loads reads it at C speed. Each row of the table is
# written by the database as the text of a JSON array of its five values (ROW): the id,
# fingerprint and decision through JSON_QUOTE, which escapes what JSON must, so an id holding a
# comma, a quote or a bracket stays one string (a tampered row is reported, never mis-split);
# JSON_QUOTE returns a utf8mb4 string on MySQL 8.0 (MariaDB likewise), never MySQL's JSON type,
# which the Data API could give as nested JSON. The amount is a DECIMAL, whose text is digits,
# sign and point, quoted as is (kept exact: a string, not a float); whether this export
# recorded the row is JSON's true/false. The row and its group are text, not a blob the Data API
# would send as base64 (CONCAT of nonbinary strings and numbers is a nonbinary string, and
# GROUP_CONCAT of one is TEXT, MySQL's reference says), with no CAST to pay for.
# GROUP_SIZE rows, in loan id order, are one value of the
# answer (GROUP_CONCAT ... ORDER BY, numbered by ROW_NUMBER(): MySQL 8.0 and MariaDB 10.2+ both
# have them; Aurora MySQL 3 is MySQL 8.0): the Data API's server (on the bench, the emulator's
# PyMySQL on the same two cores) pays per value, and a page of 4,000 values cost it ~5 µs a row.
# The database's own work per row is mostly copying rows into the temporary tables of the
# derived tables, the window's sort and the grouping (EXPLAIN: a range scan of the primary key,
# then the derived tables materialised): so the innermost table holds only the five narrow
# values (the 1,100-character `source` is matched there, not carried), and each row's text is
# built inside GROUP_CONCAT, never stored in a temporary table (MariaDB keeps a table with a long
# text column on disk, and the page's rows' JSON_ARRAY text went to one, the skipped rows of
# an OFFSET included); only a page's 125 group values are. mariadbd's CPU per row fell by a third
# to a half (docs/benchmarks.md, round 7).
# A value is at most GROUP_SIZE rows: a row is at most ~1,800 bytes of the answer however its
# text escapes (64 characters of id and of fingerprint at 12 bytes each, a 16-character
# decision, the amount, the separators), so 32 of them stay inside the Data API's 64 KB per
# row. The 1 MiB response is another matter: a page of 4,000 rows of a loan book (~110 bytes
# each, every quote escaped once more) stays inside it, 4,000 rows whose ids escape widely
# (~1,800 bytes each) do not, and the Data API refuses the whole call; such a page is asked
# again in halves, down to one row (`Database.fetch`). GROUP_CONCAT's length is bounded by
# group_concat_max_len (MySQL's default 1,024 bytes: SET_VAR raises it for this statement) and a
# value cut short would lose rows silently: each value carries its row count (`n`), which the
# rows read must match; when they do not (the hint did not reach the database: nothing
# documents that the Data API passes optimizer hints through), the page is read again one row
# per value (ROWS), and so is the rest of the run.
# https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api-json.html
# https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.limitations.html
# https://dev.mysql.com/doc/refman/8.0/en/json-creation-functions.html#function_json-quote
# https://dev.mysql.com/doc/refman/8.0/en/string-functions.html#function_concat
# https://dev.mysql.com/doc/refman/8.0/en/aggregate-functions.html#function_group-concat
# https://dev.mysql.com/doc/refman/8.0/en/optimizer-hints.html#optimizer-hints-set-var
# https://dev.mysql.com/doc/refman/8.0/en/internal-temporary-tables.html
# https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/AuroraMySQL.MySQL80.html
PAGE_ROWS = 4000
GROUP_SIZE = 32
# The rows of a page, narrow: no text built yet, `source` only matched.
TABLE_ROWS = """SELECT loan_id AS id, application_sha256 AS sha, decision,
 source LIKE :mine AS mine, loan_amount AS amount
 FROM loan_decisions WHERE loan_id > :after ORDER BY loan_id LIMIT {rows} OFFSET {skip}"""
# A row as the text of a JSON array (a NULL as null: CONCAT of a NULL would be NULL, and
# GROUP_CONCAT leaves NULL out).
ROW = """CONCAT('[', COALESCE(JSON_QUOTE(id), 'null'), ',', COALESCE(JSON_QUOTE(sha), 'null'),
 ',', COALESCE(JSON_QUOTE(decision), 'null'), ',', IF(mine, 'true', 'false'), ',',
 COALESCE(CONCAT('"', amount, '"'), 'null'), ']')"""
PAGE = f"""SELECT /*+ SET_VAR(group_concat_max_len = 1048576) */
 GROUP_CONCAT({ROW} ORDER BY k SEPARATOR ',') AS g, COUNT(*) AS n
 FROM (SELECT id, sha, decision, mine, amount, ROW_NUMBER() OVER (ORDER BY id) AS k
 FROM ({TABLE_ROWS}) AS p) AS q
 GROUP BY (k - 1) DIV {{group}} ORDER BY MIN(k)"""  # noqa: S608 (constant SQL; values are bound parameters)
# The same rows one per value: no GROUP_CONCAT, so no group_concat_max_len to depend on.
ROWS = f"""SELECT {ROW} AS r FROM ({TABLE_ROWS}) AS p ORDER BY id"""  # noqa: S608 (as PAGE)
# A page compared, not read (verify_digest): the same keyset page, grouped as PAGE is, each group
# answering its row count, its last loan id, the SHA-256 (hex) of its rows' text (DIGEST_ROW: the
# id, fingerprint and decision through JSON_QUOTE as ROW writes them, null for NULL, one row a
# line, in id order), the exact sum of its amounts (SUM of a DECIMAL is a DECIMAL; as text, so
# no float ever holds it) and `ok`: every amount present and the GROUP_CONCAT whole. A result cut
# by group_concat_max_len (bytes; cut at a character boundary, so at most 3 bytes short of it)
# is at least the limit less 3 bytes long; `@@group_concat_max_len` reads the value SET_VAR gives
# the statement (MySQL's SET_VAR example reads a variable so), so a group shorter than that was
# not cut. When the hint does not reach the database, every group of ~3 KB is flagged, never
# passed: it is read row by row (only slower). `lead` groups the first row alone: the page asked
# ahead (OFFSET, as `pages`) starts with the last row of the page before, which must be its last
# id. The group text stays in the grouping's temporary table, 125 values a page.
# https://dev.mysql.com/doc/refman/8.0/en/encryption-functions.html#function_sha2
# https://dev.mysql.com/doc/refman/8.0/en/aggregate-functions.html#function_group-concat
# https://dev.mysql.com/doc/refman/8.0/en/aggregate-functions.html#function_sum
# https://dev.mysql.com/doc/refman/8.0/en/server-system-variables.html#sysvar_group_concat_max_len
# https://dev.mysql.com/doc/refman/8.0/en/optimizer-hints.html#optimizer-hints-set-var
DIGEST_ROW = """CONCAT(COALESCE(JSON_QUOTE(id), 'null'), ',', COALESCE(JSON_QUOTE(sha), 'null'),
 ',', COALESCE(JSON_QUOTE(decision), 'null'))"""
DIGEST = f"""SELECT /*+ SET_VAR(group_concat_max_len = 1048576) */
 n, last, SHA2(g, 256) AS h, amount, whole AND LENGTH(g) < @@group_concat_max_len - 3 AS ok
 FROM (SELECT COUNT(*) AS n, MAX(id) AS last, MIN(k) AS k, CAST(SUM(amount) AS CHAR) AS amount,
 COUNT(amount) = COUNT(*) AS whole, GROUP_CONCAT({DIGEST_ROW} ORDER BY k SEPARATOR '\\n') AS g
 FROM (SELECT id, sha, decision, amount, ROW_NUMBER() OVER (ORDER BY id) AS k
 FROM ({TABLE_ROWS}) AS p) AS q
 GROUP BY IF(k <= {{lead}}, -1, (k - 1 - {{lead}}) DIV {{group}})) AS d ORDER BY k"""  # noqa: S608 (as PAGE)
# (rows, last loan id, SHA-256 hex of the rows' text, sum of the amounts, whole?)
Group = tuple[int, str, str, str | None, bool]
# What the Data API answers a call whose result is over its 1 MiB response limit.
# https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.limitations.html
# https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.troubleshooting.html
TOO_LARGE = "Database returned more than the allowed response size limit"
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
    grouped: bool = True  # pages in groups (PAGE); False once a group came back cut short

    def rows(self, mine: str) -> Iterator[Stored]:
        """Every stored row, in pages by loan id (keyset: each page starts after the last id of
        the one before)."""
        for page in self.pages(mine):
            yield from page

    def pages(self, mine: str) -> Iterator[list[Stored]]:
        """Two pages asked at once: the next one (after the same id, its first row the last of
        this one, `OFFSET`) on a thread while this one is read, so the database and the Data
        API work on one while the other is awaited (one page at a time, the reading was a
        chain of waits as long as the judging). The next page is used only when its first row
        is this page's last: the table changed between the two (a row added or removed before
        it) and it is asked again after that last id, so every row is read once."""
        after, first = "", True
        with ThreadPoolExecutor(1, thread_name_prefix="verify-page") as ahead:
            while True:
                following = None
                if not first and self.page_rows > 1:  # the first page alone: it wakes a cluster
                    following = ahead.submit(self.fetch, after, mine, self.page_rows - 1)
                first = False
                page = self.fetch(after, mine)
                yield page
                if len(page) < self.page_rows:
                    return
                after = page[-1][0]
                if following is None:
                    continue
                more = following.result()
                if not more or more[0][0] != after:
                    continue  # the table changed: asked again after this page's last id
                yield more[1:]
                if len(more) < self.page_rows:
                    return
                after = more[-1][0]

    def fetch(self, after: str, mine: str, skip: int = 0, rows: int = 0) -> list[Stored]:
        """`rows` rows (0: a page's) after `after`, the first `skip` left out. A page over the
        Data API's 1 MiB response is asked again as two halves, the second after the first's
        last id (keyset), down to one row; a page in groups cut short is asked again one row per
        value, as every page after it."""
        rows = rows or self.page_rows
        try:
            return self.ask(after, mine, skip, rows)
        except TooLarge as exc:
            if rows == 1:
                raise DeployError(
                    f"one row of the decisions table after {after!r} is over the Data API's "
                    "1 MiB response; check the table for an oversized row"
                ) from exc
        half = rows // 2
        first = self.fetch(after, mine, skip, half)
        if len(first) < half:
            return first  # the table ends within the first half
        return first + self.fetch(first[-1][0], mine, 0, rows - half)

    def ask(self, after: str, mine: str, skip: int, rows: int) -> list[Stored]:
        if self.grouped:
            try:
                return self.read(self.page(after, mine, skip, rows, PAGE), retry=True)
            except CutShort:
                self.grouped = False  # the group limit was not raised: read rows one by one
        return self.read(self.page(after, mine, skip, rows, ROWS))

    def digests(self, after: str, mine: str, skip: int = 0, lead: int = 0) -> list[Group]:
        """A page's groups (DIGEST) after `after`, its first `skip` rows left out, the first
        `lead` rows one group."""
        sql = DIGEST.replace("{lead}", str(lead))
        reply = self.page(after, mine, skip, self.page_rows, sql)
        try:
            found = json.loads(reply.get("formattedRecords") or "[]")
            return [
                (int(g["n"]), str(g["last"]), str(g["h"]), g["amount"], g["ok"] in (1, True, "1"))
                for g in found
            ]
        except (TypeError, ValueError, KeyError) as exc:
            raise DeployError(
                f"the Data API answered a page verify cannot read ({type(exc).__name__}: "
                f"{exc}); run verify again"
            ) from exc

    def read(self, reply: dict[str, Any], retry: bool = False) -> list[Stored]:
        """The page's rows; with `retry`, a page cut short is CutShort (asked again), else, as
        any page verify cannot read, one line."""
        try:
            page = values(json.loads(reply.get("formattedRecords") or "[]"))
        except (TypeError, ValueError, KeyError) as exc:
            if retry and isinstance(exc, CutShort):
                raise
            raise DeployError(
                f"the Data API answered a page verify cannot read ({type(exc).__name__}: "
                f"{exc}); run verify again"
            ) from exc
        return stored(page)

    def page(
        self, after: str, mine: str, skip: int = 0, rows: int = 0, sql: str = ""
    ) -> dict[str, Any]:
        """One page (its first `skip` rows left out); a paused dev cluster (0 ACU) answers DatabaseResumingException while it
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
                        sql=(sql or PAGE).format(
                            rows=rows or self.page_rows, skip=skip, group=GROUP_SIZE
                        ),
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
                if TOO_LARGE in message:
                    raise TooLarge(message) from exc
                if error.get("Code") == "DatabaseResumingException" and (
                    time.monotonic() < deadline
                ):
                    time.sleep(self.resume_poll)
                    continue
                raise DeployError(f"the Data API failed: {message or exc}") from exc


class TooLarge(Exception):
    """The Data API refused a page as over its 1 MiB response: asked again in halves."""


class CutShort(ValueError):
    """A page's groups hold fewer rows than they count (group_concat_max_len): asked again."""


def values(found: list[dict[str, Any]]) -> list[list[Any]]:
    """Each row's five values, the page's groups read by one json.loads (a page parsed value by
    value paid the call per value). A group must hold the rows it counts (`n`): one cut short
    (group_concat_max_len) is CutShort, never read as fewer rows. A value of one row per record
    (`r`, as pages were read before), or given as nested JSON (MySQL's JSON type), is read too."""
    if found and all(type(v.get("g")) is str for v in found):
        try:  # a group cut within a row is no JSON
            read = json.loads("[" + ",".join(map(itemgetter("g"), found)) + "]")
        except ValueError as exc:
            raise CutShort(f"a page's groups are not whole ({exc})") from exc
        if len(read) != sum(int(v["n"]) for v in found):
            raise CutShort("a page's groups hold fewer rows than they count")
    else:
        arrays = list(map(itemgetter("r"), found))
        if all(type(r) is str for r in arrays):
            read = json.loads("[" + ",".join(arrays) + "]")
        else:
            read = [r if type(r) is list else json.loads(r) for r in arrays]
    if set(map(type, read)) - {list} or set(map(len, read)) - {5}:  # in C: no loop per row
        raise ValueError("a row is not an array of five values")
    return list(read)


def stored(page: list[list[Any]]) -> list[Stored]:
    """The rows as tuples, by calls in C when the flag is JSON's true/false (PAGE and ROWS
    write it so): a comprehension unpacking each row cost the tool ~0.5 µs a row. A flag given
    as 1/0 or "1" (a page of another shape) is read as before."""
    rows: list[Stored] = list(map(tuple, page))
    if set(map(type, map(itemgetter(3), rows))) <= {bool}:
        return rows
    return [(i, s, d, m in (1, True, "1"), a) for i, s, d, m, a in rows]


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
