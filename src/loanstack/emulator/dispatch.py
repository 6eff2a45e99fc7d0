"""moto's server choosing the backend of a request, without reading moto's directory each time.

moto's dispatcher asks `backends.list_of_moto_modules()` whether the request's host names a
moto package, twice per request; that generator lists moto's directory and stats each of its
~180 entries every time (about 1.3 ms of the server's CPU per request here, in the interpreter
the validation function also runs in). The packages of an installed moto do not change while
it runs, so they are read once. The answer is the same list, in the same order.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from moto import backends

from loanstack.emulator import fence


@functools.cache
def _modules() -> tuple[str, ...]:
    original = fence.original(backends, "list_of_moto_modules")
    return tuple(original())


def moto_modules() -> Iterable[str]:
    """moto's packages, as `backends.list_of_moto_modules` yields them (read once)."""
    return _modules()
