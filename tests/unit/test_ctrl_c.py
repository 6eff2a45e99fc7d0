"""Ctrl-C ends `loanstack logs --follow` even in a process that inherited SIGINT ignored (a
script's background job: POSIX has it ignore SIGINT, and Python then installs no handler)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from loanstack.cli.common import ctrl_c_ends_it


@pytest.fixture
def sigint_ignored() -> Iterator[None]:
    """SIGINT ignored, as `loanstack logs --follow &` in `sh` starts with it; put back after."""
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGINT, before)


def test_ctrl_c_raises_inside_even_when_sigint_was_ignored(sigint_ignored: None) -> None:
    with pytest.raises(KeyboardInterrupt), ctrl_c_ends_it():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # interrupted at once by the handler; ignored, the test fails after 5 s
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN, "the disposition of before is back"
