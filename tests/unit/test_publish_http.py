"""Publishing through the app: the JSON actions, the HTML buttons and the versions block."""
from __future__ import annotations

import re

import pytest
from publishing import T, TWO_STEPS, make_pipeline, on_own_engine, rows, steps_of
from sqlalchemy import update

API = "/api/pipeline_core/pipelines"
PAGE = "/pipeline_core/pipelines"


@pytest.fixture
async def direct(admin, db_url):
    """Our own engine on the app's database: the app's engine belongs to the test client's loop."""
    c = on_own_engine(admin.ctx, db_url)
    yield c
    await c.db.dispose()


async def test_api_publish_and_rollback(admin, direct):
    ctx = direct
    pid = await make_pipeline(ctx, TWO_STEPS)
    r = await admin.api("POST", f"{API}/{pid}/publish", json={"note": "via api"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version_no"] == 1 and body["note"] == "via api" and isinstance(body["snapshot"], dict)
    assert (await admin.api("GET", f"{API}/{pid}")).json()["published_version"] == 1
    log = await rows(ctx, "audit_log", action="publish", table_name="pipelines")
    assert log[0]["username"] == "admin"

    r = await admin.api("POST", f"{API}/{pid}/rollback", json={"version_no": 9})
    assert r.status_code == 404 and "version 9" in r.json()["error"]["message"]
    r = await admin.api("POST", f"{API}/{pid}/rollback", json={"version_no": 1})
    assert r.status_code == 200 and r.json()["version_no"] == 2 and r.json()["note"] == "rollback to 1"

    bad = await make_pipeline(ctx, [{"seq": 2, "name": "a", "config": "{"}], status="archived")
    r = await admin.api("POST", f"{API}/{bad}/publish", json={})
    assert r.status_code == 422
    err = r.json()["error"]
    assert set(err["fields"]) == {"status", "seq", "config.a"}
    assert "archived" in err["fields"]["status"] and "JSON" in err["fields"]["config.a"]
    assert err["message"].startswith("cannot publish: 3 problems")
    # Versions are never edited: their routes are read-only.
    vid = body["id"]
    for method in ("PUT", "PATCH", "DELETE"):
        assert (await admin.api(method, f"/api/pipeline_core/pipeline_versions/{vid}", json={"note": "x"})
                ).status_code in (404, 405)


async def test_html_buttons_publish_and_roll_back(admin, direct):
    ctx = direct
    pid = await make_pipeline(ctx, [{"seq": 1, "name": "<b>ocr</b>", "model": "m", "config": '{"a": "<i>"}'}])
    page = await admin.client.get(f"{PAGE}/{pid}")
    assert page.status_code == 200
    assert f'action="{PAGE}/{pid}/publish"' in page.text and "<b>ocr</b>" not in page.text

    r = await admin.form(f"{PAGE}/{pid}/publish", {"note": "first <note>"})
    assert r.status_code == 303 and r.headers["location"].startswith(f"{PAGE}/{pid}")
    st = T(ctx, "pipeline_steps")
    async with ctx.db.begin() as conn:
        await conn.execute(update(st).where(st.c.pipeline_id == pid).values(config='{"a": "<u>"}', seq=1))
    await admin.form(f"{PAGE}/{pid}/publish", {"note": "second"})

    page = (await admin.client.get(f"{PAGE}/{pid}")).text
    assert 'id="version-1"' in page and 'id="version-2"' in page
    assert "<td>admin</td>" in page  # the publisher by name, not by user id
    assert "first &lt;note&gt;" in page and "<note>" not in page
    assert "&lt;b&gt;ocr&lt;/b&gt;" in page and "&lt;u&gt;" in page and "<u>" not in page  # the diff, escaped
    # A rollback button for the older version only, posting its number.
    forms = re.findall(r'action="[^"]*/rollback".*?name="version_no" value="(\d+)"', page, re.S)
    assert forms == ["1"]

    r = await admin.form(f"{PAGE}/{pid}/rollback", {"version_no": "1"})
    assert r.status_code == 303
    page = (await admin.client.get(f"{PAGE}/{pid}")).text
    assert 'id="version-3"' in page and "rollback to 1" in page
    assert (await steps_of(ctx, pid))[0]["config"] == '{"a": "<i>"}'

    # A refused publish shows the problems on the record page.
    bad = await make_pipeline(ctx, [], status="archived")
    r = await admin.form(f"{PAGE}/{bad}/publish", {})
    assert r.status_code == 422 and "产线状态为 archived" in r.text and "产线没有步骤" in r.text
    # The toolbar's bare rollback (no version chosen) explains itself.
    r = await admin.form(f"{PAGE}/{pid}/rollback", {})
    assert r.status_code == 422 and "须为版本号" in r.text
