"""Spreadsheet exports (CSV and XLSX) that cannot smuggle formulas into Excel or WPS.

A text cell starting with ``=``, ``+``, ``-`` or ``@`` (or a tab / carriage return, which some
spreadsheet programs strip before looking for one) is run as a formula when the file is opened
(OWASP "CSV Injection"). Names, comments and free text in exports come from residents and staff, so
every exported cell goes through :func:`safe_cell`, which prefixes such text with a single quote.
Numbers are left alone: a negative change of score stays a number.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value`` unchanged unless it is text a spreadsheet would run as a formula; then quote it."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def safe_row(row: Iterable[Any]) -> list[Any]:
    """One row with every cell made safe."""
    return [safe_cell(value) for value in row]


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells (and column headings) are made safe."""
    out = frame.copy()
    for column in out.columns:
        if not pd.api.types.is_numeric_dtype(out[column]):
            out[column] = out[column].map(safe_cell)
    out.columns = [safe_cell(str(c)) for c in out.columns]
    return out


def csv_text(rows: Iterable[Iterable[Any]], bom: bool = True) -> str:
    """Rows as CSV text with every cell made safe; with a BOM so that Excel reads the UTF-8."""
    buffer = io.StringIO()
    if bom:
        buffer.write("\ufeff")
    csv.writer(buffer).writerows(safe_row(row) for row in rows)
    return buffer.getvalue()
