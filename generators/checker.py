"""`pipeline-app spec check PATH...`: every problem and warning of table specs and CRUD view files.

Files or folders, in any mix: a JSON file with tblname/params is a view, matched to the spec of
its table among the checked files; a module.json is skipped; everything else is a table spec.
Nothing is written.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from generators.loader import expand_paths, read_json, read_specs
from generators.raw_spec import is_view_file
from generators.spec import SpecError, SpecWarning
from generators.spec_types import suggestion
from generators.views import check_view, view_table

MODULE_FILE = "module.json"
"""A module's own definition (title, tables, pages) beside its views: the build checks it."""


@dataclass
class CheckReport:
    errors: list[SpecError] = field(default_factory=list)
    warnings: list[SpecWarning] = field(default_factory=list)
    specs: int = 0
    views: dict[str, str] = field(default_factory=dict)
    """Each view file → "ok", "warnings" or "errors"."""

    def summary(self) -> str:
        counts = {k: list(self.views.values()).count(k) for k in ("ok", "warnings", "errors")}
        return (f"{self.specs} table spec(s), {len(self.views)} view file(s) ({counts['ok']} clean, "
                f"{counts['warnings']} with warnings, {counts['errors']} refused): "
                f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)")


def check_paths(paths: list[Path | str]) -> CheckReport:
    files, missing = expand_paths(paths)
    report = CheckReport(errors=list(missing))
    views, spec_files = [], []
    for path in files:
        if path.name == MODULE_FILE:
            continue
        try:
            raw = read_json(path) if path.suffix == ".json" else None
        except SpecError:
            raw = None  # read_specs reports it
        if is_view_file(raw):
            views.append((path, raw))
        else:
            spec_files.append(path)
    specs, problems = read_specs(spec_files)
    report.errors += problems
    report.specs = len(specs)
    by_name = {s.name: s for s in specs}
    for path, raw in views:
        table = view_table(raw, path.stem)
        spec = by_name.get(table)
        if spec is None:
            report.errors.append(SpecError(str(path), table, None, "no table spec for this view among the checked "
                                           "files", suggestion(table, sorted(by_name))
                                           or "give its spec file or folder too"))
            report.views[str(path)] = "errors"
            continue
        check = check_view(spec, raw, str(path), by_name)
        report.errors += check.errors
        report.warnings += check.warnings
        report.views[str(path)] = "errors" if check.errors else "warnings" if check.warnings else "ok"
    return report
