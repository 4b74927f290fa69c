"""Schemathesis fuzzes our own OpenAPI document against the real server: the operator JSON API
(logged in, with the CSRF header) and the distributor API (with a real key). No 5xx, every
status documented, every body matching its schema. Bounded: a fixed example count and time."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from conftest import make_database
from helpers import Browserless
from live_server import LiveServer, prepare, server_env

ROOT = Path(__file__).resolve().parent.parent
ST = ROOT / "py3" / "bin" / "schemathesis"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
PASSWORD = "fuzz-Passw0rd!"


def run_schemathesis(url: str, headers: dict[str, str], include: str, seconds: int) -> str:
    args = [str(ST), "run", f"{url}/schema/openapi.json", "--checks", CHECKS, "--max-examples", "15",
            "--phases", "examples,coverage,fuzzing", "--workers", "2", "--max-time", str(seconds),
            "--include-path-regex", include, "--seed", "20261123"]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 120)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    return out


@pytest.mark.parametrize("kind", ["sqlite", "mariadb"])
def test_fuzz_operator_and_distributor_apis(kind, tmp_path):
    url, drop = make_database(kind, tmp_path)
    env = server_env(url, url, tmp_path)
    prepare(env, {"fuzz": (PASSWORD, "pipeline.admin")})
    try:
        with LiveServer(env) as srv:
            op = Browserless(srv.url)
            assert op.login("fuzz", PASSWORD).status_code == 303
            p = op.api("POST", "/api/pipeline_core/pipelines", json={"code": "fz", "name": "Fuzz", "status": "active"})
            d = op.api("POST", "/api/pipeline_dist/distributors", json={"name": "Fuzzer"}).json()
            key = op.api("POST", f"/api/pipeline_dist/distributors/{d['id']}/generate_key", json={}).json()["api_key"]
            assert p.status_code == 201
            cookies = "; ".join(f"{k}={v}" for k, v in op.http.cookies.items())
            out = run_schemathesis(srv.url, {"Cookie": cookies, "X-CSRFToken": op.csrf},
                                   r"^/api/(pipeline_|system)", 30)
            cases = int(re.search(r"(\d+) generated", out).group(1))
            assert cases > 500, out[-2000:]
            # the schema itself is for operators; the calls carry the key
            out = run_schemathesis(srv.url, {"Cookie": cookies, "Authorization": f"Bearer {key}"},
                                   r"^/api/dist/", 12)
            print(out[-1500:])
            # the fuzzing never logged the operator out or broke the app
            assert op.http.get("/readyz").status_code == 200
    finally:
        drop()
