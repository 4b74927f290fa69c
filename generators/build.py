"""`pipeline-app build`: compile every spec into build/ atomically and reproducibly."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from generators.ddl import ddl_text
from generators.forms import write_forms
from generators.loader import load_specs
from generators.locale import compile_catalogues
from generators.manifest import write_manifest
from generators.raw_spec import parse_spec
from generators.rows import write_rows

DIALECT_FILES = ("mysql", "sqlite", "postgresql")
RBAC_MODELS = "rbac"
"""The folder under models/ whose tables live in the shared RBAC database, not the app's."""


def app_model_dirs(root: Path) -> list[Path]:
    """Every module folder under models/ but the RBAC one: the app database's tables."""
    return sorted(p for p in (root / "models").iterdir() if p.is_dir() and p.name != RBAC_MODELS)


def build(root: Path) -> Path:
    """Write build/ddl/{app,rbac}.<dialect>.sql, the manifest (RBAC tables apart), the forms, the
    list rows (build/templates/rows/) and the compiled message catalogues (build/locale/) via a temp folder.

    A spec error raises before anything is moved into place, so build/ is never half-written.
    """
    models = root / "models"
    app_specs = load_specs(app_model_dirs(root))
    rbac_specs = load_specs([models / RBAC_MODELS])
    out = root / "build"
    tmp = root / "build.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "ddl").mkdir(parents=True)
    for dialect in DIALECT_FILES:
        (tmp / "ddl" / f"app.{dialect}.sql").write_text(ddl_text(app_specs, dialect), encoding="utf-8")
        (tmp / "ddl" / f"rbac.{dialect}.sql").write_text(ddl_text(rbac_specs, dialect), encoding="utf-8")
    manifest, warnings = write_manifest(root, app_specs, tmp, rbac_specs)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    served = [parse_spec(t["spec"], name) for name, t in manifest["tables"].items()]  # as the views label them
    write_forms(root, served, {name: t["view"] for name, t in manifest["tables"].items()}, tmp)
    write_rows(served, manifest["tables"], tmp)
    compile_catalogues(root, tmp)
    old = root / "build.old"
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    print(json.dumps({"build": str(out), "tables": len(app_specs), "rbac_tables": len(rbac_specs)}))
    return out
