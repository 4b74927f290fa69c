"""Cells of the app's spreadsheets, both ways: what an export writes and what an import reads.

Exports are safe to open: a text cell that a spreadsheet would run as a formula (starting with
`=`, `+`, `-`, `@`, tab or carriage return) is written as text, with a leading `'` in CSV (OWASP's
advice) and as a string cell in xlsx; numbers, dates and times are typed xlsx cells. Imports read
back exactly what an export wrote (the `'` comes off again), streaming: rows are counted as they
are read and the read stops at the limit, so a sheet of a million rows is refused after the
first 50,001, and memory stays bounded by the limit, never by the file.
"""
from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from openpyxl import load_workbook
from openpyxl.cell import WriteOnlyCell

from app.crud.rows import CrudError, jsonable

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_ESCAPED = re.compile(r"^'+[=+\-@\t\r]")  # text an export prefixed (or text that already looked so)
EXACT_DIGITS = 15  # a spreadsheet keeps 15 significant digits; longer numbers go out as text
MAX_UNZIPPED = 256 * 1024 * 1024  # an xlsx expanding beyond this is refused before it is read


def needs_quote(text: str) -> bool:
    """Whether a spreadsheet would read `text` as a formula (or it already starts with quotes)."""
    return text.startswith(TRIGGERS) or bool(_ESCAPED.match(text))


def csv_cell(value: Any) -> str:
    """A CSV cell: text neutralised with a leading `'`, everything else as its exact text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if needs_quote(value) else value
    return str(jsonable(value))


def csv_value(text: str) -> str:
    """A CSV cell as the export meant it: one leading `'` of a neutralised cell removed."""
    return text[1:] if _ESCAPED.match(text) else text


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


def cell_text(value: Any) -> str:
    """A read cell as a form would submit it: numbers as their shortest exact text, times in ISO."""
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (datetime, date, time)):
        return str(jsonable(value))
    return value if isinstance(value, str) else str(value)


@dataclass
class Sheet:
    """The header and the non-empty rows (with their line numbers) of an uploaded file."""

    header: list[str]
    rows: list[tuple[int, list[str]]]


def read_sheet(filename: str, content: bytes, max_rows: int) -> Sheet:
    """The first sheet (xlsx) or the CSV file, header first, as text cells; refused (413) as soon
    as row `max_rows + 1` is read. Runs in a worker thread: it never touches the database."""
    xlsx = filename.lower().endswith(".xlsx")
    rows = _xlsx_rows(content) if xlsx else _csv_rows(content)
    try:
        header = next(rows, None)
        if header is None:
            raise CrudError(400, "the file is empty")
        head = [cell_text(h).strip() for h in header]
        while head and not head[-1]:
            head.pop()
        body: list[tuple[int, list[str]]] = []
        blank = 0
        for line, raw in enumerate(rows, start=2):
            cells = [cell_text(v) for v in raw[:len(head)]]
            if not any(c.strip() for c in cells):
                blank += 1
                if blank > max_rows:
                    raise CrudError(413, f"at most {max_rows} rows per import (and as many empty ones)")
                continue
            if len(body) == max_rows:
                raise CrudError(413, f"at most {max_rows} rows per import")
            body.append((line, cells + [""] * (len(head) - len(cells))))
    finally:
        rows.close()
    return Sheet(head, body)


def _xlsx_rows(content: bytes) -> Any:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as z:
            unzipped = sum(i.file_size for i in z.infolist())
        if unzipped > MAX_UNZIPPED:
            raise CrudError(413, f"the xlsx file expands to more than {MAX_UNZIPPED // 2**20} MB")
        wb = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except CrudError:
        raise
    except Exception:  # noqa: BLE001 - openpyxl and zipfile raise many kinds for a bad file
        raise CrudError(400, "not a readable .xlsx file") from None
    try:
        yield from wb.worksheets[0].iter_rows(values_only=True)
    finally:
        wb.close()


def _csv_rows(content: bytes) -> Any:
    text = io.TextIOWrapper(io.BytesIO(content), encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    try:
        for row in reader:
            yield [csv_value(c) for c in row]
    except UnicodeDecodeError:
        raise CrudError(400, "the CSV file is not UTF-8 text") from None
    except csv.Error as exc:
        raise CrudError(400, f"line {reader.line_num} of the CSV file: {exc}") from None
