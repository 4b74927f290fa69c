"""A broken spec stops the compiler with one line that says where and what, never a traceback.

Operators fix specs from the error message alone, so each case checks the exit code, that stderr
is exactly one line, and that it names the file, the table, the field and the fault.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path

import openpyxl
import pytest
from helpers import ROOT

from generators.xlsx_spec import write_xlsx

PY = ROOT / "py3" / "bin"

GOOD = {
    "summary": [{"name": "widgets", "title": "部件", "primary": ["id"]}],
    "fields": [
        {"name": "id", "title": "ID", "type": "str", "length": 32, "nullable": "no"},
        {"name": "name", "title": "名称", "type": "str", "length": 100},
        {"name": "price", "title": "价格", "type": "decimal", "length": 10, "dec": 2},
        {"name": "qty", "title": "数量", "type": "int", "default": "0"},
    ],
    "indexes": [{"name": "uk_name", "idxtype": "unique", "idxfields": ["name"]}],
    "codes": [{"field": "name", "table": "names", "valuefield": "id", "textfield": "title"}],
}


def field(raw: dict, name: str) -> dict:
    return next(f for f in raw["fields"] if f["name"] == name)


def _unknown_type(r):
    field(r, "qty")["type"] = "intger"


def _unknown_field_key(r):
    field(r, "name")["colour"] = "red"


def _unknown_top_key(r):
    r["view"] = {}


def _no_primary(r):
    r["summary"][0]["primary"] = []


def _index_unknown_field(r):
    r["indexes"][0]["idxfields"] = ["nmae"]


def _code_unknown_field(r):
    r["codes"][0]["field"] = "owner"


def _duplicate_field(r):
    r["fields"].append(dict(field(r, "price")))


def _decimal_no_precision(r):
    del field(r, "price")["length"]


# Regressions: each of these used to escape as a Python traceback (exit 1) or pass silently.
def _primary_not_list(r):
    r["summary"][0]["primary"] = 5


def _indexes_not_list(r):
    r["indexes"] = {"name": "uk_name"}


def _pattern_not_text(r):
    field(r, "name")["pattern"] = 5


def _readonly_bad(r):
    field(r, "name")["readonly"] = "maybe"


def _int_default_fraction(r):
    field(r, "qty")["default"] = "1.5"


def _decimal_default_nan(r):
    field(r, "price")["default"] = "NaN"


def _choices_not_list(r):
    field(r, "name")["choices"] = "a,b"


CASES = {
    # case: (break, table.field or table, what the line must say)
    "unknown type": (_unknown_type, "widgets.qty", "unknown type 'intger'"),
    "unknown field key": (_unknown_field_key, "widgets.name", "unknown key 'colour' in field"),
    "unknown top-level key": (_unknown_top_key, "widgets", "unknown key 'view'"),
    "missing primary key": (_no_primary, "widgets", "no primary key"),
    "index on unknown field": (_index_unknown_field, "widgets.nmae", "index uk_name names an unknown field"),
    "code on unknown field": (_code_unknown_field, "widgets.owner", "code on an unknown field"),
    "duplicate field": (_duplicate_field, "widgets.price", "duplicate field"),
    "decimal without precision": (_decimal_no_precision, "widgets.price", "decimal needs a precision"),
    "primary not a list": (_primary_not_list, "widgets", "primary must be a list"),
    "indexes not a list": (_indexes_not_list, "widgets", "indexes must be a list"),
    "pattern not text": (_pattern_not_text, "widgets.name", "pattern must be text"),
    "readonly bad value": (_readonly_bad, "widgets.name", "readonly must be yes/no/true/false, not 'maybe'"),
    "int default with fraction": (_int_default_fraction, "widgets.qty",
                                  "default '1.5' is not a 64-bit integer"),
    "decimal default NaN": (_decimal_default_nan, "widgets.price", "default must be a number, not 'NaN'"),
    "choices not a list": (_choices_not_list, "widgets.name", "choices must be a list"),
}


def json2ddl(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(PY / "json2ddl"), "sqlite", str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def assert_one_line_error(done: subprocess.CompletedProcess, *parts: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def test_the_unbroken_spec_compiles(tmp_path: Path):
    """Every case below differs from this spec only by its one break."""
    path = tmp_path / "widgets.json"
    path.write_text(json.dumps(GOOD, ensure_ascii=False), encoding="utf-8")
    done = json2ddl(path)
    assert done.returncode == 0, done.stderr
    assert "CREATE TABLE widgets" in done.stdout and done.stderr == ""


@pytest.mark.parametrize("case", list(CASES))
def test_broken_json_spec(case: str, tmp_path: Path):
    breaks, where, what = CASES[case]
    raw = copy.deepcopy(GOOD)
    breaks(raw)
    path = tmp_path / "widgets.json"
    path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    line = assert_one_line_error(json2ddl(path), what)
    assert line.startswith(f"json2ddl: {path}: {where}: "), line


def test_broken_xlsx_header(tmp_path: Path):
    path = tmp_path / "widgets.xlsx"
    write_xlsx(GOOD, path)
    wb = openpyxl.load_workbook(path)
    wb["fields"]["B1"] = "titel"
    wb.save(path)
    assert_one_line_error(json2ddl(path), f"json2ddl: {path}: widgets: sheet fields: unknown column 'titel'")


def test_broken_xlsx_cell(tmp_path: Path):
    path = tmp_path / "widgets.xlsx"
    write_xlsx(GOOD, path)
    wb = openpyxl.load_workbook(path)
    wb["fields"]["D3"] = "hundred"  # length:int of field "name"
    wb.save(path)
    assert_one_line_error(json2ddl(path), f"{path}: widgets: sheet fields row 3: length must be an integer")


def test_not_json_and_not_utf8(tmp_path: Path):
    path = tmp_path / "widgets.json"
    path.write_text('{"summary": [', encoding="utf-8")
    assert_one_line_error(json2ddl(path), str(path), "invalid JSON at line 1")
    path.write_bytes(json.dumps(GOOD, ensure_ascii=False).encode("gbk"))
    assert_one_line_error(json2ddl(path), str(path), "not UTF-8 text")


def models_tree(root: Path, broken: bool) -> None:
    """A minimal app root: one app module with two tables and the rbac folder."""
    (root / "models" / "shop").mkdir(parents=True)
    (root / "models" / "rbac").mkdir(parents=True)
    raw = copy.deepcopy(GOOD)
    if broken:
        _unknown_type(raw)
    (root / "models" / "shop" / "widgets.json").write_text(json.dumps(raw), encoding="utf-8")
    other = copy.deepcopy(GOOD)
    other["summary"][0]["name"] = "gadgets"
    (root / "models" / "shop" / "gadgets.json").write_text(json.dumps(other), encoding="utf-8")
    users = copy.deepcopy(GOOD)
    users["summary"][0]["name"] = "users"
    (root / "models" / "rbac" / "users.json").write_text(json.dumps(users), encoding="utf-8")


def test_build_with_a_broken_spec_writes_nothing(tmp_path: Path):
    models_tree(tmp_path, broken=True)
    (tmp_path / "build" / "ddl").mkdir(parents=True)
    (tmp_path / "build" / "ddl" / "app.sqlite.sql").write_text("previous build\n")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    code = ("import sys; from pathlib import Path; from generators.build import build;"
            "build(Path(sys.argv[1]))")
    done = subprocess.run([str(PY / "python"), "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0
    assert "SpecError" in done.stderr and "widgets.qty: unknown type 'intger'" in done.stderr

    # the operations command that build.sh runs: exit 2, one line
    env = dict(os.environ, PIPELINE_HOME=str(tmp_path))
    done = subprocess.run([str(PY / "pipeline-app"), "build"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env)
    assert_one_line_error(done, str(tmp_path / "models" / "shop" / "widgets.json"),
                          "widgets.qty: unknown type 'intger'")

    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "build" / "ddl" / "app.sqlite.sql").read_text() == "previous build\n"

