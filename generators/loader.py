"""Spec files, JSON and Excel alike: load one, a folder of them, or convert one into the other.

The one module that knows both file formats; each turns its file into the raw dict that
`parse_spec` validates, so the spec model and its parser know nothing of files.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from generators.raw_spec import parse_spec, spec_to_raw
from generators.spec import SpecError, TableSpec, raise_all
from generators.xlsx_spec import ExtraSheet, extra_sheets, read_xlsx, read_xlsx_bytes, xlsx_bytes


def read_json(path: Path) -> Any:
    """A JSON file of the project (a spec, a module or view definition); a broken one is a SpecError."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SpecError(str(path), None, None, f"invalid JSON at line {exc.lineno}: {exc.msg}") from None
    except UnicodeDecodeError:
        raise SpecError(str(path), None, None, "not UTF-8 text (save the file as UTF-8)") from None


def load_spec(path: Path | str) -> TableSpec:
    """Load one spec file, JSON or Excel, by its suffix."""
    path = Path(path)
    if path.suffix == ".json":
        return parse_spec(read_json(path), str(path))
    if path.suffix == ".xlsx":
        return parse_spec(read_xlsx(path), str(path))
    raise SpecError(str(path), None, None, "a spec file must end in .json or .xlsx")


def spec_files(paths: list[Path | str]) -> list[Path]:
    """Expand folders into their spec files (recursively), sorted, so output order is stable."""
    files, problems = expand_paths(paths)
    raise_all(problems)
    return files


def expand_paths(paths: list[Path | str]) -> tuple[list[Path], list[SpecError]]:
    """The .json/.xlsx files of `paths` (folders recursively, sorted), and the paths that are missing."""
    out: list[Path] = []
    problems: list[SpecError] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(x for x in p.rglob("*") if x.suffix in (".json", ".xlsx") and x.is_file()
                              and not x.name.startswith(("~$", "."))))
        elif p.exists():
            out.append(p)
        else:
            problems.append(SpecError(str(p), None, None, "no such file or folder"))
    return out, problems


def read_specs(paths: list[Path | str]) -> tuple[list[TableSpec], list[SpecError]]:
    """Every good spec under `paths`, and every problem of the others (all of each file's).

    A table given both as JSON and as Excel must agree; it is kept once."""
    files, problems = expand_paths(paths)
    by_name: dict[str, TableSpec] = {}
    for path in files:
        try:
            spec = load_spec(path)
        except SpecError as exc:
            problems += exc.problems
            continue
        other = by_name.get(spec.name)
        if other is None:
            by_name[spec.name] = spec
        elif other != spec:
            problems.append(SpecError(str(path), spec.name, None, f"differs from the same table in {other.source}"))
    return list(by_name.values()), problems


def load_specs(paths: list[Path | str]) -> list[TableSpec]:
    """Load every spec under `paths`, or raise the problems of all the files that have any."""
    specs, problems = read_specs(paths)
    raise_all(problems)
    return specs


def convert(src: Path | str, dst: Path | str, template: Path | str | None = None) -> None:
    """Convert a spec between JSON and Excel by the files' suffixes, refusing a lossy result.

    The new file is read back in memory before it is written and must give the same TableSpec,
    so a value a workbook cannot hold fails here, not later as "differs" in the build. Types are
    written as the source spells them (`bigint` stays `bigint`). A workbook keeps the sheets that
    hold no spec (the ecosystem template's coding and help): those of the `template` if given,
    else those of the workbook it replaces.
    """
    src, dst = Path(src), Path(dst)
    if (src.suffix, dst.suffix) not in ((".json", ".xlsx"), (".xlsx", ".json")):
        raise SpecError(str(src), None, None,
                        f"convert goes .json → .xlsx or .xlsx → .json, "
                        f"not {src.suffix or '?'} → {dst.suffix or '?'}")
    if not src.is_file():
        raise SpecError(str(src), None, None, "no such file")
    spec = load_spec(src)
    raw = spec_to_raw(spec, as_written=True)
    if dst.suffix == ".xlsx":
        data = xlsx_bytes(raw, dst, _kept_sheets(dst, template))
        back = parse_spec(read_xlsx_bytes(data, dst), str(dst))
    else:
        text = json.dumps(raw, ensure_ascii=False, indent=2) + "\n"
        data = text.encode("utf-8")
        back = parse_spec(json.loads(text), str(dst))
    if back != spec:
        what = next(f.name for f in dataclasses.fields(spec)
                    if f.compare and getattr(back, f.name) != getattr(spec, f.name))
        raise SpecError(str(src), spec.name, None, f"{what} does not survive conversion to {dst.suffix}")
    try:
        dst.write_bytes(data)
    except OSError as exc:
        raise SpecError(str(dst), spec.name, None, f"cannot write: {exc.strerror}") from None


def _kept_sheets(dst: Path, template: Path | str | None) -> list[ExtraSheet]:
    """The extra sheets a converted workbook gets: the template's, else the replaced workbook's
    (none when that is not a readable workbook: there is nothing to keep)."""
    if template is not None:
        return extra_sheets(template)
    try:
        return extra_sheets(dst) if dst.is_file() else []
    except SpecError:
        return []
