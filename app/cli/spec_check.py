"""`pipeline-app spec check PATH...`: the CLI side of the compiler's checker (generators.checker)."""
from __future__ import annotations

import argparse
import sys


def _spec_check(args: argparse.Namespace) -> int:
    """Every error and warning, one line each; exit 2 when there is an error, else 0."""
    from generators.checker import check_paths

    report = check_paths(args.paths)
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"spec check: {report.summary()}")
    return 2 if report.errors else 0


def add_check(spec: argparse._SubParsersAction) -> None:
    c = spec.add_parser("check", help="check table specs and CRUD view files: every problem and warning")
    c.add_argument("paths", nargs="+", help="spec and view files (.json/.xlsx) or folders of them")
    c.set_defaults(func=_spec_check)
