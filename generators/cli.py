"""`json2ddl DIALECT PATH...`: the ecosystem's command, reading JSON and Excel specs alike."""
from __future__ import annotations

import argparse
import sys

from generators.ddl import DIALECTS, ddl_text
from generators.loader import load_specs
from generators.spec import SpecError


def json2ddl_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="json2ddl", description="Print the DDL of table specs.")
    parser.add_argument("dialect", choices=sorted(DIALECTS))
    parser.add_argument("paths", nargs="+", help="spec files (.json/.xlsx) or folders of them")
    args = parser.parse_args(argv)
    try:
        specs = load_specs(args.paths)
    except SpecError as exc:
        print(f"json2ddl: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(ddl_text(specs, args.dialect))
    return 0


if __name__ == "__main__":
    sys.exit(json2ddl_main())
