"""Operations: Prometheus metrics by route, JSON access lines with the request id, rotation set up."""
from __future__ import annotations

import json


async def test_metrics_and_access_log(admin):
    r = await admin.client.get("/pipeline_core/pipelines", headers={"x-request-id": "trace-me-123"})
    assert r.headers["x-request-id"] == "trace-me-123"
    await admin.client.get("/api/pipeline_core/pipelines")
    metrics = (await admin.client.get("/metrics")).text
    assert 'pipeline_http_requests_total{method="GET",route="/pipeline_core/pipelines",status="200"}' in metrics
    assert 'pipeline_http_request_seconds_bucket{le="0.05",method="GET",route="/api/pipeline_core/pipelines"}' \
        in metrics
    logs = admin.app.state.ctx.settings.data_dir / "logs" / "access.log"
    lines = [json.loads(line) for line in logs.read_text().splitlines()]
    mine = [x for x in lines if x["request_id"] == "trace-me-123"]
    assert len(mine) == 1 and mine[0]["route"] == "/pipeline_core/pipelines" and mine[0]["status"] == 200
    assert mine[0]["user"] == "admin" and isinstance(mine[0]["ms"], float)
    assert all("cookie" not in line.lower() and "csrftoken" not in line for line in logs.read_text().splitlines())
