"""The compiled manifest as the runtime sees it: one `TableView` per table, with its SQL table,
and the RBAC tables, the only table definitions the app uses (nothing compiles specs while serving).

`load_catalog` reads build/ once at startup; code that holds an engine but no app context (the
RBAC and session lookups, the key check) takes its tables from `current_catalog()`, the catalog
this process loaded.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, Table

from app.core.config import ROOT
from generators.raw_spec import parse_spec
from generators.lookup_grams import add_gram_tables
from generators.lookup_indexes import add_lookup_indexes
from generators.order_indexes import add_order_indexes
from generators.schema import add_table
from generators.spec import Field, TableSpec


@dataclass
class TableView:
    """A table plus its view options (Django admin's ModelAdmin, as data)."""

    name: str
    module: str
    spec: TableSpec
    view: dict[str, Any]
    table: Table

    @cached_property
    def fields(self) -> dict[str, Field]:
        """The spec's fields by name, built once: a list page asks for them in every cell."""
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
    rbac_metadata: MetaData = field(default_factory=MetaData)
    """The RBAC database's tables (`models/rbac`), apart from the app's: another database."""

    def module_tables(self, module: str) -> list[TableView]:
        mod = next(m for m in self.modules if m["name"] == module)
        return [self.tables[t] for t in mod["tables"]]

    def rbac_table(self, name: str) -> Table:
        return self.rbac_metadata.tables[name]


def _metadata(tables: dict[str, dict[str, Any]], source: Path) -> tuple[MetaData, dict[str, TableSpec]]:
    """Compiled specs → their tables, all in one MetaData (FKs need their referenced tables), with
    the indexes the pickers and the list orders rely on (the RBAC tables have no views)."""
    metadata = MetaData()
    specs = {name: parse_spec(t["spec"], f"{source}:{name}") for name, t in tables.items()}
    for spec in specs.values():
        add_table(spec, metadata)
    add_lookup_indexes(specs.values(), metadata)
    add_gram_tables(specs.values(), metadata)
    add_order_indexes(specs.values(), {name: t["view"] for name, t in tables.items() if "view" in t}, metadata)
    return metadata, specs


_current: Catalog | None = None


def load_catalog(build_dir: Path) -> Catalog:
    """Read build/manifest.json; run `./build.sh` first if it is missing or older than this code.

    The catalog read last is this process's `current_catalog()`."""
    global _current
    path = build_dir / "manifest.json"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run ./build.sh first")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if "rbac_tables" not in manifest:
        raise SystemExit(f"{path} has no RBAC tables (an older build): run ./build.sh again")
    metadata, specs = _metadata(manifest["tables"], path)
    tables = {name: TableView(name, t["module"], specs[name], t["view"], metadata.tables[name])
              for name, t in manifest["tables"].items()}
    rbac_metadata, _ = _metadata(manifest["rbac_tables"], path)
    _current = Catalog(manifest["modules"], tables, manifest["routes"], metadata, rbac_metadata)
    return _current


def current_catalog() -> Catalog:
    """The catalog this process loaded at startup; a command that starts no app (a CLI step, a
    test) gets the project's build/ read on first use."""
    return _current or load_catalog(ROOT / "build")
