"""Real redis-server processes for the tests, on random loopback ports.

A pytest plugin (loaded from tests/conftest.py): a standalone server and a cluster of three
primaries with one replica each are started once per test session (per xdist worker) and
killed at its end; tests that break a server (kill it, fill it, lock it) start their own with
:func:`start_server`. Every test gets a store of its own through a fresh ``?store=`` name.

Without ``redis-server``/``redis-cli`` on PATH the redis tests are skipped on a developer's
machine; with ``CI=true`` they fail loudly instead (CI must never skip them).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator

import pytest

START_TIMEOUT_S = 20.0


def require_binaries() -> None:
    """Skip (developer machine) or fail (CI) when the redis binaries are missing."""
    missing = [b for b in ("redis-server", "redis-cli") if shutil.which(b) is None]
    if not missing:
        return
    message = f"{', '.join(missing)} not found (Debian: apt-get install redis-server redis-tools)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"redis tests cannot run in CI: {message}", pytrace=False)
    pytest.skip(message)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(bus: bool = False) -> int:
    """A loopback port that is free now (and, with ``bus``, port+10000 too, for the cluster
    bus)."""
    import random

    for _ in range(200):
        port = random.randint(20000, 29999) if bus else random.randint(30000, 59999)
        if _port_free(port) and (not bus or _port_free(port + 10000)):
            return port
    raise RuntimeError("no free loopback port found")


class Server:
    """One redis-server process in its own directory."""

    def __init__(self, port: int, workdir: str, args: list[str], proc: subprocess.Popen) -> None:
        self.port = port
        self.workdir = workdir
        self.args = args
        self.proc = proc

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cli(self, *args: str, password: str | None = None) -> str:
        """Run ``redis-cli`` against this server and return its output."""
        cmd = ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port)]
        if password is not None:
            cmd += ["--no-auth-warning", "-a", password]
        done = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=30)
        return done.stdout.strip()

    def client(self, **kwargs):  # type: ignore[no-untyped-def]
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL) and reap it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def signal(self, sig: int) -> None:
        """Send ``sig`` (SIGSTOP, SIGCONT…) without waiting."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_server(*extra: str, cluster: bool = False) -> Server:
    """Start a redis-server on a free loopback port; return once it answers PING."""
    require_binaries()
    for _ in range(5):
        port = free_port(bus=cluster)
        workdir = tempfile.mkdtemp(prefix=f"pdb-redis-{port}-")
        args = [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            workdir,
            # RDB configured (so doctor has no persistence warning) but far too rarely to
            # cost the tests any disk writes; tests about persistence pass their own.
            "--save",
            "3600 1",
            "--appendonly",
            "no",
            "--logfile",
            os.path.join(workdir, "log"),
            "--repl-diskless-sync-delay",
            "0",
            *(
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "3000",
                ]
                if cluster
                else []
            ),
            *extra,
        ]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server = Server(port, workdir, args, proc)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            answer = server.cli("PING")
            if answer == "PONG" or "NOAUTH" in answer:  # up (and maybe password-protected)
                return server
            time.sleep(0.02)
        server.stop()
    raise RuntimeError("redis-server did not start")


class Cluster:
    """Three primaries with one replica each, created with ``redis-cli --cluster create``."""

    def __init__(self, servers: list[Server]) -> None:
        self.servers = servers

    @property
    def seed(self) -> str:
        """Two startup nodes, as a ``redis+cluster://`` URL lists them."""
        return f"{self.servers[0].address},{self.servers[1].address}"

    def url(self, store: str) -> str:
        return f"redis+cluster://{self.seed}?store={store}"

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Wait until every live node reports cluster_state:ok and all slots are served."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [s for s in self.servers if s.proc.poll() is None]
            states = [s.cli("CLUSTER", "INFO") for s in live]
            if all("cluster_state:ok" in st for st in states) and all(
                "cluster_slots_ok:16384" in st for st in states
            ):
                return
            time.sleep(0.1)
        raise RuntimeError("cluster did not become healthy")

    def primary_of(self, key: str) -> Server:
        """The live server that is primary for ``key``'s slot."""
        slot = int(self.servers[0].cli("CLUSTER", "KEYSLOT", key) or -1)
        for server in self.servers:
            if server.proc.poll() is not None:
                continue
            for line in server.cli("CLUSTER", "NODES").splitlines():
                fields = line.split()
                if "myself" in fields[2] and "master" in fields[2]:
                    for part in fields[8:]:
                        low, _, high = part.partition("-")
                        if low.isdigit() and int(low) <= slot <= int(high or low):
                            return server
        raise RuntimeError(f"no primary serves slot {slot}")

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def start_cluster(*extra: str) -> Cluster:
    """Start six nodes and join them as three primaries with one replica each."""
    servers = [start_server(*extra, cluster=True) for _ in range(6)]
    cluster = Cluster(servers)
    try:
        done = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(s.address for s in servers),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"cluster create failed: {done.stdout[-2000:]}{done.stderr}")
        cluster.wait_ok()
        # Replicas attach asynchronously; wait until each primary has one that is online
        # (past its initial sync: before that, WAIT counts it as not acknowledging).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            roles = [s.cli("INFO", "replication") for s in servers]
            if sum("connected_slaves:1" in r and "state=online" in r for r in roles) == 3:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("cluster replicas did not come online")
    except BaseException:
        cluster.stop()
        raise
    return cluster


class CuttingProxy:
    """A loopback TCP proxy in front of a server that can cut the network on demand: refuse
    everything (``down``), or forward the next request and then drop the connection before
    the reply reaches the client (``drop_next_reply``) — the reply of a command that ran."""

    def __init__(self, target_port: int) -> None:
        import threading

        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.down = False
        self.drop_next_reply = False
        self.dropped = 0
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cut(self) -> None:
        """Drop every open connection now."""
        with self._lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._open.clear()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            server = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._open += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, replies: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if replies and self.drop_next_reply:
                    self.drop_next_reply = False
                    self.dropped += 1
                    break
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()
        self.cut()


def fresh_store() -> str:
    """A store name no other test uses (the cursor-name rule: a letter, then up to 31)."""
    return "t" + uuid.uuid4().hex[:20]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Server]:
    """The session's standalone server."""
    server = start_server()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Cluster]:
    """The session's cluster: three primaries, three replicas."""
    cluster = start_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_url(redis_server: Server) -> str:
    """The URL of a fresh store on the standalone server."""
    return f"redis://{redis_server.address}/0?store={fresh_store()}"


@pytest.fixture
def cluster_url(redis_cluster: Cluster) -> str:
    """The URL of a fresh store on the cluster."""
    return redis_cluster.url(fresh_store())
