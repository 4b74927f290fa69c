"""Distributor keys: generate / rotate / revoke (JSON and page buttons), shown once, never stored
or echoed in clear or as a hash, grace periods honoured by `verify_key`, and the CLI.
"""
from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import seed
from sqlalchemy import insert, select, update

from app.core.clock import utcnow
from modules.pipeline_dist.key_format import KEY_LEN, generate_key, key_hash, well_formed
from modules.pipeline_dist.keys import verify_key

ROOT = Path(__file__).resolve().parents[2]
API = "/api/pipeline_dist/distributors"
PAGE = "/pipeline_dist/distributors"


class Db:
    """The app database seen from the test's own event loop."""

    def __init__(self, ctx):
        from app.core.db import make_engine

        self.ctx, self.engine = ctx, make_engine(ctx.settings.database)

    async def verify(self, key: str, **kw):
        async with self.engine.connect() as conn:
            return await verify_key(conn, self.ctx.settings, key, **kw)

    async def row(self, distributor_id: str) -> dict:
        t = self.ctx.catalog.tables["distributors"].table
        async with self.engine.connect() as conn:
            return dict((await conn.execute(select(t).where(t.c.id == distributor_id))).one()._mapping)

    async def set(self, distributor_id: str, **values) -> None:
        t = self.ctx.catalog.tables["distributors"].table
        async with self.engine.begin() as conn:
            await conn.execute(update(t).where(t.c.id == distributor_id).values(**values))


@pytest.fixture
async def op(admin):
    await seed(admin.ctx, distributors=[{"id": "D1", "name": "acme", "status": "active"},
                                        {"id": "D2", "name": "other", "status": "active"}])
    admin.db = Db(admin.ctx)
    yield admin
    await admin.db.engine.dispose()


async def test_generate_via_api_returns_key_once(op):
    r = await op.api("POST", f"{API}/D1/generate_key")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"api_key", "prefix"}
    key = body["api_key"]
    assert well_formed(key) and len(key) == KEY_LEN and key.startswith(body["prefix"])
    row = await op.db.row("D1")
    assert row["api_key_hash"] == key_hash(key, "test-secret") and row["api_key_prefix"] == body["prefix"]
    assert row["key_created_at"] is not None and row["key_expires_at"] is None and row["prev_key_hash"] is None
    assert (await op.db.verify(key))["id"] == "D1"
    # A second generate would silently cut the live client off: refused, pointing at rotate.
    r = await op.api("POST", f"{API}/D1/generate_key")
    assert r.status_code == 409 and "rotate" in r.json()["error"]["message"]
    assert (await op.db.verify(key))["id"] == "D1"
    r = await op.api("POST", f"{API}/D2/rotate_key")
    assert r.status_code == 409 and "generate" in r.json()["error"]["message"]
    assert (await op.api("POST", f"{API}/nope/generate_key")).status_code == 404


async def test_rotate_grace_and_revoke(op):
    old = (await op.api("POST", f"{API}/D1/generate_key")).json()["api_key"]
    r = await op.api("POST", f"{API}/D1/rotate_key")
    assert r.status_code == 200, r.text
    new = r.json()["api_key"]
    assert new != old and set(r.json()) == {"api_key", "prefix", "prev_key_expires_at"}
    row = await op.db.row("D1")
    assert row["prev_key_hash"] == key_hash(old, "test-secret")
    assert timedelta(hours=23, minutes=59) <= row["prev_key_expires_at"] - utcnow() <= timedelta(hours=24)
    now = utcnow()
    assert (await op.db.verify(old, now=now))["id"] == "D1"  # during the default 24 h grace
    assert await op.db.verify(old, now=now + timedelta(hours=24, seconds=1)) is None  # after it
    assert (await op.db.verify(new, now=now + timedelta(days=400)))["id"] == "D1"  # no expiry
    # A custom grace, then a leak: grace 0 ends the old key at once.
    r = await op.api("POST", f"{API}/D1/rotate_key", json={"grace_hours": 2})
    newer = r.json()["api_key"]
    assert await op.db.verify(old) is None  # only one previous key is ever kept
    assert (await op.db.verify(new, now=utcnow() + timedelta(hours=1)))["id"] == "D1"
    assert await op.db.verify(new, now=utcnow() + timedelta(hours=2, seconds=1)) is None
    r = await op.api("POST", f"{API}/D1/rotate_key", json={"grace_hours": 0})
    newest = r.json()["api_key"]
    assert await op.db.verify(newer) is None and (await op.db.row("D1"))["prev_key_hash"] is None
    for bad in ({"grace_hours": -1}, {"grace_hours": "soon"}, {"grace_hours": 10**6}, {"grace": 1}):
        r = await op.api("POST", f"{API}/D1/rotate_key", json=bad)
        assert r.status_code == 422, (bad, r.text)
    assert (await op.db.verify(newest))["id"] == "D1"  # refused rotations changed nothing
    # Revoke: immediate, for current and previous alike.
    r = await op.api("POST", f"{API}/D1/rotate_key")
    latest = r.json()["api_key"]
    r = await op.api("POST", f"{API}/D1/revoke_key")
    assert r.status_code == 200 and "api_key_hash" not in r.json() and r.json()["api_key_prefix"] is None
    assert await op.db.verify(latest) is None and await op.db.verify(newest) is None
    row = await op.db.row("D1")
    assert row["api_key_hash"] is None and row["prev_key_hash"] is None
    assert (await op.api("POST", f"{API}/D1/revoke_key")).status_code == 409
    assert (await op.api("POST", f"{API}/D1/generate_key")).status_code == 200  # a fresh start


async def test_verify_key_refuses(op):
    key = (await op.api("POST", f"{API}/D1/generate_key")).json()["api_key"]

    class NoQueries:
        async def execute(self, *a, **kw):
            raise AssertionError("a malformed key must not reach the database")

    typo = key[:10] + ("a" if key[10] != "a" else "b") + key[11:]
    assert not well_formed(typo)
    for bad in (typo, key[:-1], key + "x", "", "pdk_" + "0" * 38, key.replace("pdk_", "pdx_")):
        assert await verify_key(NoQueries(), op.ctx.settings, bad) is None
    assert await op.db.verify(generate_key()) is None  # well formed, unknown
    other = dataclasses.replace(op.ctx.settings, key_secret="another-secret")
    async with op.db.engine.connect() as conn:
        assert await verify_key(conn, other, key) is None  # the hash is keyed by the server secret
    await op.db.set("D1", status="suspended")
    assert await op.db.verify(key) is None
    await op.db.set("D1", status="active", key_expires_at=utcnow() - timedelta(seconds=1))
    assert await op.db.verify(key) is None


SECRET_RE = re.compile(r'<code id="secret-value">([^<]+)</code>')


async def test_html_buttons_show_key_once(op):
    r = await op.form(f"{PAGE}/D1/generate_key", {})
    assert r.status_code == 200, r.text
    key = SECRET_RE.search(r.text).group(1)
    assert well_formed(key) and (await op.db.verify(key))["id"] == "D1"
    page = await op.client.get(f"{PAGE}/D1")
    assert page.status_code == 200 and key not in page.text and "secret-value" not in page.text
    assert key[:10] in page.text  # the display prefix is what operators see
    # Generate again from the page: a clear refusal, no new key.
    r = await op.form(f"{PAGE}/D1/generate_key", {})
    assert r.status_code == 409 and "rotate" in r.text and not SECRET_RE.search(r.text)
    r = await op.form(f"{PAGE}/D1/rotate_key", {})
    new = SECRET_RE.search(r.text).group(1)
    assert new != key and (await op.db.verify(key))["id"] == "D1" and (await op.db.verify(new))["id"] == "D1"
    page = await op.client.get(f"{PAGE}/D1")
    assert new not in page.text and key not in page.text
    r = await op.form(f"{PAGE}/D1/revoke_key", {})
    assert r.status_code == 303
    assert await op.db.verify(new) is None and await op.db.verify(key) is None
    # The buttons are on the record page, with both languages' labels available.
    page = (await op.client.get(f"{PAGE}/D1")).text
    for name in ("generate_key", "rotate_key", "revoke_key"):
        assert f"{PAGE}/D1/{name}" in page


async def test_key_and_hash_never_leave_the_server(op):
    first = (await op.api("POST", f"{API}/D1/generate_key")).json()["api_key"]
    r = await op.form(f"{PAGE}/D1/rotate_key", {})
    second = SECRET_RE.search(r.text).group(1)
    row = await op.db.row("D1")
    secrets = {first, second, row["api_key_hash"], row["prev_key_hash"], key_hash(first, "test-secret"),
               key_hash(second, "test-secret")}
    assert None not in secrets and len(secrets) == 4

    async def audits() -> list[dict]:
        r = await op.api("GET", "/api/system/audit_log", params={"rows": "100"})
        return sorted((a for a in r.json()["rows"] if a["table_name"] == "distributors"), key=lambda a: a["id"])

    async def check(paths: list[str]) -> None:
        for path in paths:
            r = await op.client.get(path)
            assert r.status_code == 200, (path, r.status_code)
            for s in secrets:
                assert s not in r.text, (path, s[:8])
            assert "api_key_hash" not in r.text and "prev_key_hash" not in r.text, path

    rows = await audits()
    assert [a["action"] for a in rows] == ["generate_key", "rotate_key"]
    assert all(a["after_json"] and "api_key_prefix" in a["after_json"] for a in rows)
    await check([f"{PAGE}", f"{PAGE}/D1", f"{PAGE}/D1/edit", f"{API}", f"{API}/D1", "/api/system/audit_log",
                 "/system/audit_log"] + [f"/api/system/audit_log/{a['id']}" for a in rows]
                + [f"/system/audit_log/{a['id']}" for a in rows])
    # Revoke's audit row has both hashes in its "before": dropped as well.
    assert (await op.api("POST", f"{API}/D1/revoke_key")).status_code == 200
    rows = await audits()
    assert [a["action"] for a in rows] == ["generate_key", "rotate_key", "revoke_key"]
    await check(["/api/system/audit_log", f"/api/system/audit_log/{rows[-1]['id']}",
                 f"/system/audit_log/{rows[-1]['id']}"])
    # The edit form cannot write a key either (read-only fields are not form fields).
    r = await op.api("PATCH", f"{API}/D1", json={"api_key_hash": "0" * 64})
    assert r.status_code == 422


async def test_distributor_page_shows_own_prices(op):
    from decimal import Decimal

    await seed(op.ctx, pipelines=[{"id": "P1", "code": "p1", "name": "Alpha", "status": "active"},
                                  {"id": "P2", "code": "p2", "name": "Beta", "status": "active"},
                                  {"id": "P3", "code": "p3", "name": "Gamma", "status": "active"}],
               pipeline_pricing=[{"id": f"R{p}", "pipeline_id": p, "price_mode": "unit", "unit_price": Decimal("0.5"),
                                  "billing_unit": "call", "currency": "CNY", "status": "active",
                                  "effective_from": utcnow() - timedelta(days=1)} for p in ("P1", "P2", "P3")],
               distributor_pipeline=[
                   {"id": "L1", "distributor_id": "D1", "pipeline_id": "P1", "enabled": "1", "price_mode": "unit",
                    "unit_price": Decimal("0.25")},
                   {"id": "L2", "distributor_id": "D1", "pipeline_id": "P2", "enabled": "1"},
                   {"id": "L3", "distributor_id": "D1", "pipeline_id": "P3", "enabled": "0"}])
    await op.client.get("/lang/en")
    page = (await op.client.get(f"{PAGE}/D1")).text
    start = page.index("dist-prices")
    section = page[start:page.index("</section>", start)]
    assert "Alpha" in section and "0.25 CNY / Call" in section and "Own price" in section
    assert "Beta" in section and "0.50 CNY / Call" in section and "List price" in section
    assert "Gamma" not in section


# ---- CLI ---------------------------------------------------------------------------------------

async def test_cli_genkey(db_url, tmp_path):
    from app.core.catalog import load_catalog
    from app.core.config import load_settings
    from app.core.db import make_engine

    catalog = load_catalog(ROOT / "build")
    engine = make_engine(db_url)
    async with engine.begin() as conn:
        await conn.run_sync(catalog.metadata.create_all)
        await conn.execute(insert(catalog.tables["distributors"].table).values(id="D1", name="Acme 1", status="active"))
    env = {**os.environ, "PIPELINE_DB": db_url, "SAGE_RBAC_DB": db_url, "PIPELINE_KEY_SECRET": "cli-secret",
           "PIPELINE_DATA": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(ROOT / "py3" / "bin" / "pipeline-app"), "dist", "genkey", *args], env=env,
                              cwd=ROOT, capture_output=True, text=True, timeout=120)

    settings = dataclasses.replace(load_settings(), key_secret="cli-secret")
    done = run("--distributor", "Acme 1")
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert well_formed(key) and "shown only now" in done.stderr and key not in done.stderr
    async with engine.connect() as conn:
        assert (await verify_key(conn, settings, key))["id"] == "D1"
    again = run("--distributor", "Acme 1")
    assert again.returncode == 1 and "already has a key" in again.stderr and "--rotate" in again.stderr
    assert again.stdout == ""
    unknown = run("--distributor", "Nobody")
    assert unknown.returncode == 1 and "no distributor named 'Nobody'" in unknown.stderr
    rotated = run("--distributor", "Acme 1", "--rotate", "--grace-hours", "1")
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.strip()
    async with engine.connect() as conn:
        assert (await verify_key(conn, settings, new))["id"] == "D1"
        assert (await verify_key(conn, settings, key))["id"] == "D1"  # in its 1 h grace
        assert await verify_key(conn, settings, key, now=utcnow() + timedelta(hours=1, seconds=1)) is None
        t = catalog.tables["audit_log"].table
        actions = (await conn.execute(select(t.c.action, t.c.username).order_by(t.c.id))).all()
    assert [a for a, _ in actions] == ["generate_key", "rotate_key"] and actions[0][1].startswith("cli:")
    await engine.dispose()
