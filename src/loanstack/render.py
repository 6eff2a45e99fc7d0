"""Output that survives a pipe, a narrow terminal and CI.

Data (ids, ARNs, names, reasons) is always printed as `rich.text.Text`, so rich never reads it as
markup or emoji (`arn:…:secret:…` stays `:secret:`), and it is never cut with an ellipsis: a
table is used only when every id column fits the terminal at full length; otherwise each row is
printed as one line (ids whole; the terminal may wrap it, a pipe gets it intact) with its free
text indented below.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

MIN_PROSE_WIDTH = 30  # narrower than this, a reason column reads one word per line
INDENT = 4  # free text under its row in the list layout
STYLES = {"pass": "green", "accepted": "yellow", "FAIL": "bold red", "True": "bold red"}


def console(stderr: bool = False, **kwargs: Any) -> Console:
    """The tool's console: no emoji codes, no highlighting of data (NO_COLOR is rich's default)."""
    return Console(stderr=stderr, emoji=False, highlight=False, **kwargs)


def emit(document: Any) -> None:
    """The one JSON document of `--output json`, on stdout (human text goes to stderr)."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def records(
    out: Console,
    title: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    prose: str | None = None,
    numbers: Sequence[str] = (),
) -> None:
    """Rows under `columns`; `prose` names the one column that may wrap at words, `numbers`
    the columns aligned right in a table."""
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    ids = [i for i, name in enumerate(columns) if name != prose]
    widths = {i: max([len(columns[i])] + [len(row[i]) for row in cells]) for i in ids}
    needed = sum(widths.values()) + 3 * len(columns) + 1 + (MIN_PROSE_WIDTH if prose else 0)
    if needed <= out.width:
        table = Table(title=Text(title))
        for i, name in enumerate(columns):
            if i in widths:
                table.add_column(
                    name,
                    no_wrap=True,
                    min_width=widths[i],
                    overflow="fold",
                    justify="right" if name in numbers else "left",
                )
            else:
                table.add_column(name, overflow="fold", ratio=1)
        for row in cells:
            table.add_row(*(Text(value, style=STYLES.get(value, "")) for value in row))
        out.print(table)
        return
    out.print(Text(title, style="bold"))
    out.print(Text("  ".join(columns[i] for i in ids), style="dim"), soft_wrap=True)
    for row in cells:
        line = Text("  ").join(
            Text(row[i], style=STYLES.get(row[i], "")) for i in ids if row[i] != ""
        )
        out.print(line, soft_wrap=True)
        if prose is not None and row[columns.index(prose)]:
            width = max(out.width - INDENT, MIN_PROSE_WIDTH)
            for part in textwrap.wrap(row[columns.index(prose)], width, break_long_words=False):
                out.print(Text(" " * INDENT + part), soft_wrap=True)
