"""`json2ddl DIALECT PATH...`: the ecosystem's command, reading JSON and Excel specs alike.

Every good spec is compiled; every problem of the others goes to stderr, one line each, and the
exit code is then 2. `json2ddl --types` prints the type table of `docs/types.md`."""
from __future__ import annotations

import argparse
import sys

from generators.ddl import DIALECTS, ddl_text
from generators.loader import read_specs
from generators.type_table import type_table


def json2ddl_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="json2ddl", description="Print the DDL of table specs.")
    if argv is None:
        argv = sys.argv[1:]
    if argv == ["--types"]:
        sys.stdout.write(type_table())
        return 0
    parser.add_argument("dialect", choices=sorted(DIALECTS))
    parser.add_argument("paths", nargs="+", help="spec files (.json/.xlsx) or folders of them")
    args = parser.parse_args(argv)
    specs, problems = read_specs(args.paths)
    sys.stdout.write(ddl_text(specs, args.dialect))
    for problem in problems:
        print(f"json2ddl: {problem}", file=sys.stderr)
    return 2 if problems else 0


if __name__ == "__main__":
    sys.exit(json2ddl_main())
