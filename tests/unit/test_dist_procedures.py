"""The MariaDB stored procedures the distributor API runs on: created by the first worker that
needs them, found by the next, and a clear startup error where the database user may not create
them (design note: modules/pipeline_dist/procedures.py)."""
from __future__ import annotations

import secrets

from conftest import _mariadb_admin, make_database
from sqlalchemy.engine import make_url

from modules.pipeline_dist.mariadb_store import RawStore


def procedure_names(conn, schema: str) -> set[str]:
    cur = conn.cursor()
    cur.execute("SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s", (schema,))
    return {row[0] for row in cur.fetchall()}


async def test_first_worker_creates_them_the_next_finds_them(tmp_path):
    url, drop = make_database("mariadb", tmp_path)
    schema = make_url(url).database
    admin = _mariadb_admin()
    try:
        first = await RawStore.open(url, 2)
        names = procedure_names(admin, schema)
        assert names == {first.procs.admit.name, first.procs.finish.name}
        assert first.procs.admit.name.startswith("pa_admit_") and first.procs.finish.name.startswith("pa_finish_")
        second = await RawStore.open(url, 2)  # another worker: nothing to create, no error
        assert procedure_names(admin, schema) == names
        await first.close()
        await second.close()
    finally:
        admin.close()
        drop()


async def test_a_user_without_create_routine_gets_a_clear_startup_error(tmp_path):
    url, drop = make_database("mariadb", tmp_path)
    schema = make_url(url).database
    user, password = "pt_" + secrets.token_hex(4), secrets.token_hex(8)
    admin = _mariadb_admin()
    cur = admin.cursor()
    cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
    try:
        cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON {schema}.* TO '{user}'@'%'")
        limited = make_url(url).set(username=user, password=password).render_as_string(hide_password=False)
        try:
            await RawStore.open(limited, 2)
        except RuntimeError as exc:
            assert "CREATE ROUTINE" in str(exc) and "pa_admit_" in str(exc)
        else:
            raise AssertionError("opening the store without CREATE ROUTINE should fail")
        assert procedure_names(admin, schema) == set()
    finally:
        cur.execute(f"DROP USER '{user}'@'%'")
        admin.close()
        drop()
