"""CPU per test module, for docs/testing.md's tables ("Keeping it fast").

Wall time on this shared 2-core machine is 3-10 times the CPU and moves with the other sessions'
load, so the tables quote CPU: user+sys of the pytest process and of the children it waited for
(`loanstack` subprocesses, checkov, cfn-guard), from setup to teardown of each test, summed per
module. Detached processes (an emulator started with `--detach`, its MariaDB) are not counted.

    LOANSTACK_CPU_PROBE=/tmp/cpu.jsonl .venv/bin/python -m pytest -p tests.support.cpu_probe ...
    .venv/bin/python -m tests.support.cpu_probe /tmp/cpu.jsonl     # the table, dearest first

Each worker appends one JSON line per test: {"module", "test", "cpu"}.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from collections import defaultdict
from collections.abc import Generator
from pathlib import Path

import pytest

VARIABLE = "LOANSTACK_CPU_PROBE"


def cpu_now() -> float:
    """user+sys of this process and of the children it has waited for, in seconds."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    """Setup, call and teardown, so a module fixture's cost lands on the module's first test."""
    start = cpu_now()
    yield
    target = os.environ.get(VARIABLE)
    if not target:
        return
    module = item.nodeid.split("::")[0]
    line = json.dumps({"module": module, "test": item.nodeid, "cpu": cpu_now() - start})
    with Path(target).open("a", encoding="utf-8") as out:
        out.write(line + "\n")


def table(path: Path) -> list[tuple[str, int, float]]:
    """(module, tests, CPU seconds) per module, dearest first."""
    seconds: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        seconds[row["module"]] += row["cpu"]
        count[row["module"]] += 1
    return sorted(((m, count[m], s) for m, s in seconds.items()), key=lambda r: -r[2])


if __name__ == "__main__":
    rows = table(Path(sys.argv[1]))
    for module, tests, cpu in rows:
        print(f"| `{module}` | {tests} | {cpu:.1f} |")
    print(f"| all | {sum(r[1] for r in rows)} | {sum(r[2] for r in rows):.1f} |")
