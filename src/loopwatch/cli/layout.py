"""Tables for a person, that never break a word: a table when it fits, one block per row when not.

A rich table squeezed into a narrow terminal folds its cells inside words, so an
identifier such as ``client_version`` or an incident id comes out as ``client_versio``
over ``n``, and a sentence built from such fields becomes unreadable. :func:`print_rows`
measures the table first: when every cell's longest word fits whole, it prints the
table (wrapping text only between words); when not, it prints each row as a block
whose first cell is a heading printed whole and whose other cells are labelled lines
wrapped between words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from rich.cells import cell_len
from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

#: What a rich table adds around each column (one space each side and a rule), and once.
_PER_COLUMN = 3
_BORDER = 1
#: Indent of a block's lines under its heading.
_INDENT = 2


@dataclass(frozen=True)
class Column:
    """A column: ``wrap`` for text that may wrap between its words; otherwise its cells are
    identifiers or short values, printed on one line."""

    name: str
    wrap: bool = False
    justify: JustifyMethod = "left"


def _plain(cell: str) -> str:
    return Text.from_markup(cell).plain


def _widest_word(text: str) -> int:
    return max((cell_len(word) for line in text.splitlines() for word in line.split()), default=0)


def needed_width(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> int:
    """The narrowest width at which the table breaks no word: identifier columns whole,
    text columns as wide as their longest word."""
    total = _BORDER
    for i, column in enumerate(columns):
        cells = [column.name, *(_plain(row[i]) for row in rows)]
        measure = _widest_word if column.wrap else (lambda t: max((cell_len(x) for x in t.splitlines()), default=0))
        total += max(measure(cell) for cell in cells) + _PER_COLUMN
    return total


def print_rows(console: Console, *, title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> None:
    """Print ``rows`` (cells may hold rich markup) as a table, or as blocks when the table
    would have to break a word to fit the console."""
    if needed_width(columns, rows) <= console.width:
        table = Table(title=title)
        for column in columns:
            table.add_column(column.name, no_wrap=not column.wrap, justify=column.justify)
        for row in rows:
            # markup, never emoji codes: a word like "a:a:" in a summary is printed as it is
            table.add_row(*(Text.from_markup(cell, emoji=False) for cell in row))
        console.print(table)
        return
    console.print(Text(title, style="italic"), soft_wrap=True)
    for row in rows:
        # the heading (an id, usually) is printed whole, even past the edge: it is what gets copied
        console.print(Text.from_markup(row[0], style="bold", emoji=False), soft_wrap=True)
        for column, cell in zip(columns[1:], row[1:]):
            line = Text.assemble((f"{column.name}: ", "dim"), Text.from_markup(cell, emoji=False))
            for wrapped in line.wrap(console, max(console.width - _INDENT, 20)):
                wrapped.rstrip()
                console.print(Text(" " * _INDENT) + wrapped, soft_wrap=True)
