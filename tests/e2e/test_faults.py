"""Faults: the database going away under a running server, and stop.sh draining in-flight requests.

The outage (MariaDB and PostgreSQL) is made with a TCP relay between the server and the database
that the test cuts (connections reset, new ones refused) and restores: to the server that is
exactly a stopped database, without stopping the database other tests use.
"""
from __future__ import annotations

import socket
import subprocess
import threading
import time

import httpx
import pytest
from helpers import ROOT, Browserless
from live_server import LiveServer, free_port, prepare, server_env
from sqlalchemy.engine import make_url

PASSWORD = "fault-Passw0rd!"


class Relay:
    """A TCP relay 127.0.0.1:port → target that can be cut and restored."""

    def __init__(self, target: tuple[str, int]):
        self.target, self.port = target, free_port()
        self.conns: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.lock = threading.Lock()

    def up(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(64)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def down(self) -> None:
        with self.lock:
            if self.listener:
                try:
                    self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
                except OSError:
                    pass
                self.listener.close()
                self.listener = None
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
            self.conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.mark.parametrize("kind", ["mariadb", "postgresql"])
def test_database_outage_gives_503_and_recovers(kind, new_database, tmp_path):
    url = new_database(kind)
    u = make_url(url)
    relay = Relay((u.host or "127.0.0.1", u.port or {"mariadb": 3306, "postgresql": 5432}[kind]))
    relay.up()
    relayed = u.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
    env = server_env(relayed, relayed, tmp_path)
    try:
        prepare(env, {"fay": (PASSWORD, "pipeline.admin")})
        with LiveServer(env) as srv:
            op = Browserless(srv.url)
            assert op.login("fay", PASSWORD).status_code == 303
            assert op.http.get("/readyz").status_code == 200
            assert op.api("POST", "/api/pipeline_core/pipelines", json={"code": "f1", "name": "F1"}).status_code == 201

            relay.down()
            started = time.monotonic()
            ready = httpx.get(srv.url + "/readyz", timeout=10)  # as a load balancer asks: no cookie
            assert ready.status_code == 503 and ready.json()["database"].startswith("down")
            for method, path, body in (("GET", "/api/pipeline_core/pipelines", None),
                                       ("POST", "/api/pipeline_core/pipelines", {"code": "f2", "name": "F2"}),
                                       ("GET", "/pipeline_core/pipelines", None)):
                r = op.api(method, path, json=body, headers={"accept": "application/json"})
                assert r.status_code == 503, (path, r.status_code, r.text[:300])
                assert r.json()["error"]["code"] == "unavailable" and "Traceback" not in r.text
            assert time.monotonic() - started < 20, "requests hung while the database was down"
            assert op.http.get("/healthz").status_code == 200

            relay.up()
            deadline = time.monotonic() + 15
            while httpx.get(srv.url + "/readyz", timeout=10).status_code != 200:
                assert time.monotonic() < deadline, "did not recover after the database came back"
                time.sleep(0.3)
            r = op.api("POST", "/api/pipeline_core/pipelines", json={"code": "f3", "name": "F3"})
            assert r.status_code == 201, r.text
            names = {row["code"] for row in op.api("GET", "/api/pipeline_core/pipelines").json()["rows"]}
            assert names == {"f1", "f3"}
    finally:
        relay.down()


def test_stop_drains_in_flight_requests(new_database, tmp_path):
    """A slow request (an import preview of 30,000 rows, a few seconds) running when stop.sh is called
    still completes with its full answer; new connections are refused afterwards."""
    url = new_database("sqlite")
    port = free_port()
    env = server_env(url, url, tmp_path, PIPELINE_PORT=str(port))
    prepare(env, {"dan": (PASSWORD, "pipeline.admin")})
    subprocess.run([str(ROOT / "start.sh")], env=env, check=True, capture_output=True, timeout=120)
    base = f"http://127.0.0.1:{port}"
    try:
        op = Browserless(base)
        assert op.login("dan", PASSWORD).status_code == 303
        csv_body = "code,name\n" + "".join(f"d{i},Drain {i}\n" for i in range(30000))
        token = op.form_token("/pipeline_core/pipelines/import")
        result: dict = {}

        def slow_import() -> None:
            r = op.http.post("/pipeline_core/pipelines/import", data={"mode": "preview", "_csrf_token": token},
                             files={"file": ("p.csv", csv_body.encode())}, timeout=60)
            result["status"], result["text"] = r.status_code, r.text

        t = threading.Thread(target=slow_import)
        started = time.monotonic()
        t.start()
        time.sleep(0.5)
        assert t.is_alive(), "the request finished before stop.sh: make it slower"
        stop = subprocess.run([str(ROOT / "stop.sh")], env=env, capture_output=True, text=True, timeout=60)
        t.join(60)
        assert stop.returncode == 0 and "stopped" in stop.stdout, stop.stdout + stop.stderr
        assert result.get("status") == 200, result
        assert "30000" in result["text"], result["text"][:500]
        assert time.monotonic() - started > 0.5
        with pytest.raises(httpx.ConnectError):
            httpx.get(base + "/healthz", timeout=2)
    finally:
        subprocess.run([str(ROOT / "stop.sh")], env=env, capture_output=True, timeout=60)
