"""`/metrics` of a served process counts its requests with the status the client got, with one
worker as with several (one worker's /metrics was once empty: see app.ops.observability.registry)."""
from __future__ import annotations

import httpx
import pytest
from live_server import LiveServer, prepare, server_env


@pytest.mark.parametrize("workers", [1, 2])
def test_served_metrics_count_real_statuses(tmp_path, workers):
    env = server_env(f"sqlite:///{tmp_path / 'app.db'}", f"sqlite:///{tmp_path / 'rbac.db'}", tmp_path,
                     PIPELINE_METRICS_TOKEN="scrape-me")
    prepare(env, {})
    with LiveServer(env, workers=workers) as server:
        for _ in range(3):
            assert httpx.post(server.url + "/api/dist/v1/pipelines/x/calls", json={}).status_code == 401
        r = httpx.get(server.url + "/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert r.status_code == 200
    line = 'pipeline_http_requests_total{method="POST",route="/api/dist/v1/pipelines/{code}/calls",status="401"} 3.0'
    assert line in r.text.splitlines(), [x for x in r.text.splitlines() if x.startswith("pipeline_http")]
