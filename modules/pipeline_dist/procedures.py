"""The admission's and the finish's usual case as MariaDB stored procedures, each over a batch.

Why procedures: MariaDB parses a `BEGIN NOT ATOMIC .. END` block afresh on every call, and that
parse was most of what a call cost the database (measured: a compound admission that did nothing
but parse and read one row, 0.22 ms of server CPU; the same as a procedure, 0.10 ms). A procedure
is parsed once per connection. Each is named by a hash of its text, so a changed body is a new
procedure and workers of two releases can run side by side during an upgrade; `install` creates
the missing ones when the raw pool opens (the app's database user needs CREATE ROUTINE there,
like it needs CREATE for `db sync`). Members' values are anchored to their columns (`TYPE OF`),
so they compare with the columns' own collation.

Why batches: under load most of what a short write costs is per round trip and per commit (the
CALL, its packets through Python, the COMMIT), not per row. A worker sends the admissions (and
the finishes) that arrived while earlier ones were at the database as one CALL, one transaction
(`app.core.batching`). Each member is decided on its own before anything of it is written: its
counters are locked and read, and only a member whose counters all exist and all have room is
inserted and counted; one that cannot be decided here (a new period, a full limit) writes
nothing and is decided again alone by the general case; the others stand. A lone request is a
batch of one.

Why decide first: nothing is ever undone inside a transaction that commits. A Galera node
without a binary log replicates a row rolled back to a savepoint as if it had been committed
(the other nodes then hold phantom calls and counts), so a savepoint is no way to take back a
write here. A twin's INSERT that fails on the unique request_id index wrote nothing.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("pipeline.dist")

MAX_COUNTERS = 8  # 6 quota counters (3 scopes x day/month) + 2 concurrency gauges
# written from parameters; status and times are fixed. The snapshot (pipeline code and name,
# distributor name, price mode and package terms as they were at admission) is what billing needs
# of the call, so a later rename, price change or archive never rewrites its history.
USAGE_PARAMS = ("id", "pipeline_id", "version_no", "distributor_id", "request_id", "units", "unit_price", "amount",
                "currency", "price_mode", "package_units", "package_price", "pipeline_code", "pipeline_name",
                "distributor_name", "lease_expires_at", "client_ip")
USAGE_FIXED = {"status": "'running'", "started_at": "now", "created_at": "now", "updated_at": "now"}


def usage_insert(param: Callable[[str], str]) -> str:
    """The admission's INSERT of its call, with `param(name)` for a parameter's placeholder."""
    columns = [*USAGE_PARAMS, *USAGE_FIXED]
    values = ([param("u_" + c) for c in USAGE_PARAMS]
              + [v if v.startswith("'") else param(v) for v in USAGE_FIXED.values()])
    return f"INSERT INTO pipeline_usage_log ({', '.join(columns)}) VALUES ({', '.join(values)})"


# A member of a batch is a JSON array in this order (`mariadb_store._batch`); the procedure reads
# the batch with JSON_TABLE and FETCHes each member into variables anchored to the columns.
ADMIT_MEMBER = ("ver", "n", "now", *[f"c{i}" for i in range(MAX_COUNTERS)], *[f"l{i}" for i in range(MAX_COUNTERS)],
                *[f"u_{c}" for c in USAGE_PARAMS])
FINISH_MEMBER = ("call", "dist", "status", "units", "amount", "error", "now")
_TYPES = {"ver": "BIGINT", "n": "INT", "now": "DATETIME(6)", "call": "TYPE OF pipeline_usage_log.id",
          "dist": "TYPE OF pipeline_usage_log.distributor_id", "status": "TYPE OF pipeline_usage_log.status",
          "units": "TYPE OF pipeline_usage_log.units", "amount": "TYPE OF pipeline_usage_log.amount",
          "error": "TYPE OF pipeline_usage_log.error",
          **{f"c{i}": "TYPE OF quota_counters.id" for i in range(MAX_COUNTERS)},
          **{f"l{i}": "BIGINT" for i in range(MAX_COUNTERS)},
          **{f"u_{c}": f"TYPE OF pipeline_usage_log.{c}" for c in USAGE_PARAMS}}


def _members(order: tuple[str, ...]) -> tuple[str, str]:
    """(declarations, FETCH): a cursor `members` over `p_batch` reading each member into `m_<name>`."""
    columns = ", ".join(f"j_{k} VARCHAR(500) PATH '$[{i}]'" for i, k in enumerate(order))
    declare = "\n".join(f"DECLARE m_{k} {_TYPES[k]};" for k in order) + f"""
DECLARE done INT DEFAULT 0; DECLARE answers LONGTEXT DEFAULT ''; DECLARE lock_ids LONGTEXT DEFAULT '[]';
DECLARE members CURSOR FOR SELECT * FROM JSON_TABLE(p_batch, '$[*]' COLUMNS ({columns})) AS batch;
DECLARE CONTINUE HANDLER FOR NOT FOUND SET done = 1;"""
    return declare, f"FETCH members INTO {', '.join(f'm_{k}' for k in order)}"


# Every counter a batch will change is locked first, one by one in sorted order (`lock_ids`, a
# JSON array): all writers of counters take their locks in one order (the general case's upsert
# and a single UPDATE's index scan sort them alike), so batches on overlapping counters (a
# distributor on two pipelines, a pipeline of two distributors) wait for each other instead of
# deadlocking (measured, 2 workers, 2 distributors x 2 pipelines: 2,911 deadlocks and 439 503s
# in 15 s without; 0 and 0 with). A missing counter locks nothing: its member falls back to the
# general case, which makes it. A batch with one set of counters passes none (`admit_batch`).
_LOCK_ALL = """BEGIN
  DECLARE lock_id TYPE OF quota_counters.id; DECLARE held INT; DECLARE locked INT DEFAULT 0;
  DECLARE locks CURSOR FOR SELECT DISTINCT j_id FROM JSON_TABLE(lock_ids, '$[*]' COLUMNS (
    j_id VARCHAR(500) PATH '$')) AS l ORDER BY j_id;
  DECLARE CONTINUE HANDLER FOR NOT FOUND SET locked = 1;
  OPEN locks;
  next_lock: LOOP
    FETCH locks INTO lock_id;
    IF locked THEN LEAVE next_lock; END IF;
    SELECT COUNT(*) INTO held FROM quota_counters WHERE id = lock_id FOR UPDATE;
  END LOOP;
  CLOSE locks;
END;"""


def _admit_body() -> tuple[list[str], str]:
    ids = ", ".join(f"m_c{i}" for i in range(MAX_COUNTERS))
    limit = " ".join(f"WHEN m_c{i} THEN m_l{i}" for i in range(MAX_COUNTERS))
    # The contexts' version is read once: the batch's members are decided as of its start.
    # Per member: -1 = its context is stale, -2 = its request_id is taken (a twin), n = admitted
    # (every counter exists and had room), anything else (the counters that exist, less the full
    # ones) = undecided, for the general case. Only an admitted member writes. Counter ids beyond
    # m_n are NULL: `id IN (.., NULL)` never matches; a NULL limit (a gauge) is never full. The
    # SELECT locks the member's counters (already locked by _LOCK_ALL when the batch has several
    # sets) and answers their values after the increment that follows it.
    declare, fetch = _members(ADMIT_MEMBER)
    body = f"""BEGIN
DECLARE n INT; DECLARE found INT; DECLARE shut INT; DECLARE counted TEXT; DECLARE current_version BIGINT;
{declare}
SET lock_ids = p_locks, current_version = (SELECT version FROM table_versions WHERE name = 'dist_context');
{_LOCK_ALL}
OPEN members;
next_member: LOOP
  {fetch};
  IF done THEN LEAVE next_member; END IF;
  SET n = -1, counted = '';
  IF m_ver <=> current_version THEN
    SELECT COUNT(*), IFNULL(SUM(used >= CASE id {limit} END), 0), GROUP_CONCAT(id, '=', used + 1)
      INTO found, shut, counted FROM quota_counters WHERE id IN ({ids}) FOR UPDATE;
    SET n = found - shut;
    IF n = m_n THEN
      BEGIN
        DECLARE EXIT HANDLER FOR 1062 SET n = -2;
        {usage_insert(lambda name: "m_" + name)};
        UPDATE quota_counters SET updated_at = m_now, used = used + 1 WHERE id IN ({ids});
      END;
    END IF;
  END IF;
  SET answers = CONCAT(answers, n, ' ', IF(n = m_n, counted, ''), '\n');
END LOOP;
COMMIT;
SELECT answers;
END"""
    return ["p_batch LONGTEXT", "p_locks LONGTEXT"], body


def _finish_body(call_json: str) -> tuple[list[str], str]:
    # Per member: [settled 1|0, the call as JSON or null]. A first pass collects the concurrency
    # gauges of the running calls (the counter ids of `limits_for`) to lock them. Gauges are
    # freed only by the member that closed the call. NULL units/amount/error keep the row's own.
    # FORCE INDEX: the optimizer otherwise weighs every index the WHERE names (measured: 0.05 ms).
    declare, fetch = _members(FINISH_MEMBER)
    body = f"""BEGIN
DECLARE settled INT; DECLARE pipe TYPE OF pipeline_usage_log.pipeline_id; DECLARE answer LONGTEXT;
{declare}
OPEN members;
gauges: LOOP
  {fetch};
  IF done THEN LEAVE gauges; END IF;
  SELECT JSON_ARRAY_APPEND(lock_ids, '$', CONCAT('dist:', distributor_id, '|C'),
                           '$', CONCAT('pipe:', pipeline_id, '|C')) INTO lock_ids
    FROM pipeline_usage_log WHERE id = m_call AND distributor_id = m_dist AND status = 'running';
  SET done = 0;
END LOOP;
CLOSE members;
SET done = 0;
{_LOCK_ALL}
OPEN members;
next_member: LOOP
  {fetch};
  IF done THEN LEAVE next_member; END IF;
  UPDATE pipeline_usage_log FORCE INDEX (PRIMARY) SET status = m_status, units = IFNULL(m_units, units),
    amount = IFNULL(m_amount, amount), error = IFNULL(m_error, error), finished_at = m_now,
    latency_ms = GREATEST(0, TIMESTAMPDIFF(MICROSECOND, started_at, m_now) DIV 1000), updated_at = m_now
    WHERE id = m_call AND distributor_id = m_dist AND status = 'running';
  SET settled = ROW_COUNT(), pipe = NULL, answer = NULL;
  SELECT u.pipeline_id, {call_json} INTO pipe, answer FROM pipeline_usage_log u JOIN pipelines p ON p.id = u.pipeline_id
    WHERE u.id = m_call AND u.distributor_id = m_dist;
  SET done = 0;
  IF settled = 1 THEN
    UPDATE quota_counters SET used = used - 1, updated_at = m_now
    WHERE id IN (CONCAT('dist:', m_dist, '|C'), CONCAT('pipe:', pipe, '|C')) AND used > 0;
  END IF;
  SET answers = CONCAT(answers, IF(answers = '', '[', ','), '[', settled, ',', IFNULL(answer, 'null'), ']');
END LOOP;
COMMIT;
SELECT CONCAT(IF(answers = '', '[', answers), ']');
END"""
    return ["p_batch LONGTEXT"], body


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
