"""`pipeline-app db sync`: bring a live database up to the specs without losing data.

Safe changes are planned and applied; destructive ones only with `allow_destructive`, after the
plan has counted the data at risk. A NOT NULL column without a default added to a table that has
rows is added as NULL-able (and the plan says so): the app keeps working, and the later
NULL → NOT NULL is an ordinary destructive step that reports how many NULLs still block it.

- `model`: the plan (steps, skipped differences) and its rendering;
- `live`: reading the live schema, type normalisation and classification;
- `dialects`: what each database does differently, one class per dialect;
- `planner`: specs against the live schema → a plan (`plan_sync`);
- `apply`: running a plan (`apply_sync`).
"""
from generators.sync.apply import apply_sync, one_line
from generators.sync.live import classify, norm_type
from generators.sync.model import Plan, Skipped, Step, SyncError
from generators.sync.planner import plan_sync

__all__ = ["Plan", "Skipped", "Step", "SyncError", "apply_sync", "classify", "norm_type", "one_line",
           "plan_sync"]
