"""The admission's and the finish's usual case as MariaDB stored procedures.

Why procedures: MariaDB parses a `BEGIN NOT ATOMIC .. END` block afresh on every call, and that
parse was most of what a call cost the database (measured: a compound admission that did nothing
but parse and read one row, 0.22 ms of server CPU; the same as a procedure, 0.10 ms). A procedure
is parsed once per connection. Each is named by a hash of its text, so a changed body is a new
procedure and workers of two releases can run side by side during an upgrade; `install` creates
the missing ones when the raw pool opens (the app's database user needs CREATE ROUTINE there,
like it needs CREATE for `db sync`). Parameters are anchored to their columns (`TYPE OF`), so
values compare with the columns' own collation.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("pipeline.dist")

MAX_COUNTERS = 8  # 6 quota counters (3 scopes x day/month) + 2 concurrency gauges
USAGE_PARAMS = ("id", "pipeline_id", "version_no", "distributor_id", "request_id", "units", "unit_price", "amount",
                "currency", "lease_expires_at", "client_ip")  # written from parameters; status and times are fixed
USAGE_FIXED = {"status": "'running'", "started_at": "now", "created_at": "now", "updated_at": "now"}


def usage_insert(param: Callable[[str], str]) -> str:
    """The admission's INSERT of its call, with `param(name)` for a parameter's placeholder."""
    columns = [*USAGE_PARAMS, *USAGE_FIXED]
    values = ([param("u_" + c) for c in USAGE_PARAMS]
              + [v if v.startswith("'") else param(v) for v in USAGE_FIXED.values()])
    return f"INSERT INTO pipeline_usage_log ({', '.join(columns)}) VALUES ({', '.join(values)})"


def _admit_body() -> tuple[list[str], str]:
    counters = [f"p_c{i}" for i in range(MAX_COUNTERS)]
    params = (["p_ver BIGINT", "p_now DATETIME(6)", "p_n INT"]
              + [f"{c} TYPE OF quota_counters.id" for c in counters]
              + [f"p_l{i} BIGINT" for i in range(MAX_COUNTERS)]
              + [f"p_u_{col} TYPE OF pipeline_usage_log.{col}" for col in USAGE_PARAMS])
    ids = ", ".join(counters)
    room = " ".join(f"WHEN p_c{i} THEN IFNULL(p_l{i}, used + 1)" for i in range(MAX_COUNTERS))
    # Counter ids beyond p_n are NULL: `id IN (.., NULL)` never matches them. The usage row goes in
    # first, before any counter is locked (a twin request_id fails on its unique index here); one
    # UPDATE adds 1 to every counter with room, locking them in id order; all p_n changed → commit.
    body = f"""BEGIN
DECLARE n INT DEFAULT -1; DECLARE counted TEXT DEFAULT '';
IF (SELECT version FROM table_versions WHERE name = 'dist_context') <=> p_ver THEN
  {usage_insert(lambda name: "p_" + name)};
  UPDATE quota_counters SET updated_at = p_now, used = used + 1
    WHERE id IN ({ids}) AND used < CASE id {room} ELSE used + 1 END;
  SET n = ROW_COUNT();
  IF n = p_n THEN
    SELECT GROUP_CONCAT(id, '=', used) INTO counted FROM quota_counters WHERE id IN ({ids});
    COMMIT;
  ELSE
    ROLLBACK;
  END IF;
END IF;
SELECT CONCAT(n, ' ', counted);
END"""
    return params, body


def _finish_body(call_json: str) -> tuple[list[str], str]:
    params = ["p_call TYPE OF pipeline_usage_log.id", "p_dist TYPE OF pipeline_usage_log.distributor_id",
              "p_status TYPE OF pipeline_usage_log.status", "p_units TYPE OF pipeline_usage_log.units",
              "p_amount TYPE OF pipeline_usage_log.amount", "p_error TYPE OF pipeline_usage_log.error",
              "p_now DATETIME(6)", "p_slot TYPE OF quota_counters.id"]
    # The answer is read before the (shared, hot) concurrency counters are locked, so they are
    # held only for their UPDATE and the COMMIT. NULL units/amount/error keep the row's own.
    body = f"""BEGIN
DECLARE settled INT; DECLARE pipe TYPE OF pipeline_usage_log.pipeline_id; DECLARE answer LONGTEXT;
DECLARE CONTINUE HANDLER FOR NOT FOUND SET answer = NULL;
UPDATE pipeline_usage_log SET status = p_status, units = IFNULL(p_units, units), amount = IFNULL(p_amount, amount),
  error = IFNULL(p_error, error), finished_at = p_now,
  latency_ms = GREATEST(0, TIMESTAMPDIFF(MICROSECOND, started_at, p_now) DIV 1000), updated_at = p_now
  WHERE id = p_call AND distributor_id = p_dist AND status = 'running';
SET settled = ROW_COUNT();
SELECT u.pipeline_id, {call_json} INTO pipe, answer FROM pipeline_usage_log u JOIN pipelines p ON p.id = u.pipeline_id
  WHERE u.id = p_call AND u.distributor_id = p_dist;
IF settled = 1 THEN
  UPDATE quota_counters SET used = used - 1, updated_at = p_now
  WHERE id IN (p_slot, CONCAT('pipe:', pipe, '|C')) AND used > 0;
END IF;
COMMIT;
SELECT CONCAT(settled, ' ', IFNULL(answer, 'null'));
END"""
    return params, body


class Procedure:
    """One stored procedure: its CREATE statement and the CALL with named parameters."""

    def __init__(self, stem: str, params: list[str], body: str):
        text = f"({', '.join('IN ' + p for p in params)})\n{body}"
        self.name = f"{stem}_{hashlib.sha256(text.encode()).hexdigest()[:12]}"
        self.create = f"CREATE PROCEDURE {self.name}{text}"
        names = [p.split()[0].removeprefix("p_") for p in params]
        self.call = f"CALL {self.name}(" + ", ".join(f"%({n})s" for n in names) + ")"


@dataclass(frozen=True)
class Procedures:
    admit: Procedure
    finish: Procedure


def procedures(call_json: str) -> Procedures:
    """This release's procedures; `call_json` is the JSON_OBJECT of a call row `u` joined to pipeline `p`."""
    return Procedures(Procedure("pa_admit", *_admit_body()), Procedure("pa_finish", *_finish_body(call_json)))


async def install(conn: Any, wanted: tuple[Procedure, ...]) -> None:
    """Create the procedures this release calls, where missing (workers race harmlessly: a twin's
    CREATE fails with 'already exists', 1304, which is what we wanted)."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() "
                          "AND ROUTINE_TYPE = 'PROCEDURE'")
        have = {row[0] for row in await cur.fetchall()}
        for proc in wanted:
            if proc.name in have:
                continue
            try:
                await cur.execute(proc.create)
            except Exception as exc:
                if exc.args and exc.args[0] == 1304:  # ER_SP_ALREADY_EXISTS: another worker made it
                    continue
                raise RuntimeError(f"cannot create the stored procedure {proc.name} the distributor API runs on "
                                   f"({exc}); the app's MariaDB user needs CREATE ROUTINE on its database") from exc
            log.info("created stored procedure %s", proc.name)
    await conn.commit()
