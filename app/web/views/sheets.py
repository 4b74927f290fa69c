"""Cells of the app's exports (the import reads them back in app/crud/sheets_read.py).

Exports are safe to open: a text cell that a spreadsheet would run as a formula (starting with
`=`, `+`, `-`, `@`, tab or carriage return) is written as text, with a leading `'` in CSV (OWASP's
advice) and as a string cell in xlsx; numbers, dates and times are typed xlsx cells. An import
reads back exactly what an export wrote: the `'` comes off again.
"""
from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from openpyxl.cell import WriteOnlyCell

from app.crud.rows import jsonable
from app.crud.sheets_read import QUOTED

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
EXACT_DIGITS = 15  # a spreadsheet keeps 15 significant digits; longer numbers go out as text


def needs_quote(text: str) -> bool:
    """Whether a spreadsheet would read `text` as a formula (or it already starts with quotes)."""
    return text.startswith(TRIGGERS) or bool(QUOTED.match(text))


def csv_cell(value: Any) -> str:
    """A CSV cell: text neutralised with a leading `'`, everything else as its exact text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if needs_quote(value) else value
    return str(jsonable(value))


def xlsx_cell(ws: Any, value: Any) -> Any:
    """An xlsx cell: text always a string cell (never a formula), numbers and times typed, except
    numbers and times a spreadsheet would round (more than 15 digits, microseconds) as exact text."""
    if isinstance(value, str):
        cell = WriteOnlyCell(ws, value)
        cell.data_type = "s"
        return cell
    if isinstance(value, Decimal):
        exact = value.is_finite() and len(value.normalize().as_tuple().digits) <= EXACT_DIGITS
        return float(value) if exact else xlsx_cell(ws, str(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return value if abs(value) < 10**EXACT_DIGITS else xlsx_cell(ws, str(value))
    if isinstance(value, (datetime, time)) and value.microsecond:
        return xlsx_cell(ws, str(jsonable(value)))
    if isinstance(value, (datetime, date, time)):
        return value
    return None if value is None else xlsx_cell(ws, str(jsonable(value)))
