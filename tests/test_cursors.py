"""Cursors at the library level: store-selection precedence, the locked context, names,
``cursor set`` semantics, deletion and the permissions of what cursors create."""

from __future__ import annotations

import json
import os
import stat

import pytest

from prontodb import backends, cursor, paths
from prontodb.cursor import CursorSpec
from prontodb.errors import (
    ConfigError,
    ContextLockedError,
    InvalidAddressError,
    InvalidNameError,
    UsageError,
)


@pytest.fixture
def env(tmp_path):
    """An isolated environment mapping (resolve and friends never read os.environ with it)."""
    return {
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _save(env, name, path, user="default", **fields):
    cursor.save(user, CursorSpec(name=name, path=str(path), backend="sqlite", **fields), env)


# -- precedence --------------------------------------------------------------------------------

# (flags, environment, expected source, expected store: a cursor name, "db-flag", "db-env" or
# "default"). Cursors "flagc", "envc" and "sel" exist; "sel" is the user's selection unless the
# row says otherwise.
PRECEDENCE = [
    ({"database": "F"}, {"PRONTO_DB": "E", "PRONTO_CURSOR": "envc"}, "--database", "db-flag"),
    ({"database": "F", "cursor": "flagc"}, {}, "--database", "db-flag"),
    ({"cursor": "flagc"}, {"PRONTO_DB": "E", "PRONTO_CURSOR": "envc"}, "--cursor", "flagc"),
    ({}, {"PRONTO_DB": "E", "PRONTO_CURSOR": "envc"}, "PRONTO_DB", "db-env"),
    ({}, {"PRONTO_CURSOR": "envc"}, "PRONTO_CURSOR", "envc"),
    ({}, {}, "selection", "sel"),
    ({}, {"_no_selection": "1"}, "default", "default"),
    ({"cursor": "default"}, {"PRONTO_CURSOR": "envc"}, "--cursor", "default"),
    ({}, {"PRONTO_CURSOR": "default"}, "PRONTO_CURSOR", "default"),
]


@pytest.mark.parametrize(("flags", "extra", "source", "expected"), PRECEDENCE)
def test_store_selection_precedence(env, tmp_path, flags, extra, source, expected):
    for name in ("flagc", "envc", "sel"):
        _save(env, name, tmp_path / f"{name}.sqlite", project=f"p{name}")
    if "_no_selection" not in extra:
        cursor.use("default", "sel", env)
    extra = {k: str(tmp_path / v) if k == "PRONTO_DB" else v for k, v in extra.items()}
    flags = {k: str(tmp_path / v) if k == "database" else v for k, v in flags.items()}
    target = cursor.resolve(env={**env, **extra}, **flags)
    assert target.source == source
    wanted = {
        "db-flag": str(tmp_path / "F"),
        "db-env": str(tmp_path / "E"),
        "default": paths.default_store_path("default", env),
    }.get(expected, str(tmp_path / f"{expected}.sqlite"))
    assert target.path == wanted
    if expected in ("flagc", "envc", "sel"):
        assert target.cursor == expected and target.project == f"p{expected}"
        assert target.explicit_path  # reading never recreates a vanished cursor store
    else:
        assert target.cursor is None and target.project is None
        assert target.explicit_path == expected.startswith("db-")


def test_unknown_cursor_is_an_error_and_creates_nothing(env, tmp_path):
    for kwargs, extra in (({"cursor": "ghost"}, {}), ({}, {"PRONTO_CURSOR": "ghost"})):
        with pytest.raises(ConfigError, match="unknown cursor 'ghost'"):
            cursor.resolve(env={**env, **extra}, **kwargs)
    with pytest.raises(ConfigError):
        cursor.use("default", "ghost", env)
    with pytest.raises(ConfigError):
        cursor.delete("default", "ghost", env=env)
    assert not os.path.exists(tmp_path / "data") and not os.path.exists(tmp_path / "config")


def test_flags_beat_cursor_defaults_and_meta(env, tmp_path):
    _save(env, "c", tmp_path / "c.sqlite", meta="m1", project="p", namespace="n")
    t = cursor.resolve(cursor="c", env=env)
    assert (t.meta, t.project, t.namespace) == ("m1", "p", "n")
    t = cursor.resolve(cursor="c", meta="m2", project="q", namespace="o", env=env)
    assert (t.meta, t.project, t.namespace) == ("m2", "q", "o")
    assert t.flags == ("--cursor", "c", "--meta", "m2")


def test_user_flag_beats_environment_and_selects_that_users_cursors(env, tmp_path):
    _save(env, "c", tmp_path / "k.sqlite", user="keeper")
    assert cursor.resolve(env={**env, "PRONTO_USER": "keeper"}, cursor="c").user == "keeper"
    with pytest.raises(ConfigError, match="for user 'other'"):
        cursor.resolve(user="other", cursor="c", env={**env, "PRONTO_USER": "keeper"})
    t = cursor.resolve(user="bob", env=env)
    assert t.user == "bob" and t.path == paths.default_store_path("bob", env)
    assert t.flags == ("--user", "bob")


# -- locked context ----------------------------------------------------------------------------


def test_forced_user_refuses_any_different_user(env):
    locked = {**env, "PRONTO_FORCE_USER": "keeper"}
    assert cursor.resolve(env=locked).user == "keeper"
    assert cursor.resolve(user="keeper", env={**locked, "PRONTO_USER": "keeper"}).user == "keeper"
    with pytest.raises(ContextLockedError, match="refusing --user 'prometheus'"):
        cursor.resolve(user="prometheus", env=locked)
    with pytest.raises(ContextLockedError, match="refusing PRONTO_USER 'other'"):
        cursor.resolve(env={**locked, "PRONTO_USER": "other"})
    with pytest.raises(ContextLockedError):  # the flag agrees, the environment does not
        cursor.resolve(user="keeper", env={**locked, "PRONTO_USER": "other"})
    assert "--user" not in cursor.resolve(env=locked).flags


def test_forced_meta_refuses_flag_and_cursor_meta_and_fills_cursor_without_meta(env, tmp_path):
    _save(env, "plain", tmp_path / "a.sqlite")
    _save(env, "other", tmp_path / "b.sqlite", meta="other")
    _save(env, "same", tmp_path / "c.sqlite", meta="locked")
    locked = {**env, "PRONTO_FORCE_META": "locked"}
    assert cursor.resolve(env=locked).meta == "locked"
    assert cursor.resolve(cursor="plain", env=locked).meta == "locked"
    assert cursor.resolve(cursor="same", meta="locked", env=locked).meta == "locked"
    with pytest.raises(ContextLockedError, match="cursor's meta 'other'"):
        cursor.resolve(cursor="other", env=locked)
    with pytest.raises(ContextLockedError, match="--meta 'x'"):
        cursor.resolve(meta="x", env=locked)
    with pytest.raises(ContextLockedError):
        cursor.define("default", "new", meta="x", env=locked)
    assert not cursor.exists("default", "new", locked)


def test_forced_values_are_validated(env):
    for var in ("PRONTO_FORCE_USER", "PRONTO_FORCE_META"):
        with pytest.raises(InvalidNameError):
            cursor.resolve(env={**env, var: "../etc"})


# -- names -------------------------------------------------------------------------------------

BAD_NAMES = ["", "..", "a/b", "a.b", "1abc", "-x", "_x", "a" * 33, "ä", "a b", "a\x00"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_rejected_everywhere(env, name):
    with pytest.raises(InvalidNameError):
        cursor.define("default", name, env=env)
    with pytest.raises(InvalidNameError):
        cursor.resolve(user=name, env=env)
    with pytest.raises(InvalidNameError):
        cursor.resolve(meta=name, env=env)
    if name:  # an empty --cursor is a usage error of its own
        with pytest.raises(InvalidNameError):
            cursor.resolve(cursor=name, env=env)


def test_good_names_and_the_reserved_default(env):
    for name in ("a", "A-b_9", "x" * 32):
        assert cursor.check_cursor_name(name) == name
    with pytest.raises(ConfigError, match="reserved"):
        cursor.define("default", "default", env=env)
    with pytest.raises(ConfigError, match="reserved"):
        cursor.delete("default", "default", env=env)
    with pytest.raises(UsageError):
        cursor.resolve(cursor="", env=env)
    with pytest.raises(UsageError):
        cursor.resolve(database="", env=env)


# -- cursor set --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "suffix"),
    [(None, ".sqlite"), ("sqlite", ".sqlite"), ("lmdb", ".lmdb"), ("diskcache", ".diskcache")],
)
def test_define_creates_store_at_default_path_and_records_backend(env, backend, suffix):
    spec = cursor.define("default", "work", backend=backend, env=env)
    assert spec.path == os.path.join(paths.user_data_dir("default", env), "work" + suffix)
    assert spec.backend == (backend or "sqlite")
    assert backends.sniff(spec.path) == spec.backend
    assert cursor.load("default", "work", env) == spec


def test_backend_from_existing_store_then_extension_then_sqlite(env, tmp_path):
    lm = cursor.define("default", "a", str(tmp_path / "x.lmdb"), env=env)
    assert lm.backend == "lmdb"
    neutral = tmp_path / "blob"
    os.rename(lm.path, neutral)
    assert cursor.define("default", "b", str(neutral), env=env).backend == "lmdb"
    assert cursor.define("default", "c", str(tmp_path / "y.diskcache"), env=env).backend == (
        "diskcache"
    )
    assert cursor.define("default", "d", str(tmp_path / "plain"), env=env).backend == "sqlite"
    with pytest.raises(ConfigError, match="is a lmdb store, not sqlite"):
        cursor.define("default", "e", str(neutral), backend="sqlite", env=env)
    assert not cursor.exists("default", "e", env)


def test_define_on_existing_name_updates_only_the_fields_given(env, tmp_path):
    first = cursor.define(
        "default",
        "w",
        backend="lmdb",
        meta="m",
        project="p",
        namespace="n",
        durability="full",
        env=env,
    )
    cursor.define("default", "w", project="q", env=env)
    assert cursor.load("default", "w", env) == CursorSpec(
        "w", first.path, "lmdb", "m", "q", "n", "full"
    )
    cursor.define("default", "w", meta="", namespace="", env=env)  # '' clears a field
    spec = cursor.load("default", "w", env)
    assert (spec.meta, spec.project, spec.namespace, spec.backend) == (None, "q", None, "lmdb")
    with pytest.raises(ConfigError, match="migrate"):
        cursor.define("default", "w", backend="sqlite", env=env)
    moved = cursor.define("default", "w", str(tmp_path / "new.diskcache"), env=env)
    assert moved.backend == "diskcache" and moved.project == "q"


def test_define_validates_defaults_and_saves_nothing_on_failure(env, tmp_path):
    with pytest.raises(InvalidAddressError):
        cursor.define("default", "w", project="a.b", env=env)
    with pytest.raises(InvalidAddressError):
        cursor.define("default", "w", namespace="-x", env=env)
    with pytest.raises(ConfigError):
        cursor.define("default", "w", backend="memory", env=env)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a store at all")
    with pytest.raises(Exception, match="not a ProntoDB store"):
        cursor.define("default", "w", str(junk), env=env)
    assert cursor.list_cursors("default", env) == []


def test_recreating_a_deleted_cursor_finds_its_kept_store(env):
    old = cursor.define("default", "w", backend="diskcache", env=env)
    cursor.delete("default", "w", env=env)
    assert os.path.isdir(old.path)
    again = cursor.define("default", "w", env=env)
    assert (again.path, again.backend) == (old.path, "diskcache")


# -- use / delete ------------------------------------------------------------------------------


def test_selection_changes_only_through_use_and_delete(env, tmp_path):
    cursor.define("default", "a", env=env)
    cursor.define("default", "b", env=env)
    assert cursor.selected("default", env) is None
    cursor.resolve(cursor="a", env=env)
    assert cursor.selected("default", env) is None
    cursor.use("default", "a", env)
    cursor.define("default", "b", project="p", env=env)
    assert cursor.selected("default", env) == "a"
    cursor.delete("default", "b", env=env)
    assert cursor.selected("default", env) == "a"
    cursor.delete("default", "a", env=env)
    assert cursor.selected("default", env) is None
    cursor.define("default", "c", env=env)
    cursor.use("default", "c", env)
    cursor.use("default", None, env)
    assert cursor.selected("default", env) is None
    cursor.use("default", "c", env)
    cursor.use("default", "default", env)  # 'default' means the default store
    assert cursor.selected("default", env) is None


@pytest.mark.parametrize("backend", ["sqlite", "lmdb", "diskcache"])
def test_purge_removes_the_store_files(env, backend):
    spec = cursor.define("default", "w", backend=backend, env=env)
    folder = os.path.dirname(spec.path)
    cursor.delete("default", "w", purge=True, env=env)
    assert os.listdir(folder) == []
    assert not cursor.exists("default", "w", env)


def test_purge_refuses_foreign_files_and_shared_stores(env, tmp_path):
    shared = cursor.define("default", "a", env=env)
    cursor.define("default", "b", shared.path, env=env)
    with pytest.raises(ConfigError, match="cursor 'b' uses the same store"):
        cursor.delete("default", "a", purge=True, env=env)
    assert cursor.exists("default", "a", env) and os.path.exists(shared.path)
    victim = tmp_path / "precious"
    victim.mkdir()
    (victim / "file").write_text("keep me")
    _save(env, "odd", victim)
    with pytest.raises(ConfigError, match="not a ProntoDB store"):
        cursor.delete("default", "odd", purge=True, env=env)
    assert (victim / "file").read_text() == "keep me" and cursor.exists("default", "odd", env)


# -- the cursor file and permissions -----------------------------------------------------------


def test_cursor_file_and_directories_are_private_whatever_the_umask(env):
    old = os.umask(0)
    try:
        spec = cursor.define("default", "w", backend="lmdb", env=env)
        dc = cursor.define("default", "d", backend="diskcache", env=env)
    finally:
        os.umask(old)
    cfg = os.path.join(paths.user_config_dir("default", env), cursor.CURSORS_FILE)
    assert _mode(cfg) == 0o600
    for folder in (
        paths.config_home(env),
        paths.user_config_dir("default", env),
        paths.data_home(env),
        os.path.dirname(spec.path),
        dc.path,
    ):
        assert _mode(folder) == 0o700, folder
    for path in (spec.path, spec.path + "-lock", os.path.join(dc.path, "cache.db")):
        assert _mode(path) == 0o600, path
    with open(cfg) as fh:
        assert json.load(fh)["cursors"]["w"]["backend"] == "lmdb"


def test_cursor_file_writable_by_others_is_refused(env):
    cursor.define("default", "w", env=env)
    cfg = os.path.join(paths.user_config_dir("default", env), cursor.CURSORS_FILE)
    os.chmod(cfg, 0o666)
    with pytest.raises(ConfigError, match="writable by other accounts"):
        cursor.resolve(cursor="w", env=env)


def test_damaged_cursor_file_is_a_config_error(env):
    cursor.define("default", "w", env=env)
    cfg = os.path.join(paths.user_config_dir("default", env), cursor.CURSORS_FILE)
    with open(cfg, "w") as fh:
        fh.write("{not json")
    with pytest.raises(ConfigError, match="cannot read cursor file"):
        cursor.list_cursors("default", env)
    with open(cfg, "w") as fh:
        json.dump({"cursors": {"w": {"path": "/x", "backend": "redis"}}}, fh)
    with pytest.raises(ConfigError, match="damaged"):
        cursor.load("default", "w", env)


def test_a_damaged_cursor_entry_can_be_deleted_but_not_purged(env, tmp_path):
    import json

    _save(env, "good", tmp_path / "good.sqlite")
    path = cursor.file_path("default", env)
    data = json.load(open(path))
    data["cursors"]["bad"] = {"path": 42, "backend": "sqlite"}
    data["selected"] = "bad"
    with open(path, "w") as fh:
        json.dump(data, fh)
    with pytest.raises(ConfigError, match="damaged"):
        cursor.load("default", "bad", env)
    with pytest.raises(ConfigError, match="damaged"):
        cursor.delete("default", "bad", purge=True, env=env)
    assert cursor.delete("default", "bad", env=env) is None
    assert [c.name for c in cursor.list_cursors("default", env)] == ["good"]
    assert cursor.selected("default", env) is None


def test_no_import_cycle_between_opener_and_the_cursor_modules():
    """opener, selection and cursorfile never import cursor (lazily included): cursor is the
    only one of them that creates or removes stores, and it sits above the opener."""
    import ast
    import pathlib

    import prontodb as pkg

    root = pathlib.Path(pkg.__file__).parent
    for module in ("opener", "selection", "cursorfile", "context", "files", "paths"):
        tree = ast.parse((root / f"{module}.py").read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
                imported.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
        assert "prontodb.cursor" not in imported, module
    cursorfile = (root / "cursorfile.py").read_text()
    assert "opener" not in cursorfile
