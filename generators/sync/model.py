"""A sync plan: the steps that bring a live schema up to the specs, and what was left alone."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table


class SyncError(RuntimeError):
    """A sync that cannot be planned or applied; the message is one line for the operator."""


@dataclass
class Step:
    """One change: a description for people, and the statements (or seed rows) that make it."""

    description: str
    statements: list[str] = field(default_factory=list)
    destructive: bool = False
    risk: str | None = None
    insert: tuple[Table, list[dict[str, Any]]] | None = None
    why: str | None = None
    """Why a safe step cannot change a stored value (a destructive one has its `risk` instead)."""

    @property
    def sql(self) -> str:
        return ";\n".join(self.statements)


@dataclass
class Skipped:
    """A difference left alone: `kind` is "destructive" (needs the flag) or "unsupported"."""

    description: str
    kind: str
    reason: str = ""
    sql: str = ""


@dataclass
class Plan:
    dialect: str
    steps: list[Step] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.steps and not self.skipped

    @property
    def at_risk(self) -> list[str]:
        return [f"{s.description}: {s.risk}" for s in self.steps if s.destructive and s.risk]

    def render(self) -> str:
        if self.empty:
            return f"Schema is up to date ({self.dialect}): nothing to do."
        out = [f"Schema sync plan ({self.dialect}): {len(self.steps)} step(s)"]
        if self.at_risk:
            out.append("Data at risk (destructive steps, --allow-destructive given):")
            out += [f"  ! {line}" for line in self.at_risk]
        for n, step in enumerate(self.steps, 1):
            out.append(f"{n:3}. {'[DESTRUCTIVE] ' if step.destructive else ''}{step.description}")
            if step.why:
                out.append(f"       safe: {step.why}")
            out += [f"       {line}" for line in step.sql.splitlines()]
        titles = (("destructive", "Skipped (destructive, with the data at risk; run with --allow-destructive "
                                  "to apply):"),
                  ("unsupported", f"Skipped (not supported on {self.dialect} without a table rebuild):"))
        for kind, title in titles:
            items = [s for s in self.skipped if s.kind == kind]
            if items:
                out.append(title)
                out += [f"  - {s.description}" + (f" ({s.reason})" if s.reason else "") for s in items]
        return "\n".join(out)
