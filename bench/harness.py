"""What the benchmark scripts share: a scratch database and folder, and the benchmark servers.

Each run makes a fresh MariaDB database and a temp folder, sets them up with the real CLI as an
operator would (`live_server.prepare`: schema sync, path registration, an admin), runs server
processes of the benchmark app (`bench/serve.py`) on it, and at the end stops the servers and
drops the database and the folder (unless kept).
"""
from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "py3" / "bin"
sys.path.insert(0, str(ROOT / "tests"))

from live_server import free_port, prepare, server_env  # noqa: E402


@dataclass
class Scratch:
    """A run's own database (`name`, `url`) and folder (`data`: logs, the RBAC SQLite file)."""

    name: str
    url: str
    data: Path
    env: dict[str, str]  # what the CLI and the servers run with
    server: dict[str, Any]  # pymysql.connect arguments of the database server (no database)

    def connect(self) -> Any:
        """A pymysql connection (autocommit) to this run's database."""
        import pymysql

        return pymysql.connect(**self.server, database=self.name)


def _server_args(mariadb: str) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    u = make_url(mariadb)
    return dict(host=u.host or "127.0.0.1", port=u.port or 3306, user=u.username or "root",
                password=u.password or "", autocommit=True)


@contextmanager
def scratch(mariadb: str, prefix: str, admin_password: str, *, keep: bool = False) -> Iterator[Scratch]:
    """A fresh database `<prefix>_<hex>` on the server `mariadb` and a temp folder, set up with
    an `admin` user (role pipeline.admin); both dropped at exit unless `keep`."""
    import pymysql

    server = _server_args(mariadb)
    admin = pymysql.connect(**server)
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin.cursor().execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    data = Path(tempfile.mkdtemp(prefix=f"pa-{prefix}-"))
    url = f"{mariadb.rstrip('/')}/{name}"
    try:
        env = server_env(url, f"sqlite:///{data / 'rbac.db'}", data)
        prepare(env, {"admin": (admin_password, "pipeline.admin")})
        yield Scratch(name, url, data, env, server)
    finally:
        if keep:
            print(f"kept: database {name}, folder {data}")
        else:
            admin.cursor().execute(f"DROP DATABASE IF EXISTS {name}")
            shutil.rmtree(data, ignore_errors=True)
        admin.close()


def start_server(run: Scratch, workers: int = 1) -> tuple[subprocess.Popen, int]:
    """A benchmark server on a free port (log: `server-<port>.log` in the run's folder), once it
    answers /healthz."""
    port = free_port()
    log_path = run.data / f"server-{port}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(BIN / "python"), "-m", "bench.serve", "--port", str(port),
                                 "--workers", str(workers)], env=run.env, stdout=log, stderr=log, cwd=ROOT)
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    sys.exit(f"server did not start; see {log_path}")


@contextmanager
def servers(run: Scratch, count: int = 1, workers: int = 1) -> Iterator[list[tuple[subprocess.Popen, int]]]:
    """`count` benchmark servers of `workers` workers each, as (process, port); stopped at exit
    (SIGTERM: they drain, then a kill for any that does not end)."""
    started: list[tuple[subprocess.Popen, int]] = []
    try:
        for _ in range(count):
            started.append(start_server(run, workers))
        yield started
    finally:
        for proc, _ in started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in started:
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
