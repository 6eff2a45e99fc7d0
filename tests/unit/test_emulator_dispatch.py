"""The emulator's server reads moto's package list once (emulator/dispatch.py), not twice per
request, and answers with the same list."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import backends

from loanstack.emulator import dispatch


def test_moto_packages_are_read_once_and_are_motos_own(monkeypatch: pytest.MonkeyPatch) -> None:
    listed: list[int] = []

    def listing() -> Iterator[str]:
        listed.append(1)
        yield from backends.list_of_moto_modules()

    monkeypatch.setattr(dispatch.fence, "original", lambda owner, name: listing)
    dispatch._modules.cache_clear()
    try:
        first = list(dispatch.moto_modules())
        assert "s3" in dispatch.moto_modules() and "127.0.0.1:5000" not in dispatch.moto_modules()
        assert first == list(backends.list_of_moto_modules())
        assert listed == [1]
    finally:
        dispatch._modules.cache_clear()
