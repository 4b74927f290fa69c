"""Table specs as Excel workbooks, in the ecosystem's layout (`model.xltx`), both ways.

Operators edit specs in Excel; the compiler only ever sees the raw dict a JSON file holds, so
`read_xlsx` turns a workbook into exactly that dict and `parse_spec` does all the validating.
This module only checks what a workbook can get wrong and a JSON file cannot: sheets, headers
and cells, each error naming the sheet and row. `write_xlsx` is its inverse, byte-for-byte
deterministic so a committed workbook only changes when the spec does.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generators.raw_spec import IDXTYPES
from generators.spec import SpecError

SUMMARY_COLUMNS = ("name", "title", "primary", "catelog")
FIELD_COLUMNS = ("name", "title", "type", "length:int", "dec:int", "nullable", "default", "comments")
FIELD_ALIASES = ("length", "dec")  # without ":int": parse_spec converts the text itself
FIELD_EXTENSIONS = ("choices", "min", "max", "pattern", "format", "readonly", "widget")
VALIDATION_COLUMNS = ("name", "oper", "value")
CODE_COLUMNS = ("field", "table", "valuefield", "textfield", "cond", "on_delete", "search", "owner", "snapshot")
# written only when a code uses them, so older workbooks stay as they are
CODE_EXTENSIONS = ("search", "owner", "snapshot")
REQUIRED = {"summary": ("name",), "fields": ("name", "type"), "validation": ("name", "oper", "value"),
            "codes": ("field", "table", "valuefield", "textfield")}
TITLES_RE = re.compile(r"^titles\.([A-Za-z][A-Za-z0-9_-]*)$")
LIST_SPLIT = re.compile(r"[,，]")  # the ecosystem's help sheet says to separate with "，"
FIXED_TIME = dt.datetime(2000, 1, 1)  # workbook timestamps, so output bytes depend on the spec only
ZIP_TIME = (1980, 1, 1, 0, 0, 0)

SPEC_SHEETS = ("summary", "fields", "validation", "codes", "data")
"""The sheets a spec is read from; a workbook's other sheets (the template's coding and help)
are kept through a conversion, see `extra_sheets`."""

Row = tuple[int, dict[str, Any]]


@dataclass(frozen=True)
class ExtraSheet:
    """A sheet that is not part of the spec, as values: what a new workbook carries over."""

    title: str
    rows: tuple[tuple[Any, ...], ...]
    merged: tuple[str, ...] = ()
    widths: tuple[tuple[str, float], ...] = ()


class _Sheets:
    """Reads one workbook's sheets into (row number, {column: value}) lists, raising SpecErrors."""

    def __init__(self, path: Path, wb: Any):
        self.path, self.wb, self.table = path, wb, None

    def error(self, message: str) -> SpecError:
        return SpecError(str(self.path), self.table, None, message)

    def rows(self, sheet: str, allowed: tuple[str, ...] | None, required: bool = True,
             langs: bool = False) -> list[Row]:
        """Rows of `sheet` keyed by header; `allowed` None means any identifier (the data sheet)."""
        if sheet not in self.wb.sheetnames:
            if required:
                raise self.error(f"missing sheet {sheet!r}")
            return []
        raw_rows = list(self.wb[sheet].iter_rows(values_only=True))
        header: list[tuple[str, bool] | None] = []  # (key, is int) per column, None = no header
        for cell in raw_rows[0] if raw_rows else ():
            text = _text(cell)
            if text is None:
                header.append(None)
                continue
            ok = (text in allowed or bool(langs and TITLES_RE.match(text))) if allowed is not None \
                else bool(re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", text))
            if not ok:
                raise self.error(f"sheet {sheet}: unknown column {text!r}")
            key = text.removesuffix(":int")
            if any(h and h[0] == key for h in header):
                raise self.error(f"sheet {sheet}: duplicate column {key!r}")
            header.append((key, text.endswith(":int")))
        keys = {h[0] for h in header if h}
        for need in REQUIRED.get(sheet, ()):
            if need not in keys:
                raise self.error(f"sheet {sheet}: missing column {need!r}")
        out: list[Row] = []
        for number, cells in enumerate(raw_rows[1:], start=2):
            row: dict[str, Any] = {}
            for col, cell in enumerate(cells):
                keep = sheet == "data" and not isinstance(cell, (str, dt.date, dt.time))
                value = cell if keep else _text(cell)  # seed numbers/booleans stay typed
                if value is None:
                    continue
                spec = header[col] if col < len(header) else None
                if spec is None:
                    raise self.error(f"sheet {sheet} row {number}: a value in column {col + 1}, "
                                     f"which has no header")
                key, is_int = spec
                row[key] = _int(value, f"sheet {sheet} row {number}: {key}", self.error) if is_int else value
            if row:
                out.append((number, row))
        return out


def _text(value: Any) -> str | None:
    """A cell as the text a JSON file would hold: stripped, empty → None, 3.0 → "3"."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value).strip() or None


def _int(value: str, where: str, error) -> int:
    """An `xxx:int` cell (already text, so Excel's 32.0 arrived as "32")."""
    try:
        return int(value)
    except ValueError:
        raise error(f"{where} must be an integer, not {value!r}") from None


def _titles(row: dict[str, Any]) -> dict[str, str]:
    return {m.group(1): row.pop(key) for key in sorted(row) if (m := TITLES_RE.match(key))}


def _split(text: str) -> list[str]:
    return [part.strip() for part in LIST_SPLIT.split(text) if part.strip()]


def read_xlsx(path: Path | str) -> dict:
    """Read a workbook in the ecosystem layout into the raw dict `parse_spec` takes."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(str(path), None, None, "no such file")
    return _read(path, path)


def read_xlsx_bytes(data: bytes, path: Path | str) -> dict:
    """The raw dict of a workbook held in memory (a conversion's result, checked before it is
    written); `path` only names the file in errors."""
    return _read(io.BytesIO(data), Path(path))


def _workbook(source: Path | io.BytesIO, path: Path) -> Any:
    try:
        import openpyxl

        with warnings.catch_warnings():  # the template's dropdowns: "Data Validation extension ..."
            warnings.simplefilter("ignore")
            return openpyxl.load_workbook(source, data_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure inside openpyxl means "not a workbook"
        raise SpecError(str(path), None, None,
                        f"not a readable .xlsx workbook ({type(exc).__name__})") from None


def extra_sheets(path: Path | str) -> list[ExtraSheet]:
    """The sheets of a workbook (or template) that hold no spec: the ecosystem template's `coding`
    (the dropdown lists) and `help`, or an operator's own notes."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(str(path), None, None, "no such file")
    wb = _workbook(path, path)
    return [ExtraSheet(ws.title, tuple(tuple(row) for row in ws.iter_rows(values_only=True)),
                       tuple(sorted(str(r) for r in ws.merged_cells.ranges)),
                       tuple(sorted((k, d.width) for k, d in ws.column_dimensions.items() if d.width)))
            for ws in wb.worksheets if ws.title not in SPEC_SHEETS]


def _read(source: Path | io.BytesIO, path: Path) -> dict:
    sheets = _Sheets(path, _workbook(source, path))
    summaries = sheets.rows("summary", SUMMARY_COLUMNS, langs=True)
    if len(summaries) != 1:
        raise sheets.error(f"sheet summary: needs exactly one table row, found {len(summaries)}")
    summary = summaries[0][1]
    if isinstance(summary.get("name"), str):
        sheets.table = summary["name"]
    if titles := _titles(summary):
        summary["titles"] = titles
    if "primary" in summary:
        summary["primary"] = _split(summary["primary"])

    fields = []
    field_columns = FIELD_COLUMNS + FIELD_ALIASES + FIELD_EXTENSIONS
    for number, row in sheets.rows("fields", field_columns, langs=True):
        where = f"sheet fields row {number}"
        if titles := _titles(row):
            row["titles"] = titles
        if "choices" in row:
            try:
                row["choices"] = json.loads(row["choices"])
            except json.JSONDecodeError as exc:
                raise sheets.error(f"{where}: choices is not valid JSON ({exc.msg})") from None
            if not isinstance(row["choices"], list):
                raise sheets.error(f"{where}: choices must be a JSON list")
        fields.append(row)

    indexes = []
    for number, row in sheets.rows("validation", VALIDATION_COLUMNS):
        where = f"sheet validation row {number}"
        if str(row.get("oper")).lower() != "idx":
            raise sheets.error(f"{where}: oper {row.get('oper')!r} is not supported, only idx "
                               f"(use min/max/choices/pattern in the fields sheet, lookups in codes)")
        kind, _, names = str(row.get("value") or "").partition(":")
        if kind.strip() not in IDXTYPES or not _split(names):
            raise sheets.error(f"{where}: an idx value is unique:f1,f2, index:f1 or contains:f1,f2, "
                               f"not {row.get('value')!r}")
        if "name" not in row:
            raise sheets.error(f"{where}: an index needs a name")
        indexes.append({"name": row["name"], "idxtype": kind.strip(), "idxfields": _split(names)})

    raw: dict[str, Any] = {"summary": [summary], "fields": fields}
    if indexes:
        raw["indexes"] = indexes
    if codes := [row for _, row in sheets.rows("codes", CODE_COLUMNS, required=False)]:
        raw["codes"] = codes
    if data := [row for _, row in sheets.rows("data", None, required=False)]:
        raw["data"] = data
    return raw


def _cell(value: Any) -> Any:
    """A raw spec value as a cell: text stays text (even "=1+1"), yes/no for booleans."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or isinstance(value, (str, int, float)):
        return value
    return str(value)


def _add_sheet(wb: Any, title: str, header: list[str], rows: list[list[Any]]) -> None:
    from openpyxl.styles import Font

    ws = wb.create_sheet(title)
    ws.append(header)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    ws.freeze_panes = "A2"
    _write_rows(ws, rows, start=2)


def _write_rows(ws: Any, rows: Any, start: int) -> None:
    for number, values in enumerate(rows, start=start):
        for col, value in enumerate(values, start=1):
            if value is not None:
                cell = ws.cell(row=number, column=col, value=value)
                if isinstance(value, str):
                    cell.data_type = "s"  # text, even "=1+1": never a formula


def _add_extra(wb: Any, sheet: ExtraSheet) -> None:
    ws = wb.create_sheet(sheet.title)
    _write_rows(ws, sheet.rows, start=1)
    for cells in sheet.merged:
        ws.merge_cells(cells)
    for letter, width in sheet.widths:
        ws.column_dimensions[letter].width = width


def write_xlsx(raw: dict, path: Path | str) -> None:
    """Write a raw spec (as `spec_to_raw` makes it) as a workbook in the ecosystem layout."""
    path = Path(path)
    data = xlsx_bytes(raw, path)
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise SpecError(str(path), None, None, f"cannot write: {exc.strerror}") from None


def xlsx_bytes(raw: dict, path: Path | str, extra: list[ExtraSheet] = ()) -> bytes:
    """The workbook's bytes, with the `extra` sheets after the spec's; `path` only names the file
    in errors."""
    from openpyxl import Workbook
    from openpyxl.cell.cell import IllegalCharacterError
    from openpyxl.writer.excel import ExcelWriter

    summary = raw["summary"][0] if isinstance(raw.get("summary"), list) else raw["summary"]
    table = summary.get("name")

    def error(message: str, fieldname: str | None = None) -> SpecError:
        return SpecError(str(path), table, fieldname, message)

    wb = Workbook()
    wb.remove(wb.active)
    langs = sorted(summary.get("titles") or {})
    primary = summary.get("primary") or []
    _add_sheet(wb, "summary", [*SUMMARY_COLUMNS, *(f"titles.{lang}" for lang in langs)], [[
        _cell(summary.get("name")), _cell(summary.get("title")),
        ",".join(primary) if isinstance(primary, list) else _cell(primary), _cell(summary.get("catelog")),
        *(summary["titles"][lang] for lang in langs),
    ]])

    fields: list[dict] = raw.get("fields") or []
    langs = sorted({lang for f in fields for lang in f.get("titles") or {}})
    extensions = [k for k in FIELD_EXTENSIONS if any(f.get(k) not in (None, "", []) for f in fields)]
    known = {c.removesuffix(":int") for c in FIELD_COLUMNS} | set(FIELD_EXTENSIONS) | {"titles"}
    rows = []
    for f in fields:
        if unknown := sorted(set(f) - known):
            raise error(f"unknown key {unknown[0]!r} in field", f.get("name"))
        if f.get("default") == "":
            raise error('a default of "" has no cell form (an empty cell means no default); keep this spec '
                        "as JSON", f.get("name"))
        row = [_cell(f.get(c.removesuffix(":int"))) for c in FIELD_COLUMNS]
        row += [(f.get("titles") or {}).get(lang) for lang in langs]
        for key in extensions:
            value = f.get(key)
            row.append(json.dumps(value, ensure_ascii=False) if key == "choices" and value else _cell(value))
        rows.append(row)
    _add_sheet(wb, "fields", [*FIELD_COLUMNS, *(f"titles.{lang}" for lang in langs), *extensions], rows)

    rows = []
    for index in raw.get("indexes") or []:
        names = index.get("idxfields") or []
        rows.append([index.get("name"), "idx",
                     f"{index.get('idxtype')}:{','.join(names) if isinstance(names, list) else names}"])
    _add_sheet(wb, "validation", list(VALIDATION_COLUMNS), rows)

    if codes := raw.get("codes"):
        columns = [k for k in CODE_COLUMNS if k not in CODE_EXTENSIONS or any(c.get(k) for c in codes)]
        _add_sheet(wb, "codes", columns, [[_cell(",".join(v) if isinstance(v := c.get(k), list) else v)
                                           for k in columns] for c in codes])

    if data := raw.get("data"):
        order = [f.get("name") for f in fields]
        columns = [k for k in order if any(k in row for row in data)]
        columns += sorted({k for row in data for k in row} - set(columns))
        for number, row in enumerate(data, start=2):
            for key, value in row.items():
                if not isinstance(value, (str, int, float, bool)):
                    raise error(f"sheet data row {number}: a cell holds text, a number or a boolean, "
                                f"not {value!r}", key)
        _add_sheet(wb, "data", columns, [[row.get(k) for k in columns] for row in data])

    for sheet in extra:
        _add_extra(wb, sheet)
    wb.properties.created = wb.properties.modified = FIXED_TIME
    buffer = io.BytesIO()
    try:
        ExcelWriter(wb, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED)).save()
    except IllegalCharacterError:
        raise error("a value holds a control character, which a workbook cannot store") from None
    out = io.BytesIO()  # re-pack with fixed entry times: zipfile stamps each entry with "now"
    with zipfile.ZipFile(buffer) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(zipfile.ZipInfo(info.filename, ZIP_TIME), src.read(info.filename),
                         compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()
