"""The CLI on redis stores, through ``python -m prontodb`` in subprocesses with isolated HOMEs
(two HOMEs stand for two machines sharing one server)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest

from tests._redis import fresh_store, start_server


def _home(root) -> dict[str, str]:
    root.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRONTO_")}
    env.update(
        HOME=str(root),
        XDG_DATA_HOME=str(root / "data"),
        XDG_CONFIG_HOME=str(root / "config"),
        XDG_CACHE_HOME=str(root / "cache"),
    )
    return env


class Machine:
    """``prontodb`` run as a separate process under one HOME."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str, input: bytes | None = None, env=None):  # noqa: A002
        done = subprocess.run(
            [sys.executable, "-m", "prontodb", *args],
            env={**self.env, **(env or {})},
            input=input if input is not None else b"",
            capture_output=True,
            timeout=60,
        )
        return done.returncode, done.stdout.decode(), done.stderr.decode()


@pytest.fixture
def machines(tmp_path):
    return Machine(_home(tmp_path / "a")), Machine(_home(tmp_path / "b"))


def test_team_store_shared_by_two_homes_on_the_cluster(machines, redis_cluster):
    a, b = machines
    url = redis_cluster.url(fresh_store())
    for m in (a, b):
        assert m("cursor", "set", "team", url)[0] == 0
    assert "redis" in a("cursor", "list")[1]
    assert a("--cursor", "team", "set", "proj.ns.key", "from-a")[0] == 0
    assert b("--cursor", "team", "get", "proj.ns.key")[1] == "from-a"
    # A rescue lands in the redis store, where the other machine finds it and copies it home.
    code, out, err = a("--cursor", "team", "set", "bad..address", input=b"piped\n")
    assert code == 3, err
    cached = out.strip()
    assert cached.startswith("pipe.cache.")
    assert cached.removeprefix("pipe.cache.") in b("--cursor", "team", "keys", "pipe.cache")[1]
    code, _, err = b("--cursor", "team", "copy", cached, "proj.ns.rescued")
    assert code == 0, err
    assert a("--cursor", "team", "get", "proj.ns.rescued")[1] == "piped\n"
    assert a("--cursor", "team", "get", cached)[0] == 2  # removed from the cache
    # Counters and conditional writes are atomic across machines.
    for _ in range(3):
        for m in (a, b):
            assert m("--cursor", "team", "incr", "proj.ns.count")[0] == 0
    assert b("--cursor", "team", "get", "proj.ns.count")[1] == "6"
    assert a("--cursor", "team", "set", "proj.ns.lock", "a", "--nx")[0] == 0
    assert b("--cursor", "team", "set", "proj.ns.lock", "b", "--nx")[0] == 4
    code, out, _ = a("--cursor", "team", "doctor")
    assert code == 0, out
    # a moves the team store onto its own lmdb file and back while b keeps writing.
    stop = threading.Event()
    b_results: list[tuple[str, int]] = []

    def b_writes() -> None:
        i = 0
        while not stop.is_set():
            b_results.append((f"proj.b.k{i}", b("--cursor", "team", "set", f"proj.b.k{i}", "v")[0]))
            i += 1

    writer = threading.Thread(target=b_writes)
    writer.start()
    try:
        code, out, err = a("cursor", "migrate", "team", "--backend", "lmdb")
        assert code == 0, err
        assert "to lmdb" in err + out and "stays at redis+cluster://" in err + out
        assert a("--cursor", "team", "get", "proj.ns.count")[1] == "6"
        assert a("--cursor", "team", "set", "proj.ns.on-lmdb", "a")[0] == 0
        # b's cursor still names the retired redis store: refused, naming where it went.
        code, out, err = b("--cursor", "team", "get", "proj.ns.count")
        assert code == 1 and "retired by cursor migrate" in err and "team.lmdb" in err
        code, out, err = b("--cursor", "team", "set", "proj.ns.late", input=b"from b\n")
        assert code == 3 and "retired" in err  # piped content rescued locally
        assert b("get", out.strip())[1] == "from b\n"
        code, out, err = a("cursor", "migrate", "team", "--to", url)
        assert code == 1 and "retired" in err and "--replace-target" in err
        code, out, err = a("cursor", "migrate", "team", "--to", url, "--replace-target")
        assert code == 0, err
        before = len(b_results)
        while len(b_results) < before + 3:
            time.sleep(0.05)
    finally:
        stop.set()
        writer.join()
    assert b("--cursor", "team", "get", "proj.ns.on-lmdb")[1] == "a"  # b sees it again
    acked = [key for key, code in b_results if code == 0]
    assert [code for _, code in b_results if code != 0] and acked
    keys = set(b("--cursor", "team", "keys", "proj.b")[1].split())
    assert [k for k in acked if k.removeprefix("proj.b.") not in keys] == []  # none lost
    code, out, _ = b("--cursor", "team", "doctor")
    assert code == 0, out


def test_ttl_stream_export_import_backup_restore(machines, redis_server, tmp_path):
    a, _ = machines
    url = f"redis://{redis_server.address}/0?store={fresh_store()}"
    other = f"redis://{redis_server.address}/0?store={fresh_store()}"
    assert a("cursor", "set", "r", url)[0] == 0
    assert a("--cursor", "r", "create-cache", "p.tmp", "1h")[0] == 0
    assert a("--cursor", "r", "set", "p.tmp.k", "v")[0] == 0
    assert 3500 < int(a("--cursor", "r", "ttl", "p.tmp.k")[1]) <= 3600
    assert "p.tmp\t3600" in a("--cursor", "r", "caches")[1]
    code, _, err = a("--cursor", "r", "stream", input=b"meta:path=p.s; a=1; b='two'")
    assert code == 0, err
    assert a("--cursor", "r", "scan", "p.s")[1] == "a=1\nb=two\n"
    dump = tmp_path / "dump.jsonl"
    assert a("--cursor", "r", "export", "-o", str(dump))[0] == 0
    code, _, err = a("--database", other, "import", str(dump))
    assert code == 0, err
    assert a("--database", other, "keys", "--all")[1] == a("--cursor", "r", "keys", "--all")[1]
    assert "p.tmp\t3600" in a("--database", other, "caches")[1]
    archive = tmp_path / "b.tar.gz"
    assert a("--cursor", "r", "backup", "-o", str(archive))[0] == 0
    assert a("--cursor", "r", "del", "p.s.a")[0] == 0
    assert a("--cursor", "r", "restore", str(archive))[0] == 1  # not empty: needs --replace
    assert a("--cursor", "r", "restore", str(archive), "--replace")[0] == 0
    assert a("--cursor", "r", "get", "p.s.a")[1] == "1"
    code, out, _ = a("--cursor", "r", "--json", "info")
    assert code == 0 and json.loads(out)["backend"] == "redis"


def test_missing_store_and_url_sources(machines, redis_server):
    a, _ = machines
    absent = f"redis://{redis_server.address}/0?store={fresh_store()}"
    code, out, err = a("--database", absent, "get", "p.n.k")
    assert (code, out) == (1, "") and "no store at redis://" in err
    code, _, err = a("get", "p.n.k", env={"PRONTO_DB": absent})
    assert code == 1 and "no store at" in err
    assert a("--database", absent, "set", "p.n.k", "v")[0] == 0  # writing creates it
    assert a("get", "p.n.k", env={"PRONTO_DB": absent})[1] == "v"


def test_unreachable_server_rescues_locally(machines):
    a, _ = machines
    server = start_server()
    url = f"redis://{server.address}/0?store=gone"
    assert a("cursor", "set", "gone", url)[0] == 0
    server.stop()
    code, out, err = a("--cursor", "gone", "get", "p.n.k")
    assert code == 1 and "cannot reach" in err and "Traceback" not in err
    code, out, err = a("--cursor", "gone", "set", "p.n.k", input=b"precious")
    assert code == 3 and "cannot reach" in err
    key = out.strip()
    assert a("get", key)[1] == "precious"  # in the local default store


def test_password_never_saved(machines, tmp_path):
    a, _ = machines
    server = start_server("--requirepass", "letmein")
    try:
        code, _, err = a("cursor", "set", "s", f"redis://:letmein@{server.address}/0?store=s")
        assert code == 0 and "password was removed" in err
        config = tmp_path / "a" / "config" / "prontodb" / "users" / "default" / "cursors.json"
        assert "letmein" not in config.read_text()
        code, _, err = a("--cursor", "s", "get", "p.n.k")
        assert code == 1 and "authentication failed" in err and "letmein" not in err
        url = f"redis://{server.address}/0?store=s&password_env=PDB_PW"
        assert a("cursor", "set", "s", url, env={"PDB_PW": "letmein"})[0] == 0
        assert a("--cursor", "s", "set", "p.n.k", "v", env={"PDB_PW": "letmein"})[0] == 0
        assert a("--cursor", "s", "get", "p.n.k", env={"PDB_PW": "letmein"})[1] == "v"
        code, _, err = a("--cursor", "s", "get", "p.n.k")
        assert code == 1 and "PDB_PW" in err
        assert re.search(r"letmein", config.read_text()) is None
    finally:
        server.stop()


def test_file_commands_never_import_redis(machines, tmp_path):
    a, _ = machines
    db = str(tmp_path / "s.sqlite")
    for args in (["--database", db, "set", "p.n.k", "v"], ["--database", db, "get", "p.n.k"]):
        code, _, err = _importtime(a, args)
        assert code == 0
        modules = {line.rsplit("|", 1)[-1].strip() for line in err.splitlines() if "|" in line}
        assert "redis" not in modules and "prontodb.backends.redis" not in modules


def _importtime(machine: Machine, args: list[str]):
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "prontodb", *args],
        env=machine.env,
        capture_output=True,
        timeout=60,
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def test_info_shows_the_servers_facts_and_doctor_warns_without_persistence(machines, tmp_path):
    a, _ = machines
    server = start_server("--save", "", "--appendonly", "no")
    try:
        url = f"redis://{server.address}/0?store=facts"
        assert a("--database", url, "set", "p.n.k", "v")[0] == 0
        code, out, err = a("--database", url, "info")
        assert code == 0, err
        lines = dict(line.split(": ", 1) for line in out.splitlines())
        assert lines["backend"] == "redis" and lines["entries"] == "1"
        assert lines["redis.server_version"].count(".") == 2
        assert lines["redis.mode"] == "standalone" and lines["redis.aof_enabled"] == "False"
        assert int(lines["redis.used_memory"]) > 0
        assert "neither AOF nor RDB" in lines["warning"]
        code, out, _ = a("--database", url, "--json", "info")
        engine = json.loads(out)["engine"]
        assert engine["rdb_save"] == "" and engine["warnings"]
        code, out, err = a("--database", url, "doctor")
        assert "neither AOF nor RDB" in out + err
    finally:
        server.stop()
    db = str(tmp_path / "plain.sqlite")
    assert a("--database", db, "set", "p.n.k", "v")[0] == 0
    code, out, _ = a("--database", db, "--json", "info")
    assert code == 0 and "engine" not in json.loads(out)


def test_info_names_the_slot_and_node_on_the_cluster(machines, redis_cluster):
    a, _ = machines
    url = redis_cluster.url(fresh_store())
    assert a("--database", url, "set", "p.n.k", "v")[0] == 0
    code, out, err = a("--database", url, "--json", "info")
    assert code == 0, err
    engine = json.loads(out)["engine"]
    assert engine["mode"] == "cluster" and 0 <= engine["slot"] < 16384
    assert engine["node"].startswith("127.0.0.1:")
