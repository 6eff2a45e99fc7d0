"""Output that survives a pipe, a narrow terminal, tmux and CI.

Data (ids, ARNs, names, reasons) is always printed as `rich.text.Text`, so rich never reads it as
markup or emoji (`arn:…:secret:…` stays `:secret:`), and it is never cut or split: at a terminal
a table is used only when every id column fits at full length (`no_wrap`, `overflow="ignore"`);
otherwise each row is printed as one line (ids whole; the terminal may wrap it, a pipe gets it
intact) with its free text indented below. When the output is not a terminal (a pipe, a file,
CI), a table is tab-separated values: a `# title` line, the header row, the rows, no padding, so
`cut -f`, `awk -F'\\t'` and spreadsheets read it.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

MIN_PROSE_WIDTH = 30  # narrower than this, a reason column reads one word per line
INDENT = 4  # free text under its row in the list layout
STYLES = {"pass": "green", "accepted": "yellow", "FAIL": "bold red"}


def console(stderr: bool = False, **kwargs: Any) -> Console:
    """The tool's console: no emoji codes, no highlighting of data (NO_COLOR is rich's default),
    and soft wrapping: a line longer than the terminal is written as one line for the terminal to
    wrap, so rich never puts a newline inside an id, an ARN or an S3 URI (tables lay out their
    own cells)."""
    kwargs.setdefault("soft_wrap", True)
    return ToolConsole(stderr=stderr, emoji=False, highlight=False, **kwargs)


class ToolConsole(Console):
    """rich's console, but a closed pipe is left to the command line's one handler
    (`loanstack.cli.main`: quiet, exit 141) instead of rich's own exit 1."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError()


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 change`, `2 changes`: counts in human output read as English."""
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


def cell(value: Any) -> str:
    """A value as a table shows it: None empty, booleans yes/no (never Python's True/False),
    Decimals plain (never 1.33334E-5)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return plain(value)
    return str(value)


def plain(number: Decimal | float | int) -> str:
    """A number as a plain decimal, however small: 0.0000133334, never 1.33334e-05."""
    text = format(Decimal(str(number)).normalize(), "f")
    return "0" if text in ("-0", "") else text


DECIMAL = re.compile(r'"@decimal@(-?[0-9]+(?:\.[0-9]+)?)@"')


def emit(document: Any) -> None:
    """The one JSON document of `--output json`, on stdout (human text goes to stderr). A
    `Decimal` is written as a plain JSON number (0.0000133334, never 1.33334e-05)."""
    text = json.dumps(document, indent=2, sort_keys=True, default=as_json)
    sys.stdout.write(DECIMAL.sub(r"\1", text) + "\n")
    sys.stdout.flush()


def as_json(value: Any) -> str:
    """json's fallback: a Decimal marked for `emit` to unquote, anything else as text."""
    return f"@decimal@{plain(value)}@" if isinstance(value, Decimal) else str(value)


def camel(name: str) -> str:
    """`monthly_total` as `monthlyTotal`: the one key style of every JSON document."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


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
    cells = [[cell(v) for v in row] for row in rows]
    if not out.is_terminal:
        tab_separated(out, title, columns, cells)
        return
    ids = [i for i, name in enumerate(columns) if name != prose]
    widths = {i: max([len(columns[i])] + [len(row[i]) for row in cells]) for i in ids}
    needed = sum(widths.values()) + 3 * len(columns) + 1 + (MIN_PROSE_WIDTH if prose else 0)
    if needed <= out.width:
        out.print(table(title, columns, cells, widths, numbers))
    else:
        listed(out, title, columns, cells, ids, prose)


def tab_separated(out: Console, title: str, columns: Sequence[str], cells: list[list[str]]) -> None:
    """Not a terminal: tab-separated, one line per row whatever its length (soft_wrap: rich
    never inserts a newline), tabs and newlines inside a value read as one space."""
    lines = [f"# {' '.join(title.split())}"]
    lines += ["\t".join(" ".join(v.split()) for v in row) for row in [list(columns), *cells]]
    out.print(Verbatim(lines))


class Verbatim:
    """Lines written as they are: rich expands tabs in `Text`, and a TSV needs its tabs."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in self.lines:
            yield Segment(line)
            yield Segment.line()


def table(
    title: str,
    columns: Sequence[str],
    cells: list[list[str]],
    widths: dict[int, int],
    numbers: Sequence[str],
) -> Table:
    """A terminal table whose id columns are never wrapped, folded or cut (they fit: checked)."""
    shown = Table(title=Text(title))
    for i, name in enumerate(columns):
        if i in widths:
            shown.add_column(
                name,
                no_wrap=True,
                min_width=widths[i],
                overflow="ignore",
                justify="right" if name in numbers else "left",
            )
        else:
            shown.add_column(name, overflow="fold", ratio=1)
    for row in cells:
        shown.add_row(*(Text(value, style=STYLES.get(value, "")) for value in row))
    return shown


def listed(
    out: Console,
    title: str,
    columns: Sequence[str],
    cells: list[list[str]],
    ids: list[int],
    prose: str | None,
) -> None:
    """Too narrow for a table: each row one line, ids whole, its free text indented below."""
    out.print(Text(title, style="bold"), soft_wrap=True)
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
