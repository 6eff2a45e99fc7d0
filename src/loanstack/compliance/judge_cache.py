"""Outside judges' verdicts kept by exactly what they judged (SPEC D5), opt-in.

A judge given the same bytes, at the same path, in the same version, gives the same verdict; a
run that asks again can read it instead of paying for it (checkov ~12 s of CPU, cfn-lint ~7 s).
The test suite asks about the unchanged template from several modules and from both of its
workers, so it names one directory per test session in LOANSTACK_JUDGE_CACHE (tests/conftest.py);
`loanstack check` honours the variable too. Without it every call runs its judge.

The first caller of a key holds its lock while it runs the judge, so a second worker asking at
the same time waits for that verdict instead of running the judge again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar, cast

VARIABLE = "LOANSTACK_JUDGE_CACHE"

T = TypeVar("T")


def cache_dir() -> Path | None:
    value = os.environ.get(VARIABLE, "").strip()
    return Path(value) if value else None


def key(judge: str, parts: Iterable[str | bytes]) -> str:
    """One digest over the judge's name and every part of its input (each length-prefixed, so
    two different splits of the same bytes never collide)."""
    digest = hashlib.sha256(judge.encode())
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def remembered(judge: str, parts: Iterable[str | bytes], run: Callable[[], T]) -> T:
    """`run()`'s JSON-serialisable result, read from the cache directory when this judge has
    already judged exactly these parts (its version among them), else run and kept."""
    directory = cache_dir()
    if directory is None:
        return run()
    import fcntl  # POSIX; only reached when a cache is asked for

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{judge}-{key(judge, parts)}.json"
    with (directory / f"{path.stem}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return cast(T, json.loads(path.read_text(encoding="utf-8")))
        result = run()
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(result), encoding="utf-8")
        partial.replace(path)
        return result
