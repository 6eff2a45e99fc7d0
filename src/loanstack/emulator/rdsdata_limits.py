"""The Data API's documented size limits, enforced before a statement runs and on its result.

https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.limitations.html (1 MiB
response, 64 KB per row), the `sql` member's length in the API reference
(https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/API_ExecuteStatement.html), and
the 4 MiB request, headers and JSON included (the Data API's request quota). The 45-second call
timeout is MariaDB's max_statement_time (mariadb.py, rdsdata_execute.py).
"""

from __future__ import annotations

import json
from itertools import repeat
from typing import Any

from loanstack.emulator.rdsdata_errors import DataApiError

REQUEST_LIMIT = 4 * 1024 * 1024
RESPONSE_LIMIT = 1024 * 1024
ROW_LIMIT = 64 * 1024
SQL_LIMIT = 65536


def request_size(body: bytes | str, headers: Any) -> int:
    """Bytes of a request as the Data API's 4 MiB limit counts them: the body and the headers."""
    head = sum(len(str(k)) + len(str(v)) + 4 for k, v in dict(headers).items())  # "k: v\r\n"
    return (len(body.encode()) if isinstance(body, str) else len(body)) + head


def check_request(params: dict[str, Any], request_bytes: int) -> None:
    """Refuse what AWS refuses before running anything."""
    if request_bytes > REQUEST_LIMIT:
        raise DataApiError(
            "BadRequestException",
            f"Request size {request_bytes} bytes exceeds the limit of {REQUEST_LIMIT} bytes",
        )
    if len(str(params.get("sql", ""))) > SQL_LIMIT:
        raise DataApiError(
            "BadRequestException",
            "1 validation error detected: Value at 'sql' failed to satisfy constraint: "
            f"Member must have length less than or equal to {SQL_LIMIT}",
        )


def row_too_large(size: int) -> DataApiError:
    return DataApiError(
        "DatabaseErrorException",
        f"Packet for query is too large ({size} > {ROW_LIMIT}): a row of the result "
        "exceeds the Data API's 64 KB",
    )


def response_too_large() -> DataApiError:
    return DataApiError(
        "DatabaseErrorException", "Database returned more than the allowed response size limit"
    )


def check_response(records: list[list[dict[str, Any]]]) -> None:
    """Refuse a result AWS would not return (sizes as the JSON of the records)."""
    total = 0
    for row in records:
        size = len(json.dumps(row))
        if size > ROW_LIMIT:
            raise row_too_large(size)
        total += size
    if total > RESPONSE_LIMIT:
        raise response_too_large()


def check_formatted(labels: list[str], rows: list[tuple[Any, ...]]) -> str:
    """The rows of a `formatRecordsAs: JSON` result as one array, held to the same limits.

    Encoded in one call (per row, the encoder's set-up cost more than the row) when a bound on
    each row's size keeps it under the 64 KB: a value's JSON is at most 12 characters per
    character of its text, plus 12 (a character outside the BMP escapes to two \\u escapes;
    NaN prints as NaN), a label's likewise, plus its quotes and separators. Otherwise each row
    is encoded once, measured, and the array joined from them (the same text as one call: the
    encoder's separators), not encoded twice."""
    objects = list(map(dict, map(zip, repeat(labels), rows)))
    widest = 2 + sum(
        12 * len(label) + 18 + 12 * max(map(len, map(str, column)))
        for label, column in zip(labels, zip(*rows, strict=True), strict=False)
    )
    if widest > ROW_LIMIT:
        encoded = list(map(ROW_JSON.encode, objects))
        size = next((n for n in map(len, encoded) if n > ROW_LIMIT), 0)
        if size:
            raise row_too_large(size)
        text = "[" + ", ".join(encoded) + "]"
    else:
        text = ROW_JSON.encode(objects)
    if len(text) > RESPONSE_LIMIT:
        raise response_too_large()
    return text


ROW_JSON = json.JSONEncoder()  # json.dumps's defaults, without its per-call set-up
