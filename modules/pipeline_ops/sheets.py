"""A report page's table as a CSV or xlsx download (the daily report, the monthly statements).

Report tables are small (a statement's lines, at most 62 days of totals), so the file is made in
memory; the CRUD lists' export streams instead (app.web.views.export). Money stays exact: a
Decimal goes into xlsx as a number with 6 places shown and into CSV as its decimal string.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from litestar import Response
from openpyxl import Workbook

FORMATS = {"csv": "text/csv; charset=utf-8",
           "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def wanted_format(params: Any) -> str | None:
    """`?format=csv|xlsx` → that format; anything else → None (the HTML page)."""
    value = params.get("format")
    return value if value in FORMATS else None


def sheet(fmt: str, filename: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Response:
    """The table as a download named `filename.<fmt>`."""
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows([["" if v is None else str(v) for v in row] for row in rows])
        body = ("\ufeff" + out.getvalue()).encode()  # BOM: spreadsheet programs then read UTF-8 right
    else:
        book = Workbook()
        ws = book.active
        ws.append(list(header))
        for row in rows:
            ws.append(list(row))
            for cell in ws[ws.max_row]:
                if isinstance(cell.value, Decimal):
                    cell.number_format = "0.000000"
        buf = io.BytesIO()
        book.save(buf)
        body = buf.getvalue()
    return Response(body, media_type=FORMATS[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{filename}.{fmt}"'})
