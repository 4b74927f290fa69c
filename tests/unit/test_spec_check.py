"""CRUD view files in the ecosystem's real format, and `pipeline-app spec check` (issue 14).

Every key of the real format takes effect or is named in a warning, never refusing the file;
every field reference (sortby, subtables[].field, data_filter, ...) is checked against the
specs; `toolbar.tools` creates actions; `alters` renames fields or is named in a warning."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from ecosystem_files import ACCT_MODELS, ACCT_VIEWS, CRUD_EXAMPLES, RBAC_MODELS, ROOT
from generators.checker import check_paths
from generators.loader import load_specs
from generators.manifest import compile_manifest
from generators.views import check_view

SPECS = {s.name: s for s in load_specs([RBAC_MODELS, ACCT_MODELS])}


def view(name: str) -> dict:
    return json.loads((ACCT_VIEWS / f"{name}.json").read_text(encoding="utf-8"))


def messages(found: list) -> str:
    return "\n".join(str(x) for x in found)


def test_the_real_view_files():
    report = check_paths([RBAC_MODELS, CRUD_EXAMPLES])
    status = {Path(p).stem: s for p, s in report.views.items()}
    assert status == {
        "users": "ok",
        "organization": "warnings", "orgtypes": "warnings", "permission": "warnings",
        "rolepermission": "warnings", "userrole": "warnings",
        # no spec among the ecosystem's RBAC specs; role names a field users does not have
        "audit_log": "errors", "userapp": "errors", "userdepartment": "errors", "role": "errors",
    }
    errors = messages(report.errors)
    assert "role.json: role.roleid: subtables[1].field names an unknown field of table users" in errors
    assert "userapp.json: userapp: no table spec for this view among the checked files" in errors
    warnings = messages(report.warnings)
    for named in ("models_dir, output_dir, dbname ignored", "uitype 'tree' (idField, textField, parentField)",
                  "relation is shown as a plain list", "browserfields.alters.permid.cwidth is ignored"):
        assert named in warnings, named


def test_every_key_of_the_written_views_takes_effect_or_is_named():
    pricing = check_view(SPECS["acct_pricing"], view("acct_pricing"), "acct_pricing.json", SPECS)
    assert pricing.errors == []
    options = pricing.options
    assert [a["name"] for a in options["actions"]] == ["recalculate", "export_prices"]  # toolbar.tools
    assert options["subtables"] == [{"field": "pricing_id", "table": "acct_usage", "title": "用量", "titles": {}}]
    assert options["logined"] == {"logined_userorgid": "orgid"}  # data_filter {"orgid": "{{userorgid}}"}
    assert pricing.labels == {"unit_price": "单价(元)"}  # alters.unit_price.title
    assert options["list_fields"] == ["name", "unit_price", "currency", "enabled", "created_at"]
    warnings = messages(pricing.warnings)
    for key in ("alias 'pricing'", "editor is ignored", "editable.new_data_url", "editable.update_data_url",
                "editable.delete_data_url", "binds are ignored", "alters.unit_price.cwidth",
                "toolbar[export_prices].icon", "toolbar tool 'export_prices' acts on no row"):
        assert key in warnings, key
    assert "recalculate' acts on no row" not in warnings  # selected_row: true

    usage = check_view(SPECS["acct_usage"], view("acct_usage"), "acct_usage.json", SPECS)
    assert usage.errors == []
    options = usage.options
    assert options["title"] == "用量记账"
    assert options["list_fields"] == ["use_time", "userid", "tokens", "amount", "status"]  # browserfields as columns
    assert options["form_fields"] == ["pricing_id", "tokens", "amount", "remark"]  # editfields
    assert options["search_fields"] == ["status"] and options["sort"] == ["-use_time"]
    assert options["logined"] == {"logined_userorgid": "orgid", "logined_userid": "userid"}
    assert usage.labels["use_time"] == "时间"
    assert "browserfields[]: width ignored" in messages(usage.warnings)


def test_every_wrong_field_reference_is_an_error():
    broken = check_view(SPECS["acct_usage"], view("acct_broken"), "acct_broken.json", SPECS)
    assert [(e.field, e.message.split(" names")[0]) for e in broken.errors] == [
        ("user_id", "browserfields.exclouded"), ("org_id", "data_filter"), ("use_tiem", "sortby"),
        ("pricingid", "subtables[0].field")]
    assert "did you mean 'use_time'?" in str(broken.errors[2])


def test_the_build_serves_ecosystem_views(tmp_path: Path):
    """An ecosystem view in a module: its tools are action routes, its alters rename the field."""
    (tmp_path / "models" / "acct").mkdir(parents=True)
    (tmp_path / "modules" / "acct" / "views").mkdir(parents=True)
    copies = ((ACCT_MODELS, tmp_path / "models" / "acct"), (ACCT_VIEWS, tmp_path / "modules" / "acct" / "views"))
    for name in ("acct_pricing", "acct_usage"):
        for src, dst in copies:
            (dst / f"{name}.json").write_bytes((src / f"{name}.json").read_bytes())
    manifest, warnings = compile_manifest(tmp_path, load_specs([tmp_path / "models"]))
    actions = {r["path"] for r in manifest["routes"] if r["kind"] == "action"}
    assert actions == {"/acct/acct_pricing/{id}/recalculate", "/acct/acct_pricing/{id}/export_prices"}
    unit_price = next(f for f in manifest["tables"]["acct_pricing"]["spec"]["fields"] if f["name"] == "unit_price")
    assert unit_price["title"] == "单价(元)"
    assert "alters" not in manifest["tables"]["acct_pricing"]["view"]
    assert any("editor is ignored" in str(w) for w in warnings)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "py3" / "bin" / "pipeline-app"), "spec", "check", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_cli_prints_every_problem_and_exits_2_on_errors():
    good = cli(RBAC_MODELS, ACCT_MODELS, ACCT_VIEWS / "acct_pricing.json", ACCT_VIEWS / "acct_usage.json")
    assert good.returncode == 0, good.stderr
    assert "error: " not in good.stderr and good.stderr.count("warning: ") == 9
    assert "0 error(s)" in good.stdout and "2 with warnings" in good.stdout

    bad = cli(ACCT_MODELS, ACCT_VIEWS / "acct_broken.json", CRUD_EXAMPLES / "users.json")
    assert bad.returncode == 2
    lines = bad.stderr.splitlines()
    assert len([x for x in lines if x.startswith("error: ")]) == 5  # four references, one view without its spec
    assert "Traceback" not in bad.stderr
    assert cli(ROOT / "models", ROOT / "modules").returncode == 0  # the app's own: clean


def json2ddl(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "py3" / "bin" / "json2ddl"), "sqlite", *map(str, paths)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_json2ddl_folder_compiles_the_good_files_and_lists_every_bad_one(tmp_path: Path):
    for name in ("acct_pricing", "acct_usage"):
        (tmp_path / f"{name}.json").write_bytes((ACCT_MODELS / f"{name}.json").read_bytes())
    (tmp_path / "users.json").write_bytes((CRUD_EXAMPLES / "users.json").read_bytes())  # a view among specs
    (tmp_path / "broken.json").write_text(json.dumps({
        "summary": [{"name": "broken", "primary": ["id", "nope"]}],
        "fields": [{"name": "id", "type": "bigint"}, {"name": "a", "type": "float", "dec": 2},
                   {"name": "b", "type": "str"}, {"name": "c", "type": "intger"},
                   {"name": "d", "type": "int", "lenght": 4},
                   {"name": "e", "type": "date", "default": "today"}, {"name": "2f", "type": "int"}],
        "indexes": [{"name": "ix", "idxtype": "index", "idxfields": ["zz"]}]}), encoding="utf-8")
    done = json2ddl(tmp_path)
    assert done.returncode == 2
    assert "CREATE TABLE acct_pricing" in done.stdout and "CREATE TABLE acct_usage" in done.stdout
    lines = done.stderr.splitlines()
    view_line = [x for x in lines if "users.json" in x]
    assert view_line == [f"json2ddl: {tmp_path / 'users.json'}: users: this is a CRUD view file (it has "
                         f"tblname/params), not a table spec (fix: move it to modules/<module>/views/users.json; "
                         f"`pipeline-app spec check` reads both)"]
    broken = [x for x in lines if "broken.json" in x]
    for part in ("broken.a: float with a scale (dec) needs a precision", "broken.b: type str needs a length",
                 "broken.c: unknown type 'intger' (fix: did you mean 'integer'?)",
                 "broken.d: unknown key 'lenght' in field (fix: did you mean 'length'?)",
                 "broken.2f: field name '2f' is not a valid identifier", "broken.nope: primary key names an unknown",
                 "broken.zz: index ix names an unknown field"):
        assert sum(part in x for x in broken) == 1, part
    assert len(broken) == 7
