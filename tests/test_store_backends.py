"""The Store contract on both backends, SQLite and PostgreSQL: numbering and idempotent adds,
compare-and-swap commits, the lease, consistent snapshots, deletion, integrity checks, and the
whole memory API (scripted model for control flow) on top of each."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from memory_fakes import chat, echo_model
from pg_helpers import drop, pg_url

from personamem.store import (
    SCHEMA_VERSION,
    Conflict,
    Memory,
    NewMessage,
    NewVersion,
    SQLiteStore,
    Store,
    StoreError,
    UnknownUser,
)
from personamem.store.postgres import PostgresStore, split_url, upgrade


def msg(content: str, msg_id: str | None = None, role: str = "user") -> NewMessage:
    return NewMessage(msg_id=msg_id, role=role, content=content, tokens=len(content.split()))


def version(text: str = "- x", read: list[int] | None = None) -> NewVersion:
    if read is None:
        return NewVersion(source="edit", state='{"lines": []}', text=text)
    return NewVersion(source="update", state='{"lines": []}', text=text, message_ids=read)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
        return
    url = pg_url()
    yield url
    drop(url)


def open_url(url: str) -> Store:
    return PostgresStore(url) if url.startswith("postgresql") else SQLiteStore(url[10:])


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_url(store_url)
    yield s
    s.close()


def test_persistent_fingerprint_key(store_url: str) -> None:
    a = open_url(store_url)
    key = a.fingerprint_key()
    a.close()
    b = open_url(store_url)
    assert b.fingerprint_key() == key and len(key) == 16 and b.check() == []
    b.close()


def test_messages_numbered_per_user_and_idempotent(store: Store) -> None:
    assert store.add_messages("u", [msg("a", "1"), msg("b", "2")]) == ([0, 1], [])
    assert store.add_messages("u", [msg("b", "2"), msg("c"), msg("c2", "3"), msg("c3", "3")]) == (
        [2, 3],
        ["2", "3"],
    )
    assert store.add_messages("v", [msg("x")]) == ([0], [])
    assert [m.content for m in store.messages("u")] == ["a", "b", "c", "c2"]
    assert [m.seq for m in store.messages("u", seqs=[3, 0, 9])] == [0, 3]
    assert store.existing_seqs("u", [1, 5]) == {1}
    assert store.users() == ["u", "v"]
    assert store.user("u").messages == 4 and store.user("nobody") is None
    assert store.check() == []


def test_commit_is_compare_and_swap(store: Store) -> None:
    store.add_messages("u", [msg("a"), msg("b"), msg("c", role="system")])
    r1 = store.commit_version(
        "u", version("- one", read=[0, 1]), expect_head=0, expect_cursor=(0, 0), new_cursor=(2, 0)
    )
    assert (r1.version, r1.parent) == (1, 0)
    with pytest.raises(Conflict):
        store.commit_version("u", version(), expect_head=0)
    with pytest.raises(Conflict):
        store.commit_version("u", version(), expect_head=1, expect_cursor=(0, 0))
    with pytest.raises(StoreError):
        store.commit_version("u", version(), expect_head=1, new_cursor=(9, 0))
    with pytest.raises(UnknownUser):
        store.commit_version("ghost", version(), expect_head=0)
    r2 = store.commit_version("u", version("- two"), expect_head=1)
    info, head, pending = store.snapshot("u")
    assert info.head == 2 and head.text == "- two" and [m.seq for m in pending] == [2]
    assert [v.version for v in store.versions("u")] == [1, 2] and r2.parent == 1
    assert store.head("u").version == 2 and store.version("u", 1).text == "- one"
    store.advance_cursor("u", expect_cursor=(2, 0), new_cursor=(3, 0))
    assert store.user("u").cursor == 3
    with pytest.raises(Conflict):
        store.advance_cursor("u", expect_cursor=(2, 0), new_cursor=(3, 0))
    assert store.check() == []


def test_lease(store: Store) -> None:
    assert store.acquire("u", "w1", ttl=60)
    assert not store.acquire("u", "w2", ttl=60)
    assert store.acquire("u", "w1", ttl=60)  # re-entrant for its owner
    assert store.renew("u", "w1", 60) and not store.renew("u", "w2", 60)
    store.release("u", "w2")  # not the owner: nothing happens
    assert not store.acquire("u", "w2", ttl=60)
    store.release("u", "w1")
    assert store.acquire("u", "w2", ttl=0.01)
    import time

    time.sleep(0.05)
    assert store.acquire("u", "w3", ttl=60)  # expired


def test_delete_user_removes_everything(store: Store) -> None:
    store.add_messages("u", [msg("a"), msg("b")])
    store.commit_version("u", version(), expect_head=0)
    store.add_messages("keep", [msg("k")])
    counts = store.delete_user("u")
    assert counts["messages"] == 2 and counts["versions"] == 1 and counts["users"] == 1
    assert store.user("u") is None and store.messages("u") == [] and store.versions("u") == []
    assert store.users() == ["keep"] and store.check() == []


def test_two_threads_add_to_one_user(store_url: str) -> None:
    s = open_url(store_url)
    errors: list[BaseException] = []

    def add(prefix: str) -> None:
        try:
            for i in range(20):
                s.add_messages("u", [msg(f"{prefix}{i}", f"{prefix}{i}")])
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=add, args=(p,)) for p in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [m.seq for m in s.messages("u")] == list(range(40)) and s.check() == []
    s.close()


def test_memory_api_on_each_backend(store_url: str) -> None:
    store = open_url(store_url)
    mem = Memory(
        store, model=echo_model(), strategy="extract", chunk_tokens=40, memory_tokens=100000
    )
    r = mem.add(chat(12), "alice")
    assert r.stored == list(range(12)) and r.versions
    mem.flush("alice")
    got = mem.get("alice")
    assert got.lines and got.pending_messages == 0
    for line in mem.sources("alice"):
        assert line.sources and line.text.split()[1] in line.sources[0].content
    mem.edit("alice", got.text + "\n- Owns a cat")
    mem.forget("alice", "the cat")
    assert "cat" not in mem.get("alice").text
    mem.undo("alice")
    assert "cat" in mem.get("alice").text
    hist = mem.history("alice")
    assert [v.source for v in hist][-3:] == ["edit", "forget", "undo"] and hist[-1].diff
    exp = mem.export("alice")
    assert len(exp["messages"]) == 12 and exp["user"]["user_id"] == "alice"
    assert store.check() == []
    mem.delete_user("alice")
    with pytest.raises(UnknownUser):
        mem.get("alice")
    mem.close()


def test_postgres_url_options() -> None:
    assert split_url("postgresql://h/db?schema=s1&sslmode=disable") == (
        "postgresql://h/db?sslmode=disable",
        "s1",
    )
    assert split_url("postgresql://h/db") == ("postgresql://h/db", None)
    with pytest.raises(StoreError):
        split_url("postgresql://h/db?schema=bad;drop")
    with pytest.raises(StoreError, match="cannot connect"):
        PostgresStore("postgresql://postgres@127.0.0.1:1/test", connect_timeout=2)


def test_postgres_schema_comes_from_alembic_migrations() -> None:
    url = pg_url()
    try:
        store = PostgresStore(url)
        assert store._query("SELECT version_num FROM alembic_version") == [("0002",)]
        assert store._query("SELECT value FROM meta WHERE key = 'schema'") == [
            (str(SCHEMA_VERSION),)
        ]
        store.add_messages("u", [msg("kept")])
        store.close()
        PostgresStore(url).close()  # opening again is a no-op migration that keeps the data
        again = PostgresStore(url)
        assert [m.content for m in again.messages("u")] == ["kept"]
        again.close()
        dsn, schema = split_url(url)
        upgrade(dsn, schema, "base")
        import psycopg

        with psycopg.connect(dsn) as conn:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            ).fetchall()
        assert tables == [("alembic_version",)]
        upgrade(dsn, schema)
        fresh = PostgresStore(url)
        assert fresh.users() == [] and fresh.check() == []
        fresh.close()
    finally:
        drop(url)


def test_postgres_newer_database_is_refused() -> None:
    url = pg_url()
    try:
        store = PostgresStore(url)
        store._query(
            "UPDATE meta SET value = %s WHERE key = 'schema' RETURNING key",
            (str(SCHEMA_VERSION + 1),),
        )
        store.close()
        with pytest.raises(StoreError, match="newer personamem"):
            PostgresStore(url)
    finally:
        drop(url)


def test_postgres_schema_1_is_migrated() -> None:
    """A database as schema 1 left it (Alembic at 0001, a cursor counted in parts) opens as
    schema 2 with the part position reset to the message's start: nothing skipped."""
    url = pg_url()
    try:
        opts = {"strategy": "extract", "chunk_tokens": 40, "memory_tokens": 400}
        with Memory(PostgresStore(url), model=echo_model(), **opts) as mem:
            mem.add([{"role": "user", "content": "I grow tomatoes. " * 40}], "u")
        dsn, schema = split_url(url)
        upgrade(dsn, schema, "-1")  # Alembic back to 0001
        with psycopg_conn(url) as conn:  # as schema 1 left it: a cursor counted in parts
            assert conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == "1"
            conn.execute("UPDATE users SET cursor_part = 2")
        store = PostgresStore(url)
        assert store._query("SELECT value FROM meta WHERE key='schema'") == [("2",)]
        info = store.user("u")
        assert info is not None and info.cursor_part == 0
        store.close()
    finally:
        drop(url)


def psycopg_conn(url: str):  # noqa: ANN201 - a psycopg connection in the store's schema
    import psycopg

    dsn, schema = split_url(url)
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute(f'SET search_path TO "{schema}"')
    return conn


KILLED_WRITER = """
import sys
sys.path.insert(0, {tests!r})
from memory_fakes import chat, echo_model
from personamem.store import Memory
from personamem.store.postgres import PostgresStore
url, signal = sys.argv[1:3]
mem = Memory(PostgresStore(url), model=echo_model(slow=60, signal_file=signal),
             strategy="extract", chunk_tokens=40, memory_tokens=400)
mem.add(chat(12, start=12), "u")
"""


def test_kill_9_during_a_postgres_update_loses_nothing(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    url = pg_url()
    try:
        opts = {"strategy": "extract", "chunk_tokens": 40, "memory_tokens": 400}
        fast = Memory(PostgresStore(url), model=echo_model(), **opts)
        fast.add(chat(12), "u")
        before = fast.get("u")
        assert before.version >= 1 and before.pending_messages > 0
        fast.close()
        started = tmp_path / "started"
        script = tmp_path / "writer.py"
        tests = Path(__file__).parent
        script.write_text(KILLED_WRITER.format(tests=str(tests)))
        env = {**os.environ, "PYTHONPATH": str(tests.parent)}
        proc = subprocess.Popen([sys.executable, str(script), url, str(started)], env=env)
        deadline = time.monotonic() + 60
        while not started.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "writer never started"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # inside the model call, holding the lease
        proc.wait()
        mem = Memory(PostgresStore(url), model=echo_model(), lock_timeout=5, **opts)
        assert mem.store.check() == []
        after = mem.get("u")
        assert after.version == before.version and after.text == before.text
        assert after.messages == 24 and after.pending_messages == before.pending_messages + 12
        assert mem.flush("u")  # the dead writer's lease is taken over
        read = [i for v in mem.history("u") if v.source == "update" for i in v.message_ids]
        assert sorted(read) == list(range(24)) and mem.store.check() == []
        mem.close()
    finally:
        drop(url)
