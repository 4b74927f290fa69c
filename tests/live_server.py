"""A real Pipeline-App server process (uvicorn) for end-to-end tests, set up with the real CLIs.

The client of such a server (`Browserless`) and the offer builder (`create_offer`) live in
helpers.py; they are importable from here too, where the end-to-end files have always found them.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from helpers import Browserless, create_offer

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "py3" / "bin"
__all__ = ["Browserless", "LiveServer", "cli", "create_offer", "free_port", "prepare", "server_env"]


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

    def __init__(self, env: dict[str, str], workers: int = 1, args: tuple[str, ...] = ()):
        self.env, self.workers, self.port, self.args = env, workers, free_port(), args
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> LiveServer:
        log = open(Path(self.env["PIPELINE_DATA"]) / f"server-{self.port}.log", "w")
        self.proc = subprocess.Popen([str(BIN / "pipeline-app"), "serve", "--port", str(self.port),
                                      "--workers", str(self.workers), *self.args], env=self.env, stdout=log, stderr=log)
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
        self.__exit__()  # a server that never answered is still a process: stop it
        raise RuntimeError(f"server did not start: {Path(log.name).read_text()[-2000:]}")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


if __name__ == "__main__":
    sys.exit("import me from tests")
