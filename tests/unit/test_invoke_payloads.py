"""`loanstack invoke` with crafted payload files (SPEC D8): one line and exit 2 for a payload the
tool cannot read, a byte order mark accepted; never a traceback."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest

from tests.support.cli import ci_env, loanstack, one_error_line


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "maximum recursion depth"),
        (b'{"loanAmount": ' + b"9" * 5000 + b"}", "4300 digits"),
    ],
    ids=["100k-deep array", "5000-digit integer"],
)
def test_an_unreadable_payload_is_one_line_and_exit_2(
    tmp_path: Path, body: bytes, message: str
) -> None:
    payload = tmp_path / "payload.json"
    payload.write_bytes(body)
    run = loanstack(ci_env(tmp_path), "invoke", "validate", "--payload", str(payload))
    line = one_error_line(run)
    assert run.code == 2 and "payload is not JSON the function can take" in line, run.err
    assert message in line


def test_a_bom_prefixed_payload_is_read(tmp_path: Path) -> None:
    """Reproducer: Notepad's UTF-8 with a byte order mark was "not JSON"."""
    payload = tmp_path / "payload.json"
    payload.write_bytes(codecs.BOM_UTF8 + json.dumps({"loanId": "L-1"}).encode())
    run = loanstack(ci_env(tmp_path), "invoke", "validate", "--payload", str(payload))
    # past the payload: the next thing missing is the deployed stack's outputs
    assert run.code == 1 and "deploy" in one_error_line(run), run.err
