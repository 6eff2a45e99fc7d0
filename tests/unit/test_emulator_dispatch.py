"""The emulator's server reads moto's package list once (emulator/dispatch.py), not twice per
request, and answers with the same list; it finishes each answer as moto does, without running
moto's `<RequestId>` substitution over a body that holds no such element."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from moto import backends
from moto.core import responses as moto_responses
from moto.core.responses import BaseResponse

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


BODIES = [
    '{"formattedRecords": "[{\\"g\\": \\"[\\\\\\"M-1\\\\\\"]\\"}]"}',
    "<R><RequestId>moto's</RequestId><X>1</X></R>",
    "<R><Other>1</Other></R>",
    "",
    b"<RequestId>bytes</RequestId>",
    None,
]
MOTOS = inspect.getattr_static(BaseResponse, "_enrich_response")  # moto's own (a staticmethod)


@pytest.fixture
def motos(monkeypatch: pytest.MonkeyPatch) -> None:
    """`enrich_response` extending moto's own, as when the patch is installed."""
    monkeypatch.setattr(dispatch.fence, "original", lambda owner, name: MOTOS)


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.usefixtures("motos")
def test_an_answer_is_enriched_as_moto_enriches_it(body: Any) -> None:
    """The same headers and body as moto's own `_enrich_response` (request ids aside: each
    call draws a new one)."""
    mine_headers, mine = dispatch.enrich_response({"status": 200}, body)  # type: ignore[dict-item]
    motos_headers, motos = MOTOS.__func__({"status": 200}, body)
    ours, theirs = mine_headers.pop("x-amzn-requestid"), motos_headers.pop("x-amzn-requestid")
    assert mine_headers == motos_headers == {"status": "200"}
    if isinstance(body, str):
        assert mine == motos.replace(theirs, ours)
    else:
        assert mine == motos == body


@pytest.mark.usefixtures("motos")
def test_a_json_answer_is_not_scanned_for_a_request_id_element(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """moto's `<RequestId>` substitution runs over a body only when the body holds one: over a
    600 KB page of `loanstack verify` it cost ~9 ms of the server's CPU."""
    scanned: list[int] = []

    def sub(pattern: str, replacement: str, text: str) -> str:
        scanned.append(len(text))
        return re.sub(pattern, replacement, text)

    monkeypatch.setattr(moto_responses, "re", SimpleNamespace(sub=sub))
    page = '{"formattedRecords": "' + "x" * 600_000 + '"}'
    assert dispatch.enrich_response({}, page)[1] == page
    assert scanned == [0]  # the headers' part of moto's own, on no body
    xml = "<R><RequestId>a</RequestId></R>"
    assert "<RequestId>a<" not in dispatch.enrich_response({}, xml)[1]
    assert scanned == [0, len(xml)]


@pytest.mark.parametrize(
    "body",
    [
        '{"formattedRecords": "[{\\"id\\": \\"<RequestId>x</RequestId>\\"}]"}',
        '[{"id": "<RequestId>x</RequestId>"}, {"id": "L-1"}, {"id": "<RequestId>y</RequestId>"}]',
        '\n {"records": [[{"stringValue": "<RequestId>a</RequestId>"}]]}',
    ],
)
@pytest.mark.usefixtures("motos")
def test_a_json_answer_holding_the_element_is_returned_as_it_is(body: str) -> None:
    """AWS never rewrites a JSON answer; moto's substitution made a stored
    `<RequestId>x</RequestId>` the request id and dropped what lay between two of them."""
    headers, mine = dispatch.enrich_response({}, body)
    assert mine == body
    assert headers["x-amzn-requestid"]
    assert MOTOS.__func__({}, body)[1] != body  # what moto's own did to it


@pytest.mark.parametrize("lead", ["", "\n  ", "\ufeff", '<?xml version="1.0"?>\n'])
@pytest.mark.usefixtures("motos")
def test_an_xml_answer_gets_the_request_id(lead: str) -> None:
    body = lead + "<R><ResponseMetadata><RequestId>moto's</RequestId></ResponseMetadata></R>"
    headers, mine = dispatch.enrich_response({}, body)
    assert f"<RequestId>{headers['x-amzn-requestid']}</RequestId>" in mine
