"""A real Pipeline-App server process (uvicorn) for end-to-end tests, set up with the real CLIs."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "py3" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([str(BIN / "pipeline-app"), *args], env=env, input=stdin, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, f"pipeline-app {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def server_env(app_url: str, rbac_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    env.update(PIPELINE_DB=app_url, SAGE_RBAC_DB=rbac_url, PIPELINE_DATA=str(data_dir),
               PIPELINE_KEY_SECRET="e2e-secret", **extra)
    return env


def prepare(env: dict[str, str], users: dict[str, tuple[str, str]]) -> None:
    """Schema sync, path registration and users — exactly what an operator would run."""
    cli(env, "db", "sync", "--url", env["PIPELINE_DB"])
    cli(env, "rbac", "bootstrap")
    for username, (password, role) in users.items():
        cli(env, "rbac", "adduser", username, "--password-stdin", "--role", role, stdin=password + "\n")


class LiveServer:
    """`pipeline-app serve` on a free port; stops with SIGTERM (graceful) at exit."""

    def __init__(self, env: dict[str, str], workers: int = 1):
        self.env, self.workers, self.port = env, workers, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> LiveServer:
        log = open(Path(self.env["PIPELINE_DATA"]) / f"server-{self.port}.log", "w")
        self.proc = subprocess.Popen([str(BIN / "pipeline-app"), "serve", "--port", str(self.port),
                                      "--workers", str(self.workers)], env=self.env, stdout=log, stderr=log)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {Path(log.name).read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Browserless:
    """An httpx client that logs in through the login form and carries CSRF like a browser."""

    def __init__(self, base_url: str):
        self.http = httpx.Client(base_url=base_url, timeout=30, follow_redirects=False)

    @property
    def csrf(self) -> str:
        return self.http.cookies.get("csrftoken") or ""

    def login(self, username: str, password: str) -> httpx.Response:
        page = self.http.get("/login")
        token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
        return self.http.post("/login", data={"username": username, "password": password,
                                             "_csrf_token": token.group(1) if token else self.csrf})

    def form_token(self, path: str) -> str:
        page = self.http.get(path)
        assert page.status_code == 200, (path, page.status_code, page.text[:500])
        return re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)

    def submit(self, path: str, data: dict) -> httpx.Response:
        return self.http.post(path, data={**data, "_csrf_token": self.form_token(path)})

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if method.upper() not in ("GET", "HEAD"):
            headers["x-csrftoken"] = self.csrf
        return self.http.request(method, path, headers=headers, **kwargs)


if __name__ == "__main__":
    sys.exit("import me from tests")


def create_offer(op: Browserless, code: str, *, unit_price: str = "0.5", capacity: dict | None = None,
                 distributor: dict | None = None, link: dict | None = None) -> tuple[str, str, str]:
    """What an operator does before a distributor can call: a published, priced pipeline (with an
    optional capacity row), a distributor, the link, a key — all through the operator API.
    Returns (key, pipeline id, distributor id)."""

    def make(path: str, body: dict) -> dict:
        r = op.api("POST", path, json=body)
        assert r.status_code in (200, 201), (path, r.status_code, r.text)
        return r.json()

    p = make("/api/pipeline_core/pipelines", {"code": code, "name": code.title(), "status": "active"})
    make("/api/pipeline_core/pipeline_steps",
         {"pipeline_id": p["id"], "seq": 1, "name": "s1", "step_type": "transform"})
    make("/api/pipeline_ops/pipeline_pricing", {"pipeline_id": p["id"], "billing_unit": "call", "price_mode": "unit",
                                                "unit_price": unit_price, "effective_from": "2020-01-01 00:00:00"})
    make(f"/api/pipeline_core/pipelines/{p['id']}/publish", {})
    if capacity is not None:
        make("/api/pipeline_ops/pipeline_capacity", {"pipeline_id": p["id"], "status": "active", **capacity})
    d = make("/api/pipeline_dist/distributors", {"name": f"{code}-dist", "status": "active", **(distributor or {})})
    make("/api/pipeline_dist/distributor_pipeline",
         {"distributor_id": d["id"], "pipeline_id": p["id"], "enabled": "1", **(link or {})})
    key = make(f"/api/pipeline_dist/distributors/{d['id']}/generate_key", {})["api_key"]
    return key, p["id"], d["id"]
