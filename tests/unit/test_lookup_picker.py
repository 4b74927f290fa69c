"""What a picker's lookup route answers: ranked matches over code, name and id, paged, each option
naming what it belongs to, and only to a user who may read the table it reads from."""
from __future__ import annotations

from helpers import seed
from rbac_world import world, world_settings  # noqa: F401 - the fixtures

STEPS = "/api/pipeline_core/pipeline_steps/_lookup/pipeline_id"


def _pipelines(n: int) -> list[dict]:
    rows = [{"id": f"p{i:04d}", "code": f"flow-{i}", "name": f"Flow number {i}", "status": "active"}
            for i in range(n)]
    rows.append({"id": "pzz", "code": "zeta", "name": "Contains flow-1 late", "status": "active"})
    return rows


async def test_ranked_by_code_then_prefix_then_contains(world):  # noqa: F811
    await seed(world.app.state.ctx, pipelines=_pipelines(60))
    op = await world.as_user("admin", "admin-Passw0rd-1")
    r = await op.api("GET", STEPS, params={"q": "flow-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    values = [o["value"] for o in body["options"]]
    assert values[0] == "p0001"  # the exact code first
    assert values[1:11] == sorted(values[1:11])  # then codes that start with it, in order
    assert {"p0010", "p0019"} <= set(values)
    assert len(values) == 11 and body["more"] is True  # what merely contains it waits for "more"
    rest = (await op.api("GET", STEPS, params={"q": "flow-1", "offset": 11})).json()
    assert [o["value"] for o in rest["options"]] == ["pzz"] and rest["more"] is False

    seen: list[str] = []
    for offset in (0, 20, 40, 60):  # "more results", page by page
        page = (await op.api("GET", STEPS, params={"q": "flow-", "offset": offset})).json()
        seen += [o["value"] for o in page["options"]]
        assert page["more"] is (offset < 60)
    assert len(seen) == len(set(seen)) == 61 and seen[-1] == "pzz"

    by_id = (await op.api("GET", STEPS, params={"q": "p0042"})).json()["options"]
    assert [o["value"] for o in by_id] == ["p0042"]
    by_name = (await op.api("GET", STEPS, params={"q": "number 5"})).json()["options"]
    assert by_name[0]["value"] == "p0005"
    assert (await op.api("GET", STEPS, params={"q": "zz", "limit": 0})).status_code == 400
    assert (await op.api("GET", STEPS, params={"offset": "x"})).status_code == 400


async def test_a_step_names_its_pipeline(world):  # noqa: F811
    await seed(world.app.state.ctx, pipelines=_pipelines(2), pipeline_steps=[
        {"id": "s1", "pipeline_id": "p0000", "seq": 1, "name": "ocr", "step_type": "model"},
        {"id": "s2", "pipeline_id": "p0001", "seq": 1, "name": "ocr", "step_type": "model"}])
    op = await world.as_user("admin", "admin-Passw0rd-1")
    body = (await op.api("GET", "/api/pipeline_ops/pipeline_pricing/_lookup/step_id", params={"q": "ocr"})).json()
    assert {o["owner"] for o in body["options"]} == {"flow-0 · Flow number 0", "flow-1 · Flow number 1"}
    assert body["owner_title"] == "产线"


async def test_only_readers_of_the_looked_up_table(world):  # noqa: F811
    await seed(world.app.state.ctx, pipelines=_pipelines(1),
               distributors=[{"id": "d1", "name": "Secret Reseller", "status": "active"}])
    await world.grant("test.opsapi", "/api/pipeline_ops/**")
    await world.user("ana", "ana-Passw0rd-1", "test.opsapi")
    op = await world.as_user("ana", "ana-Passw0rd-1")
    assert (await op.api("GET", "/api/pipeline_dist/distributors")).status_code == 403
    r = await op.api("GET", "/api/pipeline_ops/pipeline_usage_log/_lookup/distributor_id", params={"q": ""})
    assert r.status_code == 403 and "Secret Reseller" not in r.text

    await world.grant("test.opsapi", "/api/pipeline_dist/distributors")
    r = await op.api("GET", "/api/pipeline_ops/pipeline_usage_log/_lookup/distributor_id", params={"q": "secret"})
    assert r.status_code == 200 and r.json()["options"][0]["text"] == "Secret Reseller"


async def test_without_javascript_the_picker_is_an_id_input(world):  # noqa: F811
    await seed(world.app.state.ctx, pipelines=_pipelines(3))
    op = await world.as_user("admin", "admin-Passw0rd-1")
    form = (await op.client.get("/pipeline_core/pipeline_steps/new", params={"pipeline_id": "p0001"})).text
    assert 'type="text" id="f-pipeline_id" name="pipeline_id" class="picker"' in form
    assert 'value="p0001"' in form and '<p class="picker-current">Flow number 1 (flow-1)</p>' in form
    listing = (await op.client.get("/pipeline_core/pipeline_steps", params={"pipeline_id": "p0002"})).text
    assert 'id="flt-pipeline_id" name="pipeline_id" class="picker"' in listing and 'value="p0002"' in listing
    assert 'data-picker-label="Flow number 2 (flow-2)"' in listing
