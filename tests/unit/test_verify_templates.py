"""verify's CSV lines judged through templates (verify_export.Templates: a line alike to an
earlier one but for its ids reuses what the function made of that one) give exactly the lines of
the function's whole reader and `judge`, on shuffled, duplicated and tampered lines with tricky
cells: ids the schema refuses, numbers written many ways, quotes, short and long rows."""

from __future__ import annotations

import io
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from loanstack.ops import verify_export, verify_templates
from loanstack.testing import loanbook

FN = verify_export.validation()
LIMITS = FN.thresholds()
PATH = Path("book.csv")
IDS = ["L-1", "L-2", "x_9", "A" * 64, "A" * 65, "", "l 1", "é", "0", "-", "L,1", 'L"1', "L\t"]
CELLS = {
    "loanType": ["personal", "auto", "mortgage", "business", "yacht", "Personal", ""],
    "loanAmount": ["25000", "25000.0", "2.5e4", "25000.005", "0.001", "1e400", "-0", "x", ""],
    "annualInterestRate": ["5.5", "0", "1e-30", "100", "100.01", "NaN", "5,5"],
    "termMonths": ["36", "36.0", "36.5", "3.6e1", "480", "481", ""],
    "monthlyDebtPayments": ["450", "0", "-0.0", "9e8", "1e9", "1e10"],
    "annualIncome": ["85000", "85000.25", "12000", "0", ""],
    "creditScore": ["720", "620", "500", "720.0", "299", "850"],
    "collateralValue": ["30000", "", "300000", "0.01", "0"],
}
HEADERS = [
    ",".join(loanbook.COLUMNS),
    ",".join(reversed(loanbook.COLUMNS)),  # the ids last, the other way round
    ",".join(c for c in loanbook.COLUMNS if c != "applicantId"),  # no applicant: every line whole
    ",".join([*loanbook.COLUMNS, "note", ""]),  # columns the schema ignores
    ",".join(["loanType", "loanId", "loanAmount", "note", "applicantId", *loanbook.COLUMNS[4:]]),
    ",".join(["note", "applicantId", *loanbook.COLUMNS[2:], "loanId"]),  # the ids apart
]


@st.composite
def product(draw: st.DrawFn, names: list[str]) -> dict[str, str]:
    """The cells other than the ids, which many lines of a book share: the first choice of each
    (a valid application), one or two cells drawn from all (often not valid)."""
    cells = {n: CELLS.get(n, ["", "y"])[0] for n in names}
    for name in draw(st.lists(st.sampled_from(names), max_size=2)):
        cells[name] = draw(st.sampled_from(CELLS.get(name, ["", "y"])))
    return cells


@st.composite
def line(draw: st.DrawFn, names: list[str], products: list[dict[str, str]]) -> str:
    ids = {n: draw(st.sampled_from(IDS)) for n in ("loanId", "applicantId")}
    cells = draw(st.sampled_from(products)) | ids
    text = ",".join(cells[n] for n in names)
    tamper = draw(
        st.sampled_from(["", "", "", "", "short", "long", "quote", "quote one", "blank", "space"])
    )
    if tamper == "short":
        text = text.rsplit(",", 1)[0]
    elif tamper == "long":
        text += ",extra"
    elif tamper == "quote":
        text = '"' + text.replace(",", '","') + '"'
    elif tamper == "quote one":  # one cell quoted: the csv module's reading, a template still
        head, _, tail = text.rpartition(",")
        text = f'{head},"{tail}"' if head else f'"{tail}"'
    elif tamper == "blank":
        text = "   "
    elif tamper == "space":
        text = " " + text
    return text


@settings(max_examples=150, deadline=None)
@given(st.data(), st.sampled_from(HEADERS), st.integers(1, 40))
def test_templates_judge_every_line_as_the_whole_reader_does(
    data: st.DataObject, header: str, batch: int
) -> None:
    names = header.split(",")
    products = data.draw(st.lists(product(names), min_size=1, max_size=4))
    texts = data.draw(st.lists(line(names, products), min_size=1, max_size=60))
    texts = data.draw(st.permutations(texts + texts[: len(texts) // 3]))  # duplicated, shuffled
    lines = list(enumerate(texts, start=2))
    expected = list(
        verify_export.judge(FN.rows_of("incoming/book.csv", [(1, header), *lines]), LIMITS, PATH)
    )
    templates = verify_templates.Templates((1, header), LIMITS, PATH, FN, verify_export.judge)
    found = [
        judged
        for k in range(0, len(lines), batch)
        for judged in templates.judge(lines[k : k + batch])
    ]
    assert found == expected


def test_templates_take_most_lines_of_a_loan_book(tmp_path: Path) -> None:
    """The bench's book: the lines after the first of each product reuse its template."""
    path = tmp_path / "book.csv"
    loanbook.write_export(path, 3000, every=100)
    with path.open("rb") as handle:
        texts = list(FN.text_lines(handle))
    header, body = texts[0], [t for t in texts[1:] if isinstance(t[1], str)]
    templates = verify_templates.Templates(
        (header[0], str(header[1])), LIMITS, PATH, FN, verify_export.judge
    )
    found = list(templates.judge(body))
    expected = list(verify_export.judge(FN.rows_of("incoming/book.csv", texts), LIMITS, PATH))
    assert found == [e for e in expected if e[0] in {n for n, _ in body}]
    assert templates.hits > 0.9 * len(body) and len(templates.kept) < 10


@settings(max_examples=100, deadline=None)
@given(st.data(), st.sampled_from(HEADERS))
def test_blocks_read_in_place_give_every_line_as_the_whole_reader_does(
    data: st.DataObject, header: str
) -> None:
    """`judge_block` reads a block's lines alike as bytes: the same lines as the function's
    reader and `judge` give for the whole file, whatever the line ends, blank lines, bytes
    that are not UTF-8, lines too long, and where the blocks are cut (at line ends)."""
    names = header.split(",")
    products = data.draw(st.lists(product(names), min_size=1, max_size=4))
    texts = data.draw(st.lists(line(names, products), min_size=1, max_size=50))
    texts = data.draw(st.permutations(texts + texts[: len(texts) // 2]))
    body = []
    for text in texts:
        raw = text.encode()
        spoil = data.draw(st.sampled_from(["", "", "", "", "bytes", "long", "empty"]))
        if spoil == "bytes":  # not UTF-8 in place of a character
            raw = raw.replace(b"-", b"\xff", 1) if b"-" in raw else raw + b"\xc3"
        elif spoil == "long":
            raw += b"9" * FN.MAX_LINE_BYTES  # its last cell too long: alike, but unreadable
        elif spoil == "empty":  # blank (not empty: after a "\r", a "\n" would end that line)
            raw = b" "
        body.append(raw + data.draw(st.sampled_from([b"\n", b"\r", b"\r\n"])))
    if data.draw(st.booleans()):
        body[-1] = body[-1].rstrip(b"\r\n")  # the last line without its end
    whole = header.encode() + b"\n" + b"".join(body)
    expected = list(
        verify_export.judge(
            FN.rows_of("incoming/book.csv", FN.text_lines(io.BytesIO(whole))), LIMITS, PATH
        )
    )
    cuts = sorted(
        data.draw(st.sets(st.integers(1, len(body) - 1), max_size=4)) if len(body) > 1 else []
    )
    templates = verify_templates.Templates((1, header), LIMITS, PATH, FN, verify_export.judge)
    found, number = [], 2
    for begin, end in zip([0, *cuts], [*cuts, len(body)], strict=True):
        block = b"".join(body[begin:end])
        found += templates.judge_block(number, block)
        number += end - begin
    assert found == expected


TEXT = st.text(st.sampled_from(list('Ab9_-,"\r\n é')), max_size=12)
CELL = st.one_of(st.sampled_from(["L-1", "A_2", "x", "A" * 64, "A" * 65]), TEXT)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 3), st.integers(1, 3), st.lists(CELL, min_size=1, max_size=8))
def test_the_line_pattern_is_the_split_and_the_id_checks(
    low: int, apart: int, cells: list[str]
) -> None:
    """`line_pattern` matches exactly the lines `csv_cells` splits at their commas, with valid
    ids at `low` and `high` and at least `high` + 1 cells; its groups are those ids and the
    line without them (the template's key)."""
    high = low + apart
    text = ",".join(cells)
    match = verify_templates.line_pattern(low, high, FN.ID.pattern).fullmatch(text)
    split = FN.csv_cells(text)
    simple = bool(text) and not any(c in text for c in '"\r\n')
    expected = (
        simple
        and isinstance(split, list)
        and len(split) > high
        and bool(FN.ID.fullmatch(split[low]))
        and bool(FN.ID.fullmatch(split[high]))
    )
    assert (match is not None) == expected
    if match is not None and isinstance(split, list):
        before, first, middle, second, after = match.groups()
        assert (first, second) == (split[low], split[high])
        emptied = [c if k not in (low, high) else "" for k, c in enumerate(split)]
        assert before + middle + after == ",".join(emptied)
