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


def enrich_response(headers: dict[str, str], body: Any) -> tuple[dict[str, str], Any]:
    """moto's `BaseResponse._enrich_response`: the headers as it sets them (status, request id);
    the body through its `<RequestId>` substitution only when it holds that element (the
    substitution cannot change any other body: its pattern needs the element)."""
    enrich = fence.original(BaseResponse, "_enrich_response")
    enrich = getattr(enrich, "__func__", enrich)  # moto's staticmethod, unwrapped
    if isinstance(body, str) and "<RequestId>" in body:
        return enrich(headers, body)  # type: ignore[no-any-return]
    headers, _ = enrich(headers, "")
    return headers, body
