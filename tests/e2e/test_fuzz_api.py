"""Schemathesis fuzzes our own OpenAPI document against the real server: the operator JSON API
(logged in, with the CSRF header) and the distributor API (with the key of a real offer).

What is asserted comes from schemathesis' own reports (its JSON run report and the HAR file of
every request it sent), not from its exit code alone: every selected operation was tested, no
response was a 5xx, none was a 401 or 403 (the cases reached the handlers, so "no 5xx" means
something), and no check failed (every status documented, every body matching its schema).
Bounded: a fixed example count and time."""
from __future__ import annotations

import json
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import ROOT, Browserless, create_offer
from live_server import LiveServer, prepare, server_env

ST = ROOT / "py3" / "bin" / "schemathesis"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
PASSWORD = "fuzz-Passw0rd!"


@dataclass
class Run:
    """One schemathesis run as its reports tell it."""

    report: dict  # the JSON run report
    statuses: Counter  # response status → how many responses had it (from the HAR file)
    output: str  # the console output, for the failure messages

    @property
    def generated(self) -> int:
        return self.report["test_cases"]["generated"]

    def assert_clean(self) -> None:
        ops, tail = self.report["operations"], self.output[-4000:]
        assert ops["selected"] > 0 and ops["tested"] == ops["selected"] and not ops["errored"], (ops, tail)
        assert [s for s in self.statuses if s >= 500] == [], (self.statuses, tail)
        assert self.statuses[401] == self.statuses[403] == 0, (self.statuses, tail)
        assert self.report["failures"] == [] and self.report["errors"] == [], tail
        assert sum(self.statuses.values()) >= self.generated > 0, (self.statuses, self.generated)
        assert self.report["exit_code"] == 0, tail


def run_schemathesis(url: str, headers: dict[str, str], include: str, seconds: int, reports: Path) -> Run:
    json_path, har_path = reports / "run.json", reports / "requests.har"
    args = [str(ST), "run", f"{url}/schema/openapi.json", "--checks", CHECKS, "--max-examples", "15",
            "--phases", "examples,coverage,fuzzing", "--workers", "2", "--max-time", str(seconds),
            "--include-path-regex", include, "--seed", "20261123",
            "--report", "json,har", "--report-json-path", str(json_path), "--report-har-path", str(har_path)]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 120)
    output = result.stdout + result.stderr
    assert json_path.exists() and har_path.exists(), output[-6000:]
    entries = json.loads(har_path.read_text(encoding="utf-8"))["log"]["entries"]
    return Run(json.loads(json_path.read_text(encoding="utf-8")), Counter(e["response"]["status"] for e in entries),
               output)


@pytest.mark.parametrize("kind", ["sqlite", "mariadb"])
def test_fuzz_operator_and_distributor_apis(kind, new_database, tmp_path):
    url = new_database(kind)
    env = server_env(url, url, tmp_path)
    prepare(env, {"fuzz": (PASSWORD, "pipeline.admin")})
    with LiveServer(env) as srv:
        op = Browserless(srv.url)
        assert op.login("fuzz", PASSWORD).status_code == 303
        offer = create_offer(op, "fz")
        cookies = "; ".join(f"{k}={v}" for k, v in op.http.cookies.items())
        (tmp_path / "operator").mkdir()
        operator = run_schemathesis(srv.url, {"Cookie": cookies, "X-CSRFToken": op.csrf},
                                    r"^/api/(pipeline_|system)", 30, tmp_path / "operator")
        operator.assert_clean()
        assert operator.generated > 500, operator.output[-2000:]
        # the schema itself is for operators; the calls carry the key
        (tmp_path / "distributor").mkdir()
        distributor = run_schemathesis(srv.url, {"Cookie": cookies, "Authorization": f"Bearer {offer.key}"},
                                       r"^/api/dist/", 12, tmp_path / "distributor")
        distributor.assert_clean()
        # some calls were admitted: the key and the offer worked, the cases did not all bounce
        assert distributor.statuses[201] > 0, distributor.statuses
        # the fuzzing never logged the operator out or broke the app
        assert op.http.get("/readyz").status_code == 200
        assert op.http.get("/me").status_code == 200
