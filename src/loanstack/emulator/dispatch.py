"""moto's server choosing the backend of a request and finishing its answer, without work whose
result is known beforehand.

moto's dispatcher asks `backends.list_of_moto_modules()` whether the request's host names a
moto package, twice per request; that generator lists moto's directory and stats each of its
~180 entries every time (about 1.3 ms of the server's CPU per request here, in the interpreter
the validation function also runs in). The packages of an installed moto do not change while
it runs, so they are read once. The answer is the same list, in the same order.

moto then puts the request id into every answer's `<RequestId>` element with a regular
expression run over the whole body, whose lookbehind tries every character: ~16 ms of CPU per
MB, ~9 ms for each 4,000-row page of `loanstack verify` (a JSON body, with no such element),
about 2 µs per row on the bench's two cores, a cost AWS has not. A body without `<RequestId>`
cannot match, so it is left as it is; the headers get their request id as before.

That substitution is for XML answers (the query protocol's `ResponseMetadata/RequestId`), and
moto ran it over JSON ones too: a stored value `<RequestId>x</RequestId>` (a loan id fits
VARCHAR(64)) read back through the Data API came back as the request id, and its greedy `.*`
swallowed every row between two such values on one line of a `formattedRecords` page, with no
error. AWS does not rewrite a JSON answer: the Data API returns the values as stored
(https://docs.aws.amazon.com/rdsdataservice/latest/APIReference/API_ExecuteStatement.html,
Response Syntax) and its request id in the `x-amzn-RequestId` header. So only an XML body is
substituted: one that starts with `<` (after whitespace or a byte-order mark), as every XML
document starts with its prolog or root element (https://www.w3.org/TR/xml/#sec-documents); a
JSON body starts with `{` or `[` whatever its Content-Type says.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from moto import backends
from moto.core.responses import BaseResponse

from loanstack.emulator import fence


@functools.cache
def _modules() -> tuple[str, ...]:
    original = fence.original(backends, "list_of_moto_modules")
    return tuple(original())


def moto_modules() -> Iterable[str]:
    """moto's packages, as `backends.list_of_moto_modules` yields them (read once)."""
    return _modules()


def is_xml(body: str) -> bool:
    """An XML document's first character, past whitespace and a byte-order mark, is `<`."""
    return body.lstrip("\ufeff \t\r\n").startswith("<")


def enrich_response(headers: dict[str, str], body: Any) -> tuple[dict[str, str], Any]:
    """moto's `BaseResponse._enrich_response`: the headers as it sets them (status, request id);
    the body through its `<RequestId>` substitution only when it is XML and holds that element
    (the substitution cannot change any other XML body: its pattern needs the element)."""
    enrich = fence.original(BaseResponse, "_enrich_response")
    enrich = getattr(enrich, "__func__", enrich)  # moto's staticmethod, unwrapped
    if isinstance(body, str) and "<RequestId>" in body and is_xml(body):
        return enrich(headers, body)  # type: ignore[no-any-return]
    headers, _ = enrich(headers, "")
    return headers, body
