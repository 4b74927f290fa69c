"""End to end: a real server (1 and 2 workers, SQLite and MariaDB; 1 worker on PostgreSQL), a user
logging in through the login form, then create / list / search / sort / edit / delete rows of
every table through the HTML forms and through the JSON API. Values come from the specs, so a
new table is covered too."""
from __future__ import annotations

import json
import re

import pytest
from helpers import ROOT, Browserless, saved_id
from live_server import LiveServer, prepare, server_env

MANIFEST = json.loads((ROOT / "build" / "manifest.json").read_text())
PASSWORD = "e2e-Passw0rd!"
PATTERN_CANDIDATES = ["CNY", "e2e{n}", "13800{n:06d}", "x{n}"]


def writable_tables() -> list[str]:
    """Tables with forms, parents before children (by their lookup codes)."""
    tables = {n: t for n, t in MANIFEST["tables"].items() if not t["view"]["noedit"] and not t["view"]["internal"]}
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order or name not in tables:
            return
        for code in tables[name]["spec"].get("codes", []):
            if code["table"] != name:
                visit(code["table"])
        order.append(name)

    for name in sorted(tables):
        visit(name)
    return order


def sample(table: str, n: int, created: dict[str, str]) -> dict[str, str]:
    """A valid form submission for `table` built from its spec alone."""
    t = MANIFEST["tables"][table]
    codes = {c["field"]: c["table"] for c in t["spec"].get("codes", [])}
    fields = {f["name"]: f for f in t["spec"]["fields"]}
    out: dict[str, str] = {}
    hour = 0
    for name in t["view"]["form_fields"]:
        f = fields[name]
        if name in codes:
            if codes[name] in created:
                out[name] = created[codes[name]]
            continue
        if f.get("choices"):
            out[name] = f["choices"][0]["value"]
        elif f.get("pattern"):
            for cand in PATTERN_CANDIDATES:
                value = cand.format(n=n)
                if re.fullmatch(f["pattern"], value) and len(value) <= f.get("length", 99):
                    out[name] = value
                    break
        elif f.get("format") == "email":
            out[name] = f"e2e{n}@example.com"
        elif f.get("format") == "json" or f.get("widget") == "json":
            out[name] = '{"k": 1}'
        elif f["type"] in ("short", "int", "long", "llong", "longlong"):
            out[name] = "10"
        elif f["type"] == "decimal":
            out[name] = "1.250000"
        elif f["type"] in ("datetime", "timestamp"):
            out[name] = f"2026-01-01T{hour:02d}:00:00"
            hour += 1
        elif f["type"] == "date":
            out[name] = "2026-01-01"
        elif f["type"] in ("str", "char", "text"):
            out[name] = f"e2e {table} {n}"[: f.get("length") or 64]
    return out


def api_create(op: Browserless, table: str, n: int, made: dict[str, str] | None = None) -> str:
    """Create a row of `table` through the JSON API, with fresh parent rows made the same way
    (shared within one call, so a step and a price belong to the same new pipeline)."""
    made = {} if made is None else made
    t = MANIFEST["tables"][table]
    for c in t["spec"].get("codes", []):
        target = MANIFEST["tables"].get(c["table"])
        if c["table"] != table and c["table"] not in made and target and not target["view"]["noedit"]:
            made[c["table"]] = api_create(op, c["table"], n + 1000, made)
    r = op.api("POST", f"/api/{t['module']}/{table}", json=sample(table, n, made))
    assert r.status_code == 201, (table, r.text)
    return r.json()["id"]


@pytest.fixture(params=[("sqlite", 1), ("mariadb", 1), ("postgresql", 1), ("sqlite", 2), ("mariadb", 2)],
                ids=["sqlite-1w", "mariadb-1w", "postgresql-1w", "sqlite-2w", "mariadb-2w"])
def server(request, new_database, tmp_path):
    kind, workers = request.param
    env = server_env(new_database(kind), new_database(kind), tmp_path)
    prepare(env, {"alice": (PASSWORD, "pipeline.admin")})
    with LiveServer(env, workers=workers) as srv:
        yield srv


def test_every_table_through_forms_and_api(server):
    op = Browserless(server.url)
    r = op.login("alice", PASSWORD)
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert "alice" in op.http.get("/").text

    created: dict[str, str] = {}
    for n, table in enumerate(writable_tables()):
        t = MANIFEST["tables"][table]
        base, api = f"/{t['module']}/{table}", f"/api/{t['module']}/{table}"
        data = sample(table, n, created)

        # create through the HTML form
        r = op.submit(f"{base}/new", data)
        assert r.status_code == 303, (table, r.status_code, r.text[:2000])
        row_id = saved_id(r.headers["location"])
        created[table] = row_id
        page = op.http.get(f"{base}/{row_id}")
        assert page.status_code == 200

        # list, search, sort
        listing = op.http.get(base)
        assert listing.status_code == 200 and row_id in listing.text
        patterned = {f["name"] for f in t["spec"]["fields"] if f.get("pattern") or f.get("format")}
        text_field = next((s for s in t["view"]["search_fields"] if s in data and s not in patterned), None)
        if text_field:
            hit = op.http.get(base, params={"q": data[text_field]})
            assert row_id in hit.text
            miss = op.http.get(base, params={"q": "no-such-value-zz"})
            assert row_id not in miss.text
        for col in t["view"]["list_fields"]:
            want = 200 if col in t["view"]["sortable"] else 400  # sortable: the columns an index orders
            for direction in ("", "-"):
                assert op.http.get(base, params={"sort": direction + col}).status_code == want, (table, col)

        # edit through the form: change a text field (or re-save) and see it stored
        edit = dict(data)
        if text_field:
            edit[text_field] = data[text_field] + " edited"
        r = op.submit(f"{base}/{row_id}/edit", edit)
        assert r.status_code == 303, (table, r.text[:2000])
        got = op.api("GET", f"{api}/{row_id}").json()
        if text_field:
            assert got[text_field] == edit[text_field]

        # the same through the JSON API: create (with fresh parents), list, get, patch, delete
        api_id = api_create(op, table, n + 100)
        listed = op.api("GET", api, params={"rows": 500}).json()
        assert listed["total"] >= 2 and api_id in {row["id"] for row in listed["rows"]}
        if text_field:
            r = op.api("PATCH", f"{api}/{api_id}", json={text_field: "patched"})
            assert r.status_code == 200 and r.json()[text_field] == "patched"
        assert op.api("DELETE", f"{api}/{api_id}").status_code == 204
        assert op.api("GET", f"{api}/{api_id}").status_code == 404

    # read-only tables still list and show records
    for table, t in MANIFEST["tables"].items():
        if t["view"]["noedit"] and not t["view"]["internal"]:
            assert op.http.get(f"/{t['module']}/{table}").status_code == 200

    # delete through the HTML confirmation, children first
    for table in reversed(list(created)):
        t = MANIFEST["tables"][table]
        base = f"/{t['module']}/{table}"
        confirm = op.http.get(f"{base}/{created[table]}/delete")
        assert confirm.status_code == 200
        r = op.submit(f"{base}/{created[table]}/delete", {})
        assert r.status_code == 303, (table, r.text[:1000])
        assert op.http.get(f"{base}/{created[table]}").status_code == 404


@pytest.mark.parametrize("kind", ["sqlite", "mariadb", "postgresql"])
def test_session_is_shared_between_server_processes(kind, new_database, tmp_path):
    """Log in on one server process, be recognised on another (as behind a load balancer)."""
    app_url = new_database(kind)
    env = server_env(app_url, app_url, tmp_path)
    prepare(env, {"bob": (PASSWORD, "pipeline.admin")})
    with LiveServer(env) as one, LiveServer(env) as two:
        op = Browserless(one.url)
        assert op.login("bob", PASSWORD).status_code == 303
        other = Browserless(two.url)
        other.http.cookies = op.http.cookies
        me = other.http.get("/me")
        assert me.status_code == 200 and me.json()["username"] == "bob"
        assert other.http.get("/pipeline_core/pipelines").status_code == 200
        # logout on the second ends the session on the first too
        r = other.api("POST", "/logout", data={"_csrf_token": other.csrf})
        assert r.status_code in (302, 303)
        assert op.http.get("/me").status_code == 401  # /me answers JSON: a 401, never a login redirect
