"""The SQLite store: schema, transactions, the update lease, crash safety and concurrent writers."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from memory_fakes import chat, echo_model

from personamem.store import (
    Conflict,
    Memory,
    NewMessage,
    NewVersion,
    SQLiteStore,
    StoreError,
    UnknownUser,
    open_store,
)

TESTS = Path(__file__).parent
ROOT = TESTS.parent


def msg(content: str, msg_id: str | None = None, role: str = "user") -> NewMessage:
    return NewMessage(msg_id=msg_id, role=role, content=content, tokens=len(content.split()))


def version(text: str = "- x", read: list[int] | None = None) -> NewVersion:
    if read is None:
        return NewVersion(source="edit", state='{"lines": []}', text=text)
    return NewVersion(source="update", state='{"lines": []}', text=text, message_ids=read)


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "m.db")
    yield s
    s.close()


# --- schema and messages -----------------------------------------------------------------------
def test_wal_mode_and_persistent_key(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "a.db")
    key = s.fingerprint_key()
    assert s._conn().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    s.close()
    s2 = SQLiteStore(tmp_path / "a.db")
    assert s2.fingerprint_key() == key and len(key) == 16
    assert s2.check() == []


def test_messages_numbered_per_user_and_idempotent(store: SQLiteStore) -> None:
    seqs, dups = store.add_messages("a", [msg("one", "x"), msg("two", "y"), msg("one again", "x")])
    assert seqs == [0, 1] and dups == ["x"]
    seqs, dups = store.add_messages("a", [msg("two", "y"), msg("three", "z"), msg("no id")])
    assert seqs == [2, 3] and dups == ["y"]
    assert store.add_messages("b", [msg("b's first", "x")]) == ([0], [])  # ids are per user
    assert [m.msg_id for m in store.messages("a")] == ["x", "y", "z", "#3"]
    assert [m.content for m in store.messages("a", seqs=[3, 0, 99])] == ["one", "no id"]
    info = store.user("a")
    assert info is not None and info.messages == 4 and info.cursor == 0 and info.head == 0
    assert store.users() == ["a", "b"]


def test_commit_is_compare_and_swap(store: SQLiteStore) -> None:
    store.add_messages("a", [msg(f"m{i}") for i in range(5)])
    v1 = store.commit_version(
        "a",
        version("- one", read=[0, 1, 2]),
        expect_head=0,
        expect_cursor=(0, 0),
        new_cursor=(3, 0),
    )
    assert v1.version == 1 and v1.parent == 0
    with pytest.raises(Conflict):  # head moved
        store.commit_version("a", version(), expect_head=0)
    with pytest.raises(Conflict):  # cursor moved
        store.commit_version("a", version(), expect_head=1, expect_cursor=(0, 0), new_cursor=(5, 0))
    with pytest.raises(StoreError):  # beyond the stored messages
        store.commit_version("a", version(), expect_head=1, expect_cursor=(3, 0), new_cursor=(9, 0))
    with pytest.raises(StoreError):  # backwards
        store.commit_version("a", version(), expect_head=1, expect_cursor=(3, 0), new_cursor=(2, 0))
    v2 = store.commit_version("a", version("- two"), expect_head=1)
    info = store.user("a")
    assert info is not None and (info.head, info.cursor) == (2, 3)
    assert [v.version for v in store.versions("a")] == [1, 2] and v2.parent == 1
    assert store.head("a").text == "- two"  # type: ignore[union-attr]
    with pytest.raises(UnknownUser):
        store.commit_version("nobody", version(), expect_head=0)
    assert store.check() == []


def test_failed_transaction_leaves_nothing(store: SQLiteStore) -> None:
    store.add_messages("a", [msg("hello")])
    with pytest.raises(RuntimeError), store._write() as conn:
        conn.execute("UPDATE users SET head = 7 WHERE user_id = 'a'")
        raise RuntimeError("crash inside the transaction")
    assert store.user("a").head == 0  # type: ignore[union-attr]
    assert store.check() == []


def test_lease(store: SQLiteStore) -> None:
    assert store.acquire("a", "w1", ttl=60)
    assert store.acquire("a", "w1", ttl=60)  # re-entrant for its owner
    assert not store.acquire("a", "w2", ttl=60)
    assert store.renew("a", "w1", ttl=60) and not store.renew("a", "w2", ttl=60)
    store.release("a", "w2")  # not the owner: no effect
    assert not store.acquire("a", "w2", ttl=60)
    store.release("a", "w1")
    assert store.acquire("a", "w2", ttl=0.05)
    time.sleep(0.1)
    assert store.acquire("a", "w3", ttl=60)  # expired


def test_lease_of_a_dead_process_is_taken_over(store: SQLiteStore) -> None:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    import socket

    with store._write() as conn:
        conn.execute(
            "INSERT INTO locks VALUES ('a', 'dead', ?, ?, ?)", (socket.gethostname(), p.pid, 1e12)
        )
    assert store.acquire("a", "alive", ttl=60)


def test_delete_user_removes_everything(store: SQLiteStore, tmp_path: Path) -> None:
    store.add_messages("a", [msg("my secret life", "1")])
    store.add_messages("b", [msg("b stays", "1")])
    store.commit_version("a", version("- a fact"), expect_head=0)
    store.acquire("a", "w", ttl=60)
    counts = store.delete_user("a")
    assert counts["messages"] == 1 and counts["versions"] == 1 and counts["users"] == 1
    assert store.user("a") is None and store.messages("a") == [] and store.versions("a") == []
    assert [m.content for m in store.messages("b")] == ["b stays"]
    assert store.check() == []
    store.close()
    raw = b"".join(f.read_bytes() for f in tmp_path.glob("m.db*"))
    assert b"my secret life" not in raw  # secure_delete + WAL checkpoint


def test_check_finds_broken_invariants(store: SQLiteStore) -> None:
    store.add_messages("a", [msg("x")])
    with store._write() as conn:
        conn.execute("UPDATE users SET head = 3, cursor = 5 WHERE user_id = 'a'")
    problems = store.check()
    assert any("head v3 missing" in p for p in problems)
    assert any("cursor 5" in p for p in problems)


def test_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert open_store("sqlite:///rel.db").path == "rel.db"  # type: ignore[attr-defined]
    abs_path = tmp_path / "abs.db"
    assert open_store(f"sqlite:///{abs_path}").path == str(abs_path)  # type: ignore[attr-defined]
    s = open_store("sqlite:///n.db?synchronous=normal")
    assert s._conn().execute("PRAGMA synchronous").fetchone()[0] == 1  # type: ignore[attr-defined]
    for bad in ("postgresql://u@h/db", "mysql://x", "sqlite:///x.db?foo=1"):
        with pytest.raises(StoreError):
            open_store(bad)


# --- crash safety ------------------------------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {tests!r})
    from memory_fakes import chat, echo_model
    from personamem.store import Memory
    db, mode = sys.argv[1], sys.argv[2]
    if mode == "slow":
        mem = Memory("sqlite:///" + db, model=echo_model(slow=120, signal_file=db + ".signal"),
                     strategy="extract", chunk_tokens=40, memory_tokens=400)
        mem.add(chat(12, start=100), "u")
    else:  # many fast updates until killed
        mem = Memory("sqlite:///" + db, model=echo_model(), strategy="extract", chunk_tokens=40,
                     memory_tokens=100000)
        open(db + ".signal", "w").write("ready")
        for i in range(0, 4000, 4):
            mem.add(chat(4, start=i), "u")
    """
).format(tests=str(TESTS))


def _spawn(db: Path, mode: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{TESTS}"}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), mode],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child exited early: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        if time.time() > deadline:
            proc.kill()
            raise AssertionError("child never started its update")
        time.sleep(0.02)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_kill_9_during_an_update_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    fast = Memory(
        f"sqlite:///{db}",
        model=echo_model(),
        strategy="extract",
        chunk_tokens=40,
        memory_tokens=400,
    )
    fast.add(chat(12), "u")
    before = fast.get("u")
    assert before.version >= 1 and before.pending_messages > 0
    fast.close()

    proc = _spawn(db, "slow")
    _wait_for(Path(f"{db}.signal"), proc)  # the child is inside the model call
    _kill(proc)

    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    mem = Memory(
        f"sqlite:///{db}",
        model=echo_model(),
        strategy="extract",
        chunk_tokens=40,
        memory_tokens=400,
        lock_timeout=5,
    )
    assert mem.store.check() == []
    after = mem.get("u")
    assert after.version == before.version and after.text == before.text  # last committed
    assert after.messages == 24  # the child's messages were committed before its update
    assert after.pending_messages == before.pending_messages + 12  # ... and are still pending
    # Retry: the dead worker's lease is taken over and the update goes through.
    versions = mem.flush("u")
    assert versions and mem.get("u").pending_messages == 0
    read = [i for v in mem.history("u") if v.source == "update" for i in v.message_ids]
    assert sorted(read) == list(range(24))  # every message read exactly once
    assert mem.store.check() == []
    mem.close()


def test_kill_9_at_random_moments(tmp_path: Path) -> None:
    """Kill a writer doing many small updates at arbitrary moments (mid-commit included)."""
    db = tmp_path / "r.db"
    versions_seen: list[int] = []
    for attempt, delay in enumerate((0.3, 0.55, 0.8, 1.1)):
        sig = Path(f"{db}.signal")
        sig.unlink(missing_ok=True)
        proc = _spawn(db, "fast")
        _wait_for(sig, proc)
        time.sleep(delay)
        _kill(proc)
        mem = Memory(
            f"sqlite:///{db}",
            model=echo_model(),
            strategy="extract",
            chunk_tokens=40,
            memory_tokens=100000,
        )
        assert mem.store.check() == [], attempt
        versions_seen.append(len(mem.store.versions("u")))
        info = mem.get("u")
        head = mem.store.head("u")
        if head is not None:
            assert head.text == info.text and json.loads(head.state)
        # Retrying the same messages is idempotent: only the missing ones are stored.
        res = mem.add(chat(8), "u", update=False)
        assert len(res.stored) + len(res.duplicates) == 8
        mem.flush("u")
        assert mem.get("u").pending_messages == 0 and mem.store.check() == []
        mem.close()
    assert versions_seen[-1] > versions_seen[0] > 0, versions_seen  # it was killed mid-work


# --- concurrent writers ------------------------------------------------------------------------
def _assert_linear_and_complete(mem: Memory, n_messages: int) -> None:
    assert mem.store.check() == []
    info = mem.get("u")
    assert info.messages == n_messages and info.pending_messages == 0
    versions = mem.history("u")
    assert [v.version for v in versions] == list(range(1, len(versions) + 1))
    assert all(v.parent == v.version - 1 for v in versions)  # no update built on a stale head
    read = [i for v in versions for i in v.message_ids]
    user_seqs = [m.seq for m in mem.store.messages("u") if m.role == "user"]
    assert sorted(read) == sorted(set(read)) and set(user_seqs) <= set(read)
    cited = {i for ln in info.lines for i in ln.sources}
    assert set(user_seqs) == cited  # every user message made it into the memory: no lost update


def test_two_threads_add_to_one_user(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    mems = [
        Memory(
            db,
            model=echo_model(slow=0.01),
            strategy="extract",
            chunk_tokens=40,
            memory_tokens=100000,
        )
        for _ in range(2)
    ]
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for b in range(8):
                mems[k].add(chat(4, start=1000 * k + 4 * b, prefix=f"w{k}-"), "u")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    mems[0].flush("u")
    _assert_linear_and_complete(mems[0], 64)
    for m in mems:
        m.close()


WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from memory_fakes import chat, echo_model
    from personamem.store import Memory
    db, k = sys.argv[1], int(sys.argv[2])
    mem = Memory("sqlite:///" + db, model=echo_model(slow=0.01), strategy="extract",
                 chunk_tokens=40, memory_tokens=100000)
    for b in range(6):
        mem.add(chat(4, start=1000 * k + 4 * b, prefix="p%d-" % k), "u")
    """
).format(tests=str(TESTS))


def test_two_processes_add_to_one_user(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    SQLiteStore(db).close()
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{TESTS}"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), str(k)], env=env, stderr=subprocess.PIPE
        )
        for k in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]
    mem = Memory(
        f"sqlite:///{db}",
        model=echo_model(),
        strategy="extract",
        chunk_tokens=40,
        memory_tokens=100000,
    )
    mem.flush("u")
    _assert_linear_and_complete(mem, 48)
    mem.close()


def test_check_finds_a_message_never_read(store: SQLiteStore) -> None:
    store.add_messages("a", [msg("I keep bees."), msg("Hi", role="system"), msg("I sail.")])
    store.commit_version(
        "a", version("- bees", read=[0]), expect_head=0, expect_cursor=(0, 0), new_cursor=(2, 0)
    )
    assert store.check() == []  # the system message is never read
    store.advance_cursor("a", expect_cursor=(2, 0), new_cursor=(3, 0))  # skips "I sail."
    assert store.check() == ["a: message 2 was never read into the memory"]


def test_check_finds_part_of_a_message_never_read(store: SQLiteStore) -> None:
    text = "I keep bees. " * 10
    store.add_messages("a", [msg(text)])
    read = version("- bees", read=[0])
    read.report = {"read": [[0, 0, 26]]}
    store.commit_version("a", read, expect_head=0, expect_cursor=(0, 0), new_cursor=(0, 52))
    assert store.check() == ["a: characters 26-52 of message 0 were never read"]
