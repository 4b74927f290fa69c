"""The compiled manifest as the runtime sees it: one `TableView` per table, with its SQL table."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, Table

from generators.schema import add_table
from generators.raw_spec import parse_spec
from generators.spec import Field, TableSpec


@dataclass
class TableView:
    """A table plus its view options (Django admin's ModelAdmin, as data)."""

    name: str
    module: str
    spec: TableSpec
    view: dict[str, Any]
    table: Table

    @property
    def fields(self) -> dict[str, Field]:
        return self.spec.field_map

    @property
    def pk(self) -> str:
        return self.spec.primary[0]

    def title(self, lang: str) -> str:
        return self.view["titles"].get(lang, self.view["title"]) if lang != "zh" else self.view["title"]

    @property
    def base(self) -> str:
        return f"/{self.module}/{self.name}"

    @property
    def api(self) -> str:
        return f"/api/{self.module}/{self.name}"


@dataclass
class Catalog:
    modules: list[dict[str, Any]]
    tables: dict[str, TableView]
    routes: list[dict[str, Any]]
    metadata: MetaData = field(default_factory=MetaData)

    def module_tables(self, module: str) -> list[TableView]:
        mod = next(m for m in self.modules if m["name"] == module)
        return [self.tables[t] for t in mod["tables"]]


def load_catalog(build_dir: Path) -> Catalog:
    """Read build/manifest.json; run `./build.sh` first if it is missing."""
    path = build_dir / "manifest.json"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run ./build.sh first")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    metadata = MetaData()
    specs = {name: parse_spec(t["spec"], f"{path}:{name}") for name, t in manifest["tables"].items()}
    tables: dict[str, TableView] = {}
    # FKs need their referenced tables present, so add every table before any is used.
    for spec in specs.values():
        add_table(spec, metadata)
    for name, t in manifest["tables"].items():
        tables[name] = TableView(name, t["module"], specs[name], t["view"], metadata.tables[name])
    return Catalog(manifest["modules"], tables, manifest["routes"], metadata)
