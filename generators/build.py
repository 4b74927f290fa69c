"""`pipeline-app build`: compile every spec into build/ atomically and reproducibly."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from generators.ddl import ddl_text
from generators.forms import write_forms
from generators.loader import load_specs
from generators.manifest import write_manifest

DIALECT_FILES = ("mysql", "sqlite", "postgresql")


def build(root: Path) -> Path:
    """Write build/ddl/{app,rbac}.<dialect>.sql, the manifest (RBAC tables apart) and the forms via
    a temp folder.

    A spec error raises before anything is moved into place, so build/ is never half-written.
    """
    models = root / "models"
    app_specs = load_specs([p for p in sorted(models.iterdir()) if p.is_dir() and p.name != "rbac"])
    rbac_specs = load_specs([models / "rbac"])
    out = root / "build"
    tmp = root / "build.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "ddl").mkdir(parents=True)
    for dialect in DIALECT_FILES:
        (tmp / "ddl" / f"app.{dialect}.sql").write_text(ddl_text(app_specs, dialect), encoding="utf-8")
        (tmp / "ddl" / f"rbac.{dialect}.sql").write_text(ddl_text(rbac_specs, dialect), encoding="utf-8")
    manifest = write_manifest(root, app_specs, tmp, rbac_specs)
    write_forms(root, app_specs, {name: t["view"] for name, t in manifest["tables"].items()}, tmp)
    old = root / "build.old"
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    print(json.dumps({"build": str(out), "tables": len(app_specs), "rbac_tables": len(rbac_specs)}))
    return out
