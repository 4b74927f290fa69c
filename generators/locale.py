"""Build step: compile the UI's gettext catalogues (`app/locale/<lang>/LC_MESSAGES/*.po`) into
`build/locale/` as `.mo` files, so no compiled file lives in git and every build matches its `.po`."""
from __future__ import annotations

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po


def compile_catalogues(root: Path, out: Path) -> int:
    """Write `out/locale/<lang>/LC_MESSAGES/<domain>.mo` for each `.po`; returns how many."""
    count = 0
    for po in sorted((root / "app" / "locale").glob("*/LC_MESSAGES/*.po")):
        with po.open("rb") as f:
            catalog = read_po(f, locale=po.parts[-3])
        target = out / "locale" / po.relative_to(root / "app" / "locale").with_suffix(".mo")
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as f:
            write_mo(f, catalog, use_fuzzy=False)
        count += 1
    return count
