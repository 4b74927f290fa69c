"""Reading an uploaded sheet, streaming: the import side of the app's spreadsheets.

Rows are counted as they are read and the read stops at the limit, so a sheet of a million rows
is refused right after row 50,001, and memory stays bounded by the limit, never by the file.
Both readers stream: CSV through the csv module over a text wrapper of the upload, xlsx through
openpyxl's read-only parser (`iter_rows(values_only=True)`). One openpyxl step is skipped: opening
a read-only sheet first looks for its size, and a sheet without a `<dimension>` element (openpyxl's
own write-only files, many generators) is then parsed to its end before the first row is given;
a million-row file took 30 s so. Cells come back as the text a form would submit, and a cell the
export neutralised (a leading `'` before `=`, `+`, `-`, `@`, tab or CR) loses that `'` again.
This runs in a worker thread and never touches the database.
"""
from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from time import sleep
from typing import Any

from openpyxl.reader.excel import ExcelReader
from openpyxl.styles.stylesheet import apply_stylesheet
from openpyxl.worksheet._read_only import ReadOnlyWorksheet

from app.core.i18n import Msg
from app.crud.rows import CrudError, jsonable

QUOTED = re.compile(r"^'+[=+\-@\t\r]")  # text an export prefixed (or text that already looked so)
YIELD_EVERY = 200  # rows read between two offers of the GIL to the other threads (about a millisecond)
MAX_UNZIPPED = 256 * 1024 * 1024  # an xlsx expanding beyond this is refused before it is read


@dataclass
class Sheet:
    """The header and the non-empty rows (with their line numbers) of an uploaded file."""

    header: list[str]
    rows: list[tuple[int, tuple[str, ...]]]  # tuples of text: the cycle collector never scans them


def csv_value(text: str) -> str:
    """A CSV cell as the export meant it: one leading `'` of a neutralised cell removed."""
    return text[1:] if QUOTED.match(text) else text


def cell_text(value: Any) -> str:
    """A read cell as a form would submit it: numbers as their shortest exact text, times in ISO."""
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (datetime, date, time)):
        return str(jsonable(value))
    return value if isinstance(value, str) else str(value)


def read_sheet(filename: str, content: bytes, max_rows: int) -> Sheet:
    """The first sheet (xlsx) or the CSV file, header first, as text cells; refused (413) as soon
    as row `max_rows + 1` is read (or as many empty rows)."""
    xlsx = filename.lower().endswith(".xlsx")
    rows = _xlsx_rows(content) if xlsx else _csv_rows(content)
    try:
        header = next(rows, None)
        if header is None:
            raise CrudError(400, Msg('the file is empty'))
        head = [cell_text(h).strip() for h in header]
        while head and not head[-1]:
            head.pop()
        body: list[tuple[int, tuple[str, ...]]] = []
        blank = 0
        for line, raw in enumerate(rows, start=2):
            if line % YIELD_EVERY == 0:
                sleep(0)  # hand the GIL to the event loop's thread: requests go on meanwhile
            cells = [cell_text(v) for v in raw[:len(head)]]
            if not any(c.strip() for c in cells):
                blank += 1
                if blank > max_rows:
                    raise CrudError(413, Msg("at most {max_rows} rows per import (and as many empty ones)",
                                             max_rows=max_rows))
                continue
            if len(body) == max_rows:
                raise CrudError(413, Msg('at most {max_rows} rows per import', max_rows=max_rows))
            body.append((line, (*cells, *[""] * (len(head) - len(cells)))))
    finally:
        rows.close()
    return Sheet(head, body)


class _StreamedSheet(ReadOnlyWorksheet):
    """openpyxl's read-only sheet, minus the size probe that can read the whole sheet first."""

    def _get_size(self) -> None:
        """Unknown size: rows come as long as the file has them (read_sheet pads them)."""


def _first_sheet(content: bytes) -> tuple[Any, _StreamedSheet]:
    """(workbook, its first worksheet) as openpyxl's load_workbook(read_only=True, data_only=True)
    opens them, with the sheet built as a _StreamedSheet."""
    reader = ExcelReader(io.BytesIO(content), read_only=True, data_only=True)
    reader.read_manifest()
    reader.read_strings()
    reader.read_workbook()
    apply_stylesheet(reader.archive, reader.wb)  # number formats: which numbers are dates
    for sheet, rel in reader.parser.find_sheets():
        if rel.target in reader.valid_files and "chartsheet" not in rel.Type:
            return reader.wb, _StreamedSheet(reader.wb, sheet.name, rel.target, reader.shared_strings)
    raise CrudError(400, Msg('the xlsx file has no worksheet'))


def _xlsx_rows(content: bytes) -> Iterator[tuple[Any, ...]]:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as z:
            unzipped = sum(i.file_size for i in z.infolist())
        if unzipped > MAX_UNZIPPED:
            raise CrudError(413, Msg("the xlsx file expands to more than {mb} MB", mb=MAX_UNZIPPED // 2**20))
        wb, ws = _first_sheet(content)
    except CrudError:
        raise
    except Exception:  # noqa: BLE001 - openpyxl and zipfile raise many kinds for a bad file
        raise CrudError(400, Msg('not a readable .xlsx file')) from None
    try:
        yield from ws.iter_rows(values_only=True)
    except Exception:  # noqa: BLE001 - a broken sheet part fails only when it is reached
        raise CrudError(400, Msg('not a readable .xlsx file')) from None
    finally:
        wb.close()


def _csv_rows(content: bytes) -> Iterator[list[str]]:
    text = io.TextIOWrapper(io.BytesIO(content), encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    try:
        for row in reader:
            yield [csv_value(c) for c in row]
    except UnicodeDecodeError:
        raise CrudError(400, Msg('the CSV file is not UTF-8 text')) from None
    except csv.Error as exc:
        raise CrudError(400, Msg('line {line_num} of the CSV file: {exc}', line_num=reader.line_num, exc=exc)) from None
