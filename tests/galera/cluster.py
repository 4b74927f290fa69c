"""A throw-away local 3-node MariaDB Galera cluster for tests and benchmarks.

Each node gets its own free ports (SQL, group communication, IST, rsync SST), its own data
folder and socket under one temporary folder, and runs as a child process of ours in a process
group of its own, so `stop()` ends exactly what was started (the SST scripts' rsync included) by
pid and never touches the system MariaDB. Settings are the ones that worked on a loaded 2-core
machine (docs/cluster.md), tuned for speed: a small buffer pool and gcache, no fsync.

    with GaleraCluster(log_bin=True) as cluster:
        cluster.url(1, "app")      # mysql://root@127.0.0.1:<port of node 1>/app
        cluster.kill(2); cluster.start(2)

`python tests/galera/cluster.py` starts one and waits for Ctrl-C (for poking at it by hand).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PROVIDER = Path("/usr/lib/galera/libgalera_smm.so")
BINARIES = ("mariadbd", "mariadb-install-db", "rsync")
SYNCED = "4"


def missing() -> list[str]:
    """What this machine lacks to run a cluster (empty: everything is here)."""
    gone = [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]
    return gone + ([] if PROVIDER.exists() else [str(PROVIDER)])


def _binary(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Node:
    n: int
    folder: Path
    sql: int
    gcomm: int
    ist: int
    sst: int
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def data(self) -> Path:
        return self.folder / "data"


class GaleraCluster:
    """Three Galera nodes on 127.0.0.1; `log_bin` on or off on every node, or on for the node
    numbers given (a mixed cluster: one start covers writers on both settings)."""

    def __init__(self, log_bin: bool | frozenset[int], size: int = 3, timeout: float = 120):
        self.timeout = timeout
        self.log_bin = frozenset(range(1, size + 1)) if log_bin is True else frozenset(log_bin or ())
        self.root = Path(tempfile.mkdtemp(prefix="galera-"))
        self.root.chmod(0o755)  # the rsync SST daemon of a joiner runs as nobody
        ports = _free_ports(4 * size)
        self.nodes = [Node(i + 1, self.root / f"node{i + 1}", *ports[4 * i:4 * i + 4]) for i in range(size)]
        self.name = "pt_" + os.urandom(4).hex()

    # ---- configuration ---------------------------------------------------------------------

    def _config(self, node: Node) -> Path:
        address = ",".join(f"127.0.0.1:{m.gcomm}" for m in self.nodes)
        options = (f"base_host=127.0.0.1;base_port={node.gcomm};gmcast.listen_addr=tcp://127.0.0.1:{node.gcomm};"
                   f"ist.recv_addr=127.0.0.1:{node.ist};gcache.size=32M;gcache.page_size=32M;"
                   "evs.inactive_timeout=PT3S;evs.suspect_timeout=PT2S;evs.keepalive_period=PT0.5S")
        lines = [
            "[mariadbd]", f"datadir={node.data}", f"socket={node.folder}/mysqld.sock",
            f"pid-file={node.folder}/mysqld.pid", f"port={node.sql}", "bind-address=127.0.0.1",
            f"log-error={node.folder}/error.log", "skip-name-resolve", "performance_schema=OFF",
            "innodb_buffer_pool_size=32M", "innodb_log_file_size=16M", "innodb_flush_log_at_trx_commit=0",
            "innodb_doublewrite=0", "innodb_autoinc_lock_mode=2", "default_storage_engine=InnoDB",
            "binlog_format=ROW", "sync_binlog=0", "max_connections=200",
            "wsrep_on=ON", f"wsrep_provider={PROVIDER}", f"wsrep_cluster_name={self.name}",
            f"wsrep_cluster_address=gcomm://{address}", f"wsrep_node_address=127.0.0.1:{node.gcomm}",
            f"wsrep_node_incoming_address=127.0.0.1:{node.sql}", f'wsrep_provider_options="{options}"',
            "wsrep_sst_method=rsync", f"wsrep_sst_receive_address=127.0.0.1:{node.sst}", "wsrep_slave_threads=2",
        ]
        if node.n in self.log_bin:
            lines += [f"log_bin={node.folder}/binlog/mariadb-bin", "log_slave_updates=ON", f"server_id={node.n}"]
        path = node.folder / "my.cnf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _fresh_folder(self, node: Node, joiner: bool) -> None:
        """An empty data folder; a joiner's is writable by nobody (its SST daemon's user)."""
        shutil.rmtree(node.folder, ignore_errors=True)
        node.data.mkdir(parents=True)
        node.folder.chmod(0o755)
        if node.n in self.log_bin:
            (node.folder / "binlog").mkdir()
            (node.folder / "binlog").chmod(0o777)
        if joiner:
            node.data.chmod(0o777)
            shutil.chown(node.data, "nobody", "nogroup" if _group("nogroup") else None)

    # ---- processes -------------------------------------------------------------------------

    def _spawn(self, node: Node, *extra: str) -> None:
        env = {**os.environ, "UMASK": "0666", "UMASK_DIR": "0777"}
        log = open(node.folder / "mariadbd.out", "ab")
        node.proc = subprocess.Popen([_binary("mariadbd"), f"--defaults-file={self._config(node)}", "--user=root",
                                      *extra], stdout=log, stderr=log, env=env, start_new_session=True)
        log.close()

    def start(self, n: int | None = None) -> GaleraCluster:
        """Start the whole cluster (n None), or node n again after `kill` (with a fresh folder:
        it receives the state from a donor, as a replaced machine would)."""
        if n is not None:
            self.wait_evicted()
            node = self.nodes[n - 1]
            self._fresh_folder(node, joiner=True)
            self._spawn(node)
            return self
        first, *joiners = self.nodes
        self._fresh_folder(first, joiner=False)
        subprocess.run([_binary("mariadb-install-db"), f"--defaults-file={self._config(first)}",
                        f"--datadir={first.data}", "--user=root", "--auth-root-authentication-method=normal",
                        "--skip-test-db"], check=True, capture_output=True, timeout=self.timeout)
        self._spawn(first, "--wsrep-new-cluster")
        self.wait_synced([first.n])
        for node in joiners:
            self._fresh_folder(node, joiner=True)
            self._spawn(node)
        self.wait_synced()
        return self

    def kill(self, n: int) -> None:
        """SIGKILL node n (its process group: the node and any SST helper it runs)."""
        node = self.nodes[n - 1]
        if node.proc is not None and node.proc.poll() is None:
            os.killpg(node.proc.pid, signal.SIGKILL)
            node.proc.wait(timeout=30)
        node.proc = None

    def wait_evicted(self) -> None:
        """Until the running nodes have voted the dead ones out (a node started again before
        that waits for a primary view that never comes)."""
        alive = [m.n for m in self.nodes if m.proc is not None]
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                if all(self.status(n).get("wsrep_cluster_size") == str(len(alive)) for n in alive):
                    return
            except Exception:  # noqa: BLE001, S110 - a node busy with the view change
                pass
            time.sleep(0.2)
        raise TimeoutError(f"the dead nodes were not voted out within {self.timeout} s")

    def stop(self) -> None:
        """End every process this cluster started (by pid) and remove its folders."""
        for node in self.nodes:
            self.kill(node.n)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> GaleraCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- state -----------------------------------------------------------------------------

    def connect(self, n: int, database: str | None = None):  # noqa: ANN201 - a pymysql connection
        import pymysql

        return pymysql.connect(host="127.0.0.1", port=self.nodes[n - 1].sql, user="root", password="",
                               database=database, autocommit=True, connect_timeout=3)

    def status(self, n: int) -> dict[str, str]:
        conn = self.connect(n)
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW STATUS WHERE Variable_name IN "
                            "('wsrep_ready', 'wsrep_local_state', 'wsrep_cluster_size')")
                return {k: str(v) for k, v in cur.fetchall()}
        finally:
            conn.close()

    def wait_synced(self, nodes: list[int] | None = None) -> None:
        """Until every given node (default all) is Synced, ready and sees the whole cluster."""
        nodes = nodes or [m.n for m in self.nodes]
        size = str(len(nodes)) if len(nodes) == 1 else str(len(self.nodes))
        deadline = time.monotonic() + self.timeout
        last: object = None
        while time.monotonic() < deadline:
            for n in nodes:
                proc = self.nodes[n - 1].proc
                if proc is None or proc.poll() is not None:
                    raise RuntimeError(f"galera node {n} is not running:\n{self.log_tail(n)}")
            try:
                states = [self.status(n) for n in nodes]
            except Exception as exc:  # noqa: BLE001 - not accepting connections yet
                last = exc
            else:
                last = states
                if all(s.get("wsrep_local_state") == SYNCED and s.get("wsrep_ready") == "ON"
                       and s.get("wsrep_cluster_size") == size for s in states):
                    return
            time.sleep(0.2)
        raise TimeoutError(f"galera nodes {nodes} not Synced after {self.timeout} s: {last}\n"
                           + "\n".join(self.log_tail(n) for n in nodes))

    def log_tail(self, n: int, lines: int = 15) -> str:
        path = self.nodes[n - 1].folder / "error.log"
        text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else ["(no log)"]
        return f"--- node {n} error.log ---\n" + "\n".join(text)

    def url(self, n: int | list[int], database: str, driver: str = "mysql") -> str:
        """The app's URL of node n, or of several nodes tried in order (docs/cluster.md)."""
        hosts = ",".join(f"127.0.0.1:{self.nodes[i - 1].sql}" for i in ([n] if isinstance(n, int) else n))
        return f"{driver}://root@{hosts}/{database}"


def _group(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


if __name__ == "__main__":
    import sys

    if gone := missing():
        sys.exit(f"cannot start a Galera cluster here: missing {', '.join(gone)}")
    with GaleraCluster(log_bin="--log-bin" in sys.argv) as c:
        print("Synced:", ", ".join(f"node {m.n} on port {m.sql}" for m in c.nodes), "(Ctrl-C stops)", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
