"""`spec convert` on the ecosystem's Excel template: the template's extra sheets (coding, help)
survive a round trip, and types come back as the file spelled them (issue 14). Also: the type
table in docs/types.md is the one the compiler prints."""
from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import openpyxl

from ecosystem_files import ROOT, TEMPLATE
from generators.loader import convert, load_spec
from generators.type_table import type_table


def template_sheets(path: Path) -> dict[str, list[tuple]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wb = openpyxl.load_workbook(path)
    return {ws.title: list(ws.iter_rows(values_only=True)) for ws in wb.worksheets}


def from_template(path: Path) -> Path:
    """What an operator makes: the template filled in, saved as .xlsx."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wb = openpyxl.load_workbook(TEMPLATE)
    wb.template = False
    wb["summary"].append(["wallet", "钱包", "id", "entity"])
    for row in (["id", "ID", "str", 32, None, "no", None, None],
                ["balance", "余额", "float", 18, 2, "no", "0", None],
                ["frozen", "冻结", "double", 18, 2, None, None, None],
                ["points", "积分", "bigint", None, None, None, None, None],
                ["updated", "更新时间", "timestamp", None, None, None, None, None]):
        wb["fields"].append(row)
    wb.save(path)
    return path


def test_round_trip_keeps_coding_and_help(tmp_path: Path):
    workbook = from_template(tmp_path / "wallet.xlsx")
    original = template_sheets(TEMPLATE)
    convert(workbook, tmp_path / "wallet.json")
    convert(tmp_path / "wallet.json", workbook)  # back over the workbook it came from
    back = template_sheets(workbook)
    assert list(back) == ["summary", "fields", "validation", "coding", "help"]
    assert back["coding"] == original["coding"] and back["help"] == original["help"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        merged = {str(r) for r in openpyxl.load_workbook(workbook)["help"].merged_cells.ranges}
    assert merged == {"A1:B1", "C1:D1"}
    assert load_spec(workbook) == load_spec(tmp_path / "wallet.json")


def test_types_come_back_as_written(tmp_path: Path):
    convert(from_template(tmp_path / "wallet.xlsx"), tmp_path / "wallet.json")
    spec = load_spec(tmp_path / "wallet.json")
    assert [(f.name, f.type, f.written_type) for f in spec.fields if f.written_type] == [
        ("balance", "decimal", "float"), ("frozen", "decimal", "double"), ("points", "long", "bigint")]
    text = (tmp_path / "wallet.json").read_text(encoding="utf-8")
    assert '"type": "float"' in text and '"type": "bigint"' in text and '"type": "decimal"' not in text


def test_cli_template_gives_a_new_workbook_the_extra_sheets(tmp_path: Path):
    convert(from_template(tmp_path / "wallet.xlsx"), tmp_path / "wallet.json")
    done = subprocess.run([str(ROOT / "py3" / "bin" / "pipeline-app"), "spec", "convert", "--template", str(TEMPLATE),
                           str(tmp_path / "wallet.json"), str(tmp_path / "new.xlsx")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert list(template_sheets(tmp_path / "new.xlsx")) == ["summary", "fields", "validation", "coding", "help"]
    convert(tmp_path / "wallet.json", tmp_path / "plain.xlsx")  # no template, nothing replaced: the spec only
    assert list(template_sheets(tmp_path / "plain.xlsx")) == ["summary", "fields", "validation"]


def test_docs_hold_the_type_table_the_compiler_prints():
    docs = (ROOT / "docs" / "types.md").read_text(encoding="utf-8")
    assert f"<!-- json2ddl --types -->\n{type_table()}<!-- end -->" in docs
