"""Excel specs: a table written as a workbook compiles exactly like its JSON, both ways.

Operators edit specs in Excel and commit either form; the build dedupes a table given both ways
only when they are equal, so conversion must lose nothing and produce byte-identical DDL.
"""
from __future__ import annotations

import json
import subprocess
import warnings
from pathlib import Path

import openpyxl
import pytest
from helpers import ECOSYSTEM, ROOT

from generators.ddl import ddl_text
from generators.loader import convert, load_spec, load_specs
from generators.raw_spec import parse_spec, spec_to_raw
from generators.spec import SpecError
from generators.xlsx_spec import read_xlsx, write_xlsx, xlsx_bytes

DIALECTS = ("mysql", "sqlite", "postgresql")
MODEL_JSONS = sorted((ROOT / "models").rglob("*.json"))
CAPACITY = ROOT / "models" / "pipeline_ops" / "pipeline_capacity"
TEMPLATE = ECOSYSTEM / "model.xltx"  # the ecosystem's Excel template for a table spec


def beside_views(tmp: Path) -> Path:
    """`tmp/models`, with the project's view files at `tmp/modules`: a spec's list orders (and so
    its order indexes) come from the view file beside it, as in the project's own tree."""
    if not (tmp / "modules").exists():
        (tmp / "modules").symlink_to(ROOT / "modules")
    return tmp / "models"


def round_trip(src: Path, tmp: Path) -> None:
    """json → xlsx → json must give the same TableSpec at each step and the same DDL."""
    original = load_spec(src)
    if src.parent.parent == ROOT / "models":
        tmp = beside_views(tmp) / src.parent.name
        tmp.mkdir(parents=True, exist_ok=True)
    xlsx, back = tmp / f"{src.stem}.xlsx", tmp / f"{src.stem}.back.json"
    convert(src, xlsx)
    convert(xlsx, back)
    from_xlsx, from_back = load_spec(xlsx), load_spec(back)
    assert from_xlsx == original, src
    assert from_back == original, src
    assert json.loads(back.read_text(encoding="utf-8")) == spec_to_raw(original)
    for dialect in DIALECTS:
        assert ddl_text([from_xlsx], dialect) == ddl_text([original], dialect), (src, dialect)


def test_models_exist():
    assert len(MODEL_JSONS) >= 10


@pytest.mark.parametrize("src", MODEL_JSONS, ids=lambda p: p.stem)
def test_model_round_trips_through_xlsx(src: Path, tmp_path: Path):
    round_trip(src, tmp_path)


def test_ecosystem_specs_round_trip(tmp_path: Path):
    sources = sorted((ECOSYSTEM / "rbac-models").glob("*.json"))
    assert len(sources) == 7
    for src in sources:
        round_trip(src, tmp_path)


def test_whole_model_set_gives_identical_ddl_from_xlsx(tmp_path: Path):
    """Across tables too: FKs, dependency order and index names must not depend on the format."""
    models = beside_views(tmp_path)
    for src in MODEL_JSONS:
        rel = src.relative_to(ROOT / "models")
        (models / rel.parent).mkdir(parents=True, exist_ok=True)
        convert(src, models / rel.with_suffix(".xlsx"))
    for group in sorted({p.relative_to(ROOT / "models").parts[0] for p in MODEL_JSONS}):
        json_specs = load_specs(sorted((ROOT / "models" / group).glob("*.json")))
        xlsx_specs = load_specs([models / group])
        assert [s.name for s in xlsx_specs] == [s.name for s in json_specs]
        for dialect in DIALECTS:
            assert ddl_text(xlsx_specs, dialect) == ddl_text(json_specs, dialect), (group, dialect)


def test_committed_capacity_xlsx_equals_its_json():
    from_json, from_xlsx = load_spec(CAPACITY.with_suffix(".json")), load_spec(CAPACITY.with_suffix(".xlsx"))
    assert from_xlsx == from_json
    for dialect in DIALECTS:
        assert ddl_text([from_xlsx], dialect) == ddl_text([from_json], dialect)
    # the folder holds the table twice; the loader keeps one
    assert [s.name for s in load_specs([CAPACITY.parent])].count("pipeline_capacity") == 1
    # and the committed bytes are what the converter makes today (regenerate with spec convert)
    assert CAPACITY.with_suffix(".xlsx").read_bytes() == xlsx_bytes(spec_to_raw(from_json), "x.xlsx")


def test_capacity_workbook_layout():
    """Extension columns appear only when used; codes sheet only when there are codes."""
    wb = openpyxl.load_workbook(CAPACITY.with_suffix(".xlsx"))
    assert wb.sheetnames == ["summary", "fields", "validation", "codes"]
    header = [c.value for c in wb["fields"][1]]
    assert header[:8] == ["name", "title", "type", "length:int", "dec:int", "nullable", "default", "comments"]
    assert set(header[8:]) == {"titles.en", "choices", "min", "readonly"}
    assert [c.value for c in wb["summary"][2]] == ["pipeline_capacity", "供应量", "id", "entity", "Capacity"]
    assert [c.value for c in wb["validation"][2]] == ["uk_pipeline", "idx", "unique:pipeline_id"]
    assert isinstance(wb["fields"]["D2"].value, int)


def test_write_is_deterministic(tmp_path: Path):
    raw = spec_to_raw(load_spec(CAPACITY.with_suffix(".json")))
    write_xlsx(raw, tmp_path / "a.xlsx")
    write_xlsx(raw, tmp_path / "b.xlsx")
    assert (tmp_path / "a.xlsx").read_bytes() == (tmp_path / "b.xlsx").read_bytes()
    raw["fields"][1]["title"] = "产线2"
    write_xlsx(raw, tmp_path / "c.xlsx")
    assert (tmp_path / "c.xlsx").read_bytes() != (tmp_path / "a.xlsx").read_bytes()


FULL = {
    "summary": [{"name": "widgets", "title": "部件", "titles": {"en": "Widgets", "fr": "Pièces"},
                 "primary": ["org_id", "code"], "catelog": "entity"}],
    "fields": [
        {"name": "org_id", "title": "机构", "type": "str", "length": 32},
        {"name": "code", "title": "编码", "type": "char", "length": 8, "pattern": "^[A-Z]+$"},
        {"name": "price", "title": "价格", "type": "decimal", "length": 10, "dec": 2, "default": "1.50",
         "min": "0", "max": "99999.99"},
        {"name": "qty", "title": "数量", "type": "int", "default": "0", "readonly": "yes"},
        {"name": "status", "title": "状态", "type": "str", "length": 16, "default": "draft",
         "choices": [{"value": "draft", "title": "草稿", "titles": {"en": "Draft"}},
                     {"value": "live", "title": "上线"}]},
        {"name": "formula", "title": "公式", "type": "str", "length": 50, "default": "=1+1",
         "comments": "=SUM(A1:A2) stays text", "titles": {"en": "Formula"}},
        {"name": "home", "title": "主页", "type": "str", "length": 200, "format": "url"},
        {"name": "notes", "title": "备注", "type": "text", "widget": "textarea", "nullable": "yes"},
        {"name": "ratio", "title": "比例", "type": "double", "default": "0.25"},
    ],
    "indexes": [{"name": "idx_status", "idxtype": "index", "idxfields": ["status", "qty"]},
                {"name": "uk_home", "idxtype": "unique", "idxfields": ["home"]}],
    "codes": [{"field": "org_id", "table": "organization", "valuefield": "id", "textfield": "orgname",
               "cond": "parentid='x'"},
              {"field": "code", "table": "codes_t", "valuefield": "k", "textfield": "v",
               "on_delete": "restrict"}],
    "data": [{"org_id": "o1", "code": "AB", "qty": 3, "ratio": 0.5, "status": "live"},
             {"org_id": "o1", "code": "CD", "notes": "两行\n文本"}],
}


def test_every_column_and_sheet_round_trips(tmp_path: Path):
    spec = parse_spec(FULL, "full.json")
    write_xlsx(spec_to_raw(spec), tmp_path / "w.xlsx")
    back = load_spec(tmp_path / "w.xlsx")
    assert back == spec
    assert back.field("formula").default == "=1+1"  # text, never a formula
    assert str(back.field("price").default) == "1.50"  # as written, so the DDL says DEFAULT 1.50
    assert back.data[0] == (("code", "AB"), ("org_id", "o1"), ("qty", 3), ("ratio", 0.5), ("status", "live"))
    wb = openpyxl.load_workbook(tmp_path / "w.xlsx")
    assert wb.sheetnames == ["summary", "fields", "validation", "codes", "data"]
    assert [c.value for c in wb["fields"][1]][8:] == [
        "titles.en", "choices", "min", "max", "pattern", "format", "readonly", "widget"]
    assert [c.value for c in wb["summary"][1]][4:] == ["titles.en", "titles.fr"]
    assert wb["summary"]["C2"].value == "org_id,code"
    for dialect in DIALECTS:
        assert ddl_text([back], dialect) == ddl_text([spec], dialect)


def from_template(path: Path, fill) -> Path:
    """A workbook an operator would make: open the ecosystem template, fill it, save as .xlsx."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wb = openpyxl.load_workbook(TEMPLATE)
    wb.template = False
    fill(wb)
    wb.save(path)
    return path


def test_workbook_made_from_the_ecosystem_template(tmp_path: Path):
    def fill(wb):
        wb["summary"].append(["  gadgets ", "小工具", "org_id， code", "entity"])
        fields = wb["fields"]
        fields.append(["org_id", "机构", "str", 32.0, None, "no", None, None])
        fields.append([None] * 8)  # a blank line an operator left
        fields.append(["code", "编码", "char", "8", None, False, None, "  主键之一 "])
        fields.append(["amount", "金额", "decimal", 12, 2, "yes", 0, None])
        fields.append(["made_on", "日期", "date", None, None, True, None, None])
        fields.append(["kind", "类别", "str", 10, None, "no", "a", None])
        # the template's validation sheet has empty rows 2-6: write over the first ones
        for cell, value in {"A2": "idx1", "B2": "idx", "C2": "unique:kind,made_on",
                            "A3": "idx2", "B3": "idx", "C3": "index: amount"}.items():
            wb["validation"][cell] = value
        codes = wb.create_sheet("codes")
        codes.append(["field", "table", "valuefield", "textfield", "cond"])
        codes.append(["kind", "appcodes_kv", "k", "v", "parentid='kind'"])
        data = wb.create_sheet("data")
        data.append(["org_id", "code", "amount", "kind"])
        data.append(["o1", " A1 ", 12.5, "a"])

    path = from_template(tmp_path / "gadgets.xlsx", fill)
    raw = read_xlsx(path)
    assert raw["summary"] == [{"name": "gadgets", "title": "小工具", "primary": ["org_id", "code"],
                               "catelog": "entity"}]
    assert raw["fields"][0] == {"name": "org_id", "title": "机构", "type": "str", "length": 32,
                                "nullable": "no"}
    assert raw["fields"][1]["length"] == 8 and raw["fields"][1]["comments"] == "主键之一"
    assert raw["fields"][2]["default"] == "0"
    assert raw["indexes"] == [{"name": "idx1", "idxtype": "unique", "idxfields": ["kind", "made_on"]},
                              {"name": "idx2", "idxtype": "index", "idxfields": ["amount"]}]
    assert raw["codes"] == [{"field": "kind", "table": "appcodes_kv", "valuefield": "k", "textfield": "v",
                             "cond": "parentid='kind'"}]
    assert raw["data"] == [{"org_id": "o1", "code": "A1", "amount": 12.5, "kind": "a"}]

    spec = load_spec(path)
    assert [f.name for f in spec.fields] == ["org_id", "code", "amount", "made_on", "kind"]
    assert spec.primary == ("org_id", "code")
    assert (spec.field("amount").length, spec.field("amount").dec) == (12, 2)
    assert spec.field("made_on").nullable and not spec.field("kind").nullable
    assert not spec.field("code").nullable  # primary key, whatever the sheet says
    sql = ddl_text([spec], "sqlite")
    assert "CREATE UNIQUE INDEX gadgets_idx1 ON gadgets (kind, made_on)" in sql
    assert "amount DECIMAL(12, 2) DEFAULT 0," in sql


def test_template_as_is_loads_quietly_and_says_it_is_empty(tmp_path: Path):
    """The template's dropdowns make openpyxl warn; an operator must see our one line only."""
    path = tmp_path / "empty.xlsx"
    path.write_bytes((TEMPLATE).read_bytes())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(SpecError, match="sheet summary: needs exactly one table row, found 0"):
            read_xlsx(path)
    assert [str(w.message) for w in caught] == []


def make_workbook(path: Path, sheets: dict[str, list[list]]) -> Path:
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(row)
    wb.save(path)
    return path


GOOD = {
    "summary": [["name", "title", "primary", "catelog"], ["things", "东西", "id", None]],
    "fields": [["name", "title", "type", "length:int", "dec:int", "nullable", "default", "comments"],
               ["id", "ID", "str", 32, None, "no", None, None],
               ["size", "大小", "int", None, None, "yes", "1", None]],
    "validation": [["name", "oper", "value"]],
}


def broken(**changes) -> dict[str, list[list]]:
    sheets = {name: [list(r) for r in rows] for name, rows in GOOD.items()}
    for name, rows in changes.items():
        if rows is None:
            del sheets[name]
        else:
            sheets[name] = rows
    return sheets


def fields_with(extra_header: list, *rows: list) -> dict[str, list[list]]:
    """GOOD with extra header cells on the fields sheet and extra rows (row 4 on)."""
    return broken(fields=[GOOD["fields"][0] + extra_header, *GOOD["fields"][1:], *rows])


def one_field_with(column: str, value: str) -> dict[str, list[list]]:
    row = ["id", "ID", "str", 32, None, None, None, None, value]
    return broken(fields=[GOOD["fields"][0] + [column], row])


VALIDATION = ["name", "oper", "value"]
BAD_WORKBOOKS = {
    "unknown column": (fields_with(["xyz"]), "sheet fields: unknown column 'xyz'"),
    "missing type column": (broken(fields=[["name", "title"], ["id", "ID"]]),
                            "sheet fields: missing column 'type'"),
    "duplicate column": (fields_with(["title"]), "sheet fields: duplicate column 'title'"),
    "missing sheet": (broken(validation=None), "missing sheet 'validation'"),
    "missing summary": (broken(summary=None), "missing sheet 'summary'"),
    "two summary rows": (broken(summary=GOOD["summary"] + [["more", "x", "id", None]]),
                         "sheet summary: needs exactly one table row, found 2"),
    "bad int cell": (fields_with([], ["n", "N", "str", "long"]),
                     "sheet fields row 4: length must be an integer, not 'long'"),
    "fractional int cell": (fields_with([], ["n", "N", "str", 2.5]),
                            "sheet fields row 4: length must be an integer, not '2.5'"),
    "value without header": (fields_with([], ["n", "N", "str", 2, None, None, None, None, "?"]),
                             "sheet fields row 4: a value in column 9, which has no header"),
    "choices not json": (one_field_with("choices", "[draft"),
                         "sheet fields row 2: choices is not valid JSON"),
    "choices not a list": (one_field_with("choices", '{"a": 1}'),
                           "sheet fields row 2: choices must be a JSON list"),
    "unsupported oper": (broken(validation=[VALIDATION, [None] * 3, ["v1", ">", "0"]]),
                         "sheet validation row 3: oper '>' is not supported"),
    "bad idx value": (broken(validation=[VALIDATION, ["i1", "idx", "uniq:id"]]),
                      "sheet validation row 2: an idx value is unique:f1,f2, index:f1 or contains:f1,f2, "
                      "not 'uniq:id'"),
    "idx without name": (broken(validation=[VALIDATION, [None, "idx", "index:id"]]),
                         "sheet validation row 2: an index needs a name"),
    "bad codes header": (broken(codes=[["field", "table", "valuefield"]]),
                         "sheet codes: missing column 'textfield'"),
    "bad data header": (broken(data=[["id", "two words"], ["a", "b"]]),
                        "sheet data: unknown column 'two words'"),
    "unknown titles column": (broken(summary=[GOOD["summary"][0] + ["titles."], [*GOOD["summary"][1], "x"]]),
                              "sheet summary: unknown column 'titles.'"),
}


@pytest.mark.parametrize("case", sorted(BAD_WORKBOOKS))
def test_bad_workbook_raises_one_line_spec_error(case: str, tmp_path: Path):
    sheets, message = BAD_WORKBOOKS[case]
    path = make_workbook(tmp_path / "things.xlsx", sheets)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.source == str(path)
    assert message in info.value.message
    assert "\n" not in str(info.value)
    if case not in ("missing summary", "two summary rows", "unknown titles column"):
        assert info.value.table == "things"


def test_good_workbook_of_the_error_cases_loads(tmp_path: Path):
    """The error cases above differ from this one only by the break they name."""
    spec = load_spec(make_workbook(tmp_path / "things.xlsx", broken()))
    assert [f.name for f in spec.fields] == ["id", "size"] and spec.field("size").default == 1


def test_not_a_workbook(tmp_path: Path):
    path = tmp_path / "x.xlsx"
    path.write_text("name,title\n")
    with pytest.raises(SpecError, match="not a readable .xlsx workbook"):
        read_xlsx(path)
    with pytest.raises(SpecError, match="no such file"):
        read_xlsx(tmp_path / "missing.xlsx")


def test_convert_refuses_other_suffixes_and_lossy_results(tmp_path: Path):
    with pytest.raises(SpecError, match=r"convert goes \.json → \.xlsx or \.xlsx → \.json"):
        convert(CAPACITY.with_suffix(".json"), tmp_path / "x.csv")
    with pytest.raises(SpecError, match="no such file"):
        convert(tmp_path / "missing.json", tmp_path / "x.xlsx")
    # the reader strips cells, so a padded seed value would come back changed: refused
    (tmp_path / "w.xlsx").write_bytes(b"old")
    raw = dict(FULL, data=[{"org_id": "o1", "code": "AB", "notes": " padded "}])
    (tmp_path / "w.json").write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(SpecError, match="data does not survive conversion to .xlsx"):
        convert(tmp_path / "w.json", tmp_path / "w.xlsx")
    assert (tmp_path / "w.xlsx").read_bytes() == b"old"  # nothing written
    # a null or an object has no cell form at all
    for value in (None, {"a": 1}):
        raw = dict(FULL, data=[{"org_id": "o1", "code": "AB", "notes": value}])
        (tmp_path / "w.json").write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
        with pytest.raises(SpecError, match="sheet data row 2: a cell holds text, a number or a boolean"):
            convert(tmp_path / "w.json", tmp_path / "w.xlsx")
    assert (tmp_path / "w.xlsx").read_bytes() == b"old"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "py3" / "bin" / "pipeline-app"), "spec", "convert", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_cli_converts_both_ways(tmp_path: Path):
    src = CAPACITY.with_suffix(".json")
    done = cli(str(src), str(tmp_path / "c.xlsx"))
    assert done.returncode == 0, done.stderr
    assert load_spec(tmp_path / "c.xlsx") == load_spec(src)
    done = cli(str(tmp_path / "c.xlsx"), str(tmp_path / "c.json"))
    assert done.returncode == 0, done.stderr
    expected = json.dumps(spec_to_raw(load_spec(src)), ensure_ascii=False, indent=2) + "\n"
    assert (tmp_path / "c.json").read_text(encoding="utf-8") == expected


def test_cli_bad_workbook_exits_2_with_one_line(tmp_path: Path):
    bad = make_workbook(tmp_path / "things.xlsx", fields_with(["xyz"]))
    done = cli(str(bad), str(tmp_path / "things.json"))
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert str(bad) in lines[0] and "sheet fields: unknown column 'xyz'" in lines[0]
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (tmp_path / "things.json").exists()
