"""The one markdown table writer of the experiments: a DataFrame in, a GitHub-flavoured markdown table out.

Every experiment table (the grid's results, the timed single run, bench, report) goes through
:func:`markdown_table`, so cells are formatted one way: a column's format is a ``str.format`` spec
(``".3f"``, ``","``) or a function of the value; missing values print as ``–``.

>>> import pandas as pd
>>> print(markdown_table(pd.DataFrame(dict(method=["hmf", "lmf"], error=[0.12345, None])), formats={"error": ".3f"}))
| method | error |
|---|---|
| hmf | 0.123 |
| lmf | – |
<BLANKLINE>
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["markdown_table", "MISSING"]

#: what a missing value (None, NaN) prints as
MISSING = "–"


def _is_float(value) -> bool:
    return isinstance(value, (float, np.floating))


def _cell(value, fmt, float_format, missing: str) -> str:
    if value is None or (_is_float(value) and math.isnan(value)):
        return missing
    if fmt is None and _is_float(value):
        fmt = float_format
    if fmt is None:
        return str(value)
    if callable(fmt):
        return str(fmt(value))
    return format(value, fmt)


def markdown_table(df: pd.DataFrame, columns=None, *, headers=None, formats=None, float_format=None,
                   missing: str = MISSING) -> str:
    """``df`` as a markdown table, one line per row, ending with a newline.

    ``columns``: the columns to show, in order (default: all); ``headers``: ``{column: header text}``
    (default: the column name); ``formats``: ``{column: format spec or function}`` (default: ``str``;
    ``float_format``, a spec or function, for float values of the other columns); ``missing``: what None
    and NaN print as. A ``|`` inside a value is escaped so that it cannot break the table.

    >>> df = pd.DataFrame(dict(c=[4.0], params=[12345], x=["a|b"]))
    >>> print(markdown_table(df, ["c", "params", "x"], headers={"c": "compression"},
    ...                      formats={"c": lambda v: f"{v:g}x", "params": ","}), end="")
    | compression | params | x |
    |---|---|---|
    | 4x | 12,345 | a\\|b |
    >>> print(markdown_table(pd.DataFrame(dict(t=[0.123456, float("nan")])), float_format=".3g", missing=""), end="")
    | t |
    |---|
    | 0.123 |
    |  |
    """
    columns = list(df.columns) if columns is None else list(columns)
    absent = [c for c in columns if c not in df.columns]
    if absent:
        raise ValueError(f"markdown_table: no column(s) {absent} in the table; it has {list(df.columns)}")
    headers, formats = headers or {}, formats or {}
    lines = ["| " + " | ".join(str(headers.get(c, c)) for c in columns) + " |", "|" + "---|" * len(columns)]
    for row in df[columns].itertuples(index=False, name=None):
        cells = (_cell(v, formats.get(c), float_format, missing).replace("|", "\\|") for c, v in zip(columns, row))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
