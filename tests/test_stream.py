"""``prontodb stream`` (DESIGN §9): the state rules as a table of inputs -> entries or errors, the
fast block path against the token-by-token path, atomicity, TTL, sec:user, and the command
through real pipes (rescue, FILE errors, dry run, JSON)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tracemalloc

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import prontodb
from prontodb import stream
from prontodb.cli import cli
from prontodb.errors import InvalidAddressError, StreamError, ValueTooLargeError
from prontodb.streamtokens import StreamSyntaxError, tokenize


def entries(source, **kwargs) -> list[tuple[str, str, int | None]]:
    planned = stream.plan(source, **kwargs)
    return [(str(a), v.decode(), ttl) for a, v, ttl in planned.items()]


# --------------------------------------------------------------------------- the state rules

OK = [
    pytest.param(
        'meta:path=kb.recipes; pasta=red; soup="hot stuff"\n',
        {},
        [("kb.recipes.pasta", "red", None), ("kb.recipes.soup", "hot stuff", None)],
        id="done-when",
    ),
    pytest.param("k=v", {"project": "p", "namespace": "n"}, [("p.n.k", "v", None)], id="defaults"),
    pytest.param("meta:ns=a.b;k=1", {}, [("a.b.k", "1", None)], id="meta-ns-alias"),
    pytest.param(
        "meta:project=a;meta:namespace=b;k=1", {}, [("a.b.k", "1", None)], id="project+namespace"
    ),
    pytest.param(
        "meta:path=a.b;meta:namespace=c;k=1", {}, [("a.c.k", "1", None)], id="namespace-only"
    ),
    pytest.param(
        "meta:path=a.b;k=1;ns=c;k=2;ns=x.y;k=3",
        {},
        [("a.b.k", "1", None), ("a.c.k", "2", None), ("x.y.k", "3", None)],
        id="ns-switching",
    ),
    pytest.param("ns=c;k=1", {"project": "p"}, [("p.c.k", "1", None)], id="ns-in-default-project"),
    pytest.param(
        "meta:path=a.b;k=1;x.y:k=2;c:k=3;k=4",
        {},
        [("a.b.k", "1", None), ("x.y.k", "2", None), ("a.c.k", "3", None), ("a.b.k", "4", None)],
        id="prefixed-keeps-target",
    ),
    pytest.param("x.y:k=2", {}, [("x.y.k", "2", None)], id="prefixed-without-target"),
    pytest.param(
        "meta:path=a.b;k__dev=1;x.y:k__prod=2",
        {},
        [("a.b.k__dev", "1", None), ("x.y.k__prod", "2", None)],
        id="context",
    ),
    pytest.param(
        "meta:path=a.b;a__b__c=1", {}, [("a.b.a__b__c", "1", None)], id="context-at-last-sep"
    ),
    pytest.param(
        "meta:path=a.b;meta:ttl=15m;k=1;meta:ttl=none;j=2;meta:ttl=30;x.y:z=3",
        {},
        [("a.b.k", "1", 900), ("a.b.j", "2", None), ("x.y.z", "3", 30)],
        id="meta-ttl",
    ),
    pytest.param(
        "meta:delim=/;meta:path=a/b;k=1;x/y:k=2;ns=c;k=3",
        {},
        [("a.b.k", "1", None), ("x.y.k", "2", None), ("a.c.k", "3", None)],
        id="meta-delim-slash",
    ),
    pytest.param(
        "meta:delim=:;meta:path=a:b;k=1;x:y:k=2;c:k=3",
        {},
        [("a.b.k", "1", None), ("x.y.k", "2", None), ("a.c.k", "3", None)],
        id="meta-delim-colon",
    ),
    pytest.param("a/b:k=1", {"delim": "/"}, [("a.b.k", "1", None)], id="initial-delim"),
    pytest.param(
        'meta:path=a.b;k="x";j=\'y\';q="a;"',
        {},
        None,  # the ';' inside quotes separates: 'a' is followed by the segment '"' (no '=')
        id="quotes-do-not-protect",
    ),
    pytest.param(
        'meta:path=a.b;k="x";j=\'y\';e="";m="a"b";u=a=b;w=x:y',
        {},
        [
            ("a.b.k", "x", None),
            ("a.b.j", "y", None),
            ("a.b.e", "", None),
            ("a.b.m", 'a"b', None),
            ("a.b.u", "a=b", None),
            ("a.b.w", "x:y", None),
        ],
        id="values",
    ),
    pytest.param(
        "meta:path=a.b;k=ключ значение\n2;", {}, [("a.b.k", "ключ значение\n2", None)], id="utf8"
    ),
    pytest.param(
        "meta:path=a.b;k=1;k=2", {}, [("a.b.k", "1", None), ("a.b.k", "2", None)], id="dup"
    ),
    pytest.param(
        "sec:user=bob;meta:path=a.b;k=1", {"user": "bob"}, [("a.b.k", "1", None)], id="sec"
    ),
    pytest.param(
        "meta:sec:user=bob;a.b:k=1", {"user": "bob"}, [("a.b.k", "1", None)], id="meta-sec"
    ),
    pytest.param(
        "meta:path=a.b;user=bob;meta=1;sec=2",
        {},
        [("a.b.user", "bob", None), ("a.b.meta", "1", None), ("a.b.sec", "2", None)],
        id="reserved-words-as-plain-keys",
    ),
    pytest.param("meta:path=a.b;", {}, [], id="directives-only"),
]


@pytest.mark.parametrize(("text", "kwargs", "expected"), OK)
def test_state_rules(text, kwargs, expected):
    if expected is None:
        with pytest.raises(StreamSyntaxError):
            stream.plan(text, **kwargs)
        return
    assert entries(text, **kwargs) == expected
    # the same from bytes, and from chunks split anywhere
    assert entries(text.encode(), **kwargs) == expected
    assert entries([text[i : i + 3] for i in range(0, len(text), 3)], **kwargs) == expected


# (text, plan kwargs, error class, position, rule fragment)
ERRORS = [
    pytest.param("k=1", {}, 1, "no target namespace", id="no-target"),
    pytest.param("k=1", {"project": "p"}, 1, "no target namespace", id="project-only"),
    pytest.param("ns=c;k=1", {}, 1, "no current project", id="ns-without-project"),
    pytest.param("ns=c;k=1", {}, 1, "ns=PROJECT.c", id="ns-hint"),
    pytest.param("c:k=1", {}, 1, "no current project", id="bare-prefix-without-project"),
    pytest.param("meta:path=kb;k=1", {}, 1, "meta:path needs PROJECT.NAMESPACE", id="path-short"),
    pytest.param("meta:path=a.b.c", {}, 1, "meta:path needs", id="path-long"),
    pytest.param("meta:path=a.b c", {}, 1, "bad character ' '", id="path-bad-char"),
    pytest.param("meta:namespace=b", {}, 1, "needs a current project", id="namespace-first"),
    pytest.param("meta:project=a;meta:path=a.b;meta:project=c;k=1", {}, 4, "no target", id="proj"),
    pytest.param("meta:path=a.b;meta:foo=1", {}, 2, "unknown directive 'meta:foo'", id="meta-x"),
    pytest.param("meta:p=q", {}, 1, "unknown directive", id="issue-meta-p"),
    pytest.param("meta:ttl=0", {}, 1, "greater than zero", id="ttl-zero"),
    pytest.param("meta:ttl=-5", {}, 1, "invalid duration", id="ttl-negative"),
    pytest.param("meta:ttl=soon", {}, 1, "invalid duration", id="ttl-malformed"),
    pytest.param("meta:delim=x", {}, 1, "invalid delimiter", id="delim"),
    pytest.param("meta:path=a.b;a.b=1", {}, 2, "another namespace use NAMESPACE:key", id="dotkey"),
    pytest.param("meta:path=a.b;-k=1", {}, 2, "starts with '-'", id="dash-key"),
    pytest.param("meta:path=a.b;k__=1", {}, 2, "empty context", id="empty-context"),
    pytest.param("meta:path=a.b;" + "k" * 129 + "=1", {}, 2, "at most 128", id="long-key"),
    pytest.param("a.b.c:k=1", {}, 1, "invalid namespace", id="prefix-too-long"),
    pytest.param("a.b:x:k=1", {}, 1, "bad character ':'", id="colon-in-key"),
    pytest.param("sec:pass=123", {}, 1, "no password or key authentication", id="sec-pass"),
    pytest.param("meta:sec:key=1", {}, 1, "no password", id="meta-sec-key"),
    pytest.param("user=bob; sec:pass=123; ns=animals; dog=fido;", {}, 1, "no target", id="issue"),
    pytest.param("sec:user=eve", {"user": "bob"}, 1, "effective user is 'bob'", id="sec-user"),
    pytest.param(
        "sec:user=eve", {"user": "bob", "user_locked": True}, 1, "PRONTO_FORCE_USER", id="locked"
    ),
    pytest.param("sec:user=a;sec:user=b", {}, 2, "contradicts", id="sec-user-twice"),
    pytest.param("meta:path=a.b;k=12345", {"max_value_bytes": 4}, 2, "over the limit", id="size"),
    pytest.param("meta:path=a.b;k=\ud800", {}, 2, "surrogate", id="lone-surrogate"),
]


@pytest.mark.parametrize(("text", "kwargs", "position", "rule"), ERRORS)
def test_state_errors(text, kwargs, position, rule):
    with pytest.raises(StreamError) as caught:
        stream.plan(text, **kwargs)
    err = caught.value
    assert err.position == position
    assert rule in err.rule
    assert str(err).startswith(f"token {position} ")
    assert repr(err.raw[:20])[1:-1] in str(err)


@pytest.mark.parametrize(
    ("text", "position", "rule"),
    [
        ('k1="val1" ;k2="val2";', 1, "whitespace at the end"),
        ('k1= "val1";', 1, "whitespace after '='"),
        ('k1 ="val1";', 1, "whitespace before '='"),
        ("good=value; bad_token; another=good;", 2, "missing '='"),
        ("=value", 1, "empty key"),
        ('k="a;b";', 2, "missing '='"),
    ],
)
def test_syntax_errors_come_through(text, position, rule):
    with pytest.raises(StreamSyntaxError) as caught:
        stream.plan(text, project="p", namespace="n")
    assert caught.value.position == position
    assert rule in caught.value.rule


def test_invalid_defaults_are_address_errors():
    with pytest.raises(InvalidAddressError, match="invalid default project 'a b'"):
        stream.plan("k=1", project="a b", namespace="n")


def test_invalid_utf8_names_the_byte_offset():
    data = b"meta:path=a.b;\nk=ok;j=\xc3\x28;"
    with pytest.raises(stream.StreamEncodingError) as caught:
        stream.plan(data)
    assert caught.value.byte_offset == data.index(b"\xc3")
    assert caught.value.line == 2
    assert "byte offset 22" in str(caught.value)


def test_plan_counts_and_namespaces():
    planned = stream.plan("meta:path=b.x;k=1;j=2;a.y:k=3;ns=a.y;z=1;meta:ttl=5;")
    assert planned.tokens == 7
    assert planned.entries == 4
    assert planned.counts == {("b", "x"): 2, ("a", "y"): 2}
    assert planned.namespaces() == {"a.y": 2, "b.x": 2}
    assert planned.namespaces("/") == {"a/y": 2, "b/x": 2}


def test_empty_streams_plan_nothing():
    for text in ("", "  \n", ";;;", " ; \n ;"):
        planned = stream.plan(text)
        assert (planned.tokens, planned.entries) == (0, 0)


# --------------------------------------------------------------------------- fast path == slow path

KEYS = st.sampled_from(["k", "a1", "x_y", "ns", "k__c", "Z-9", "nsx", "_"])
VALUES = st.sampled_from(["v", "", "a b", "a=b", '"q"', "'s'", '"', "x\ny", "é", "=", "\x00"])
TOKENS = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", KEYS, VALUES),
    st.builds(lambda k, v: f"{k}={v}", KEYS, VALUES),
    st.builds(lambda k, v: f"{k}={v}", KEYS, VALUES),
    st.sampled_from(
        [
            "meta:path=p.a",
            "ns=b",
            "ns=q.c",
            "meta:ttl=60",
            "meta:ttl=none",
            "p.d:k=1",
            "e:k=2",
            "meta:delim=/",
            "meta:delim=.",
            "",
            " ",
        ]
    ),
)
SEPS = st.sampled_from([";", "; ", ";\n", ";\t "])
# STREAM_EXAMPLES=5000 runs the property tests below much longer (they are fast by default)
# a few bad tokens, so that error positions and locations are compared too
BAD = st.sampled_from(["bad", "k =1", "k= 1", "k=1 ", "meta:x=1", "a b=1", "-k=1", "k__=1"])


def _stream_text(tokens, seps, tail):
    text = "".join(t + s for t, s in zip(tokens, seps, strict=False))
    return text + tail


def _outcome(fn):
    try:
        return ("ok", [(str(a), v, t) for a, v, t in fn().items()])
    except StreamError as err:
        return ("error", type(err).__name__, str(err))


@settings(
    max_examples=int(os.environ.get("STREAM_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    tokens=st.lists(TOKENS, max_size=25),
    seps=st.lists(SEPS, min_size=25, max_size=25),
    bad=st.one_of(st.none(), st.tuples(st.integers(0, 25), BAD)),
    tail=st.sampled_from(["", "\n", " \n", "k=end", "k=end\n"]),
    block=st.sampled_from([1, 7, 40, 1 << 16]),
    chunk=st.sampled_from([1, 5, 64, None]),
)
def test_fast_path_matches_token_by_token(tokens, seps, bad, tail, block, chunk):
    if bad is not None:
        tokens = list(tokens)
        tokens.insert(min(bad[0], len(tokens)), bad[1])
    text = _stream_text(tokens, seps, tail)
    kwargs = {"project": "p", "namespace": "n"}
    with pytest.MonkeyPatch.context() as m:
        m.setattr(stream, "BLOCK_SIZE", block)
        source = (
            text if chunk is None else [text[i : i + chunk] for i in range(0, len(text), chunk)]
        )
        fast = _outcome(lambda: stream.plan(source, **kwargs))
        fast_bytes = _outcome(lambda: stream.plan(text.encode(), **kwargs))
    with pytest.MonkeyPatch.context() as m:
        m.setattr(stream, "_plain_block", lambda block: None)
        m.setattr(stream, "_PLAIN_RUN", re.compile(rb"(?!)"))
        m.setattr(stream, "_QUOTED_RUN", re.compile(rb"(?!)"))
        slow = _outcome(lambda: stream.plan(text, **kwargs))
    assert fast == slow
    assert fast_bytes == slow
    if slow[0] == "error" and slow[1] == "StreamSyntaxError":
        # located exactly as the tokenizer locates it in the whole text
        with pytest.raises(StreamSyntaxError) as caught:
            tokenize(text)
        assert slow[2] == str(caught.value)


@settings(max_examples=int(os.environ.get("STREAM_EXAMPLES", "300")), deadline=None)
@given(st.text(st.sampled_from("kns_-=;: \"'\n\x00a_"), max_size=40))
def test_quick_block_check_accepts_only_plain_tokens(body):
    data = (body + ";").encode()
    block = stream._plain_block(data)
    if block is None:
        return
    tokens = tokenize(body + ";")
    assert all(t.prefix is None and t.key != "ns" and "__" not in t.key for t in tokens)
    assert all(t.value == t.raw.split("=", 1)[1] for t in tokens)  # no quotes to strip
    names = [t.key.encode() + b"\x00" for t in tokens]
    values = [t.value.encode() for t in tokens]
    assert list(stream._columns([(stream.SPLIT, block)])) == [(names, values)]
    for header in (b"\x01H", b"H;=\x00"):  # the second cannot be built by splitting
        ((pairs, count),) = stream._pairs([(stream.SPLIT, block)], b"P\x00", header)
        expected = [(b"P\x00" + n, header + v) for n, v in zip(names, values, strict=True)]
        assert (list(pairs), count) == (expected, len(tokens))


def test_values_with_quotes_equals_and_whitespace_in_big_blocks():
    values = ['"a b"', "'c'", "x=y", "é", "", "a\nb", '"', "q'"]
    text = "meta:path=p.n;" + "".join(f" k{i}={values[i % len(values)]};" for i in range(3000))
    got = entries(text)
    expected = [tokenize(f"k={values[i % len(values)]}")[0].value for i in range(3000)]
    assert [v for _, v, _ in got] == expected
    assert [a for a, _, _ in got] == [f"p.n.k{i}" for i in range(3000)]


# --------------------------------------------------------------------------- writing


@pytest.fixture
def mem_store(clock):
    import uuid

    s = prontodb.open(f"memory://{uuid.uuid4().hex}", clock=clock)
    yield s
    s.close()


def test_apply_writes_everything_in_one_transaction(store):
    text = "meta:path=kb.recipes;" + "".join(f"k{i}=v{i};" for i in range(5000))
    text += 'x.y:z__c="hot stuff"'
    assert stream.load(store, text) == 5001
    assert store.get("kb.recipes.k4999") == b"v4999"
    assert store.get("x.y.z__c") == b"hot stuff"
    assert store.count() == 5001


def test_error_in_the_last_token_writes_nothing(mem_store):
    text = "meta:path=kb.recipes;" + "".join(f"k{i}=v{i};" for i in range(5000)) + "meta:nope=1"
    with pytest.raises(StreamError, match="token 5002 "):
        stream.load(mem_store, text)
    assert mem_store.count() == 0


def test_failure_during_the_write_writes_nothing(mem_store):
    planned = stream.plan("meta:path=a.b;k=1;j=" + "x" * 100)
    mem_store.max_value_bytes = 50  # the store is stricter than the plan was: checked on write
    with pytest.raises(ValueTooLargeError):
        stream.apply(mem_store, planned)
    assert mem_store.count() == 0


def test_meta_ttl_and_namespace_defaults(mem_store, clock):
    mem_store.create_cache("a.c", 30)
    stream.load(
        mem_store,
        "meta:path=a.b;plain=1;meta:ttl=60;short=2;ns=c;cached=3;meta:ttl=none;ns=c;default=4",
    )
    assert mem_store.ttl("a.b.plain") is None
    assert mem_store.ttl("a.b.short") == 60
    assert mem_store.ttl("a.c.cached") == 60  # meta:ttl overrides the namespace default
    assert mem_store.ttl("a.c.default") == 30  # none: back to the namespace default
    clock.advance(31)
    assert mem_store.keys("a") == ["b.plain", "b.short", "c.cached"]
    clock.advance(30)
    assert mem_store.keys("a") == ["b.plain"]


def test_deadline_bytes_that_hold_a_separator():
    import uuid

    from prontodb import record

    clock = prontodb.FakeClock(0x3B3B3B3B3B / 1000 - 60)  # the deadline's bytes hold ';'
    with prontodb.open(f"memory://{uuid.uuid4().hex}", clock=clock) as s:
        header = record.pack(b"", round((clock() + 60) * 1000))
        assert b";" in header
        stream.load(s, "meta:path=a.b;meta:ttl=60;" + "".join(f"k{i}=v{i};" for i in range(500)))
        assert s.get("a.b.k499") == b"v499"
        assert s.ttl("a.b.k0") == 60


def test_plan_without_user_checks_sec_user_on_apply(mem_store):
    planned = stream.plan("sec:user=keeper;a.b:k=1")
    assert planned.user == "keeper"
    with pytest.raises(StreamError, match="sec:user=keeper refused"):
        stream.apply(mem_store, planned)
    keeper = mem_store.layer(user="keeper")
    assert stream.apply(keeper, planned) == 1
    assert mem_store.count() == 0 and keeper.count() == 1


def test_progress_callbacks(mem_store, monkeypatch):
    monkeypatch.setattr(stream, "BLOCK_SIZE", 100)
    seen_read, seen_write = [], []
    text = "meta:path=a.b;" + "".join(f"k{i}=v;" for i in range(200))
    planned = stream.plan(text, progress=seen_read.append)
    stream.apply(mem_store, planned, progress=lambda d, t: seen_write.append((d, t)))
    assert seen_read[-1] == 201 and len(seen_read) > 5
    assert seen_write[-1] == (200, 200)


def test_plan_holds_about_one_copy_of_the_input():
    data = ("meta:path=bench.data;" + "".join(f"k{i}=v{i};" for i in range(100_000))).encode()
    tracemalloc.start()
    try:
        planned = stream.plan(data)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert planned.entries == 100_000
    assert held < 1.5 * len(data)
    assert peak - held < 4_000_000  # the work on one block of BLOCK_SIZE, whatever the input


SAFE_KEY = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,11}", fullmatch=True).filter(
    lambda k: "__" not in k and not k.endswith("_")
)
SAFE_VALUE = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters=";"), max_size=20
)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.tuples(st.sampled_from(["a.b", "a.c", "z.y"]), SAFE_KEY), SAFE_VALUE, max_size=30
    ),
    st.sampled_from(['"', "'"]),
)
def test_round_trip(items, quote):
    import uuid

    with prontodb.open(f"memory://{uuid.uuid4().hex}") as s:
        # an unprefixed ns= is the namespace switch: a key named ns needs the prefixed form
        text = "".join(
            f"{ns}:{key}={quote}{value}{quote};"
            if key == "ns"
            else f"meta:path={ns};{key}={quote}{value}{quote};"
            for (ns, key), value in items.items()
        )
        assert stream.load(s, text) == len(items)
        for (ns, key), value in items.items():
            assert s.get(f"{ns}.{key}") == value.encode()
        assert s.count() == len(items)


# --------------------------------------------------------------------------- the command


@pytest.fixture
def run(home, tmp_path):
    """The CLI in-process on a fresh store: (code, stdout, stderr)."""
    runner = CliRunner()
    db = str(tmp_path / "cli.sqlite")

    def invoke(*args, input=None, env=None):
        result = runner.invoke(cli, ["--database", db, *args], input=input, env=env)
        return result.exit_code, result.stdout, result.stderr

    invoke.db = db
    return invoke


def _pipe(home, args, data, **env):
    """Run ``python -m prontodb ARGS`` with ``data`` on a real pipe."""
    return subprocess.run(
        [sys.executable, "-m", "prontodb", *args],
        input=data,
        capture_output=True,
        env={**home, **env},
        timeout=60,
    )


def test_done_when_command(home):
    prog = f"{shlex.quote(sys.executable)} -m prontodb"
    line = 'echo "meta:path=kb.recipes; pasta=red; soup=\\"hot stuff\\"" | ' + prog + " stream"
    done = subprocess.run(line, shell=True, capture_output=True, env=home, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b""
    assert done.stderr.decode().strip() == "stored 2 entries in 1 namespace"
    got = subprocess.run(
        [sys.executable, "-m", "prontodb", "scan", "kb.recipes"], capture_output=True, env=home
    )
    assert got.stdout == b"pasta=red\nsoup=hot stuff\n"


def test_stdin_error_is_rescued_and_nothing_written(home):
    data = b"meta:path=kb.recipes; pasta=red; soup=hot; meta:bogus=1\n"
    done = _pipe(home, ["stream"], data)
    assert done.returncode == 3
    key = done.stdout.decode().strip()
    assert key.startswith("pipe.cache.") and key.endswith("_noaddr")
    err = done.stderr.decode()
    assert "oken 4 'meta:bogus=1'" in err and "unknown directive" in err
    assert "prontodb stream" in err  # the hint: it looks like a stream
    assert _pipe(home, ["get", key], b"").stdout == data
    assert _pipe(home, ["keys", "kb"], b"").stdout == b""


def test_stdin_locked_user_mismatch_is_rescued_into_keepers_cache(home):
    data = b"sec:user=mallory;meta:path=a.b;k=1"
    done = _pipe(home, ["stream"], data, PRONTO_FORCE_USER="keeper")
    assert done.returncode == 3, done.stderr
    assert "PRONTO_FORCE_USER" in done.stderr.decode()
    key = done.stdout.decode().strip()
    assert _pipe(home, ["get", key], b"", PRONTO_FORCE_USER="keeper").stdout == data
    ok = _pipe(home, ["stream"], b"sec:user=keeper;a.b:k=1", PRONTO_FORCE_USER="keeper")
    assert ok.returncode == 0, ok.stderr
    assert _pipe(home, ["get", "a.b.k"], b"", PRONTO_FORCE_USER="keeper").stdout == b"1"
    assert _pipe(home, ["get", "a.b.k"], b"").returncode == 2  # not in the default user's layer


def test_file_error_exits_1_and_copies_nothing(run, tmp_path):
    bad = tmp_path / "bad.stream"
    bad.write_text("meta:path=a.b;k=1;k =2")
    code, out, err = run("stream", str(bad))
    assert (code, out) == (1, "")
    assert "token 3 'k =2'" in err and "whitespace before '='" in err
    assert run("keys")[1] == ""  # nothing stored, nothing rescued
    code, out, err = run("stream", str(tmp_path / "missing"))
    assert code == 1 and "cannot read" in err


def test_file_invalid_utf8_exits_1(run, tmp_path):
    bad = tmp_path / "bad.stream"
    bad.write_bytes(b"meta:path=a.b;k=\xff")
    code, out, err = run("stream", str(bad))
    assert code == 1 and "invalid UTF-8 at byte offset 16" in err


def test_file_import_and_json(run, tmp_path):
    good = tmp_path / "good.stream"
    good.write_text("meta:path=a.b;k=1;j=2;x.y:z=3\n")
    code, out, err = run("--json", "stream", str(good))
    assert code == 0
    assert json.loads(out) == {
        "dry_run": False,
        "entries": 3,
        "namespaces": {"a.b": 2, "x.y": 1},
        "tokens": 4,
    }
    assert err.strip() == "stored 3 entries in 2 namespaces"
    assert run("get", "x.y.z")[1] == "3"


def test_dry_run_prints_the_plan_and_writes_nothing(run, tmp_path):
    code, out, err = run("stream", "--dry-run", input="meta:path=b.x;k=1;a.y:j=2;ns=a.y;z=3")
    assert code == 0
    assert out == "a.y\t2\nb.x\t1\n"
    assert "would store 3 entries in 2 namespaces" in err
    assert not os.path.exists(run.db)  # not even the store was created
    code, out, err = run("--json", "stream", "--dry-run", input="meta:path=b.x;k=1")
    assert json.loads(out)["dry_run"] is True


def test_dry_run_error_exits_1_without_rescue(run):
    code, out, err = run("stream", "--dry-run", input="meta:path=b.x;k=1;bad")
    assert (code, out) == (1, "")
    assert "token 3 'bad'" in err
    assert not os.path.exists(run.db)


@pytest.mark.parametrize("data", ["", "  \n\t", ";;;\n", " ; ;"])
def test_empty_input_is_a_usage_error(run, data):
    code, out, err = run("stream", input=data)
    assert (code, out) == (1, "")
    assert "nothing to import" in err
    assert not os.path.exists(run.db)


def test_cli_defaults_and_delimiter(run):
    assert run("-p", "kb", "-n", "r", "stream", input="pasta=red;ns=s;soup=hot")[0] == 0
    assert run("keys", "kb")[1] == "r.pasta\ns.soup\n"
    assert run("--ns-delim", "/", "stream", input="meta:path=a/b;k=1")[0] == 0
    assert run("get", "a.b.k")[1] == "1"


def test_cli_value_limit(run):
    code, out, err = run(
        "stream", "--dry-run", input="meta:path=a.b;k=12345", env={"PRONTO_MAX_VALUE_BYTES": "4"}
    )
    assert code == 1 and "over the limit of 4 bytes" in err


def test_cli_help():
    result = CliRunner().invoke(cli, ["stream", "--help"])
    assert result.exit_code == 0 and "--dry-run" in result.stdout
