"""Store-side reliability (issue 13): every text through the privacy guard, no shared state
between stores, every write under the user's lease, the schema version, no CPU work on the loop."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path

import pytest
from memory_fakes import chat, echo_model

import personamem.store.core as core
from personamem.memory import PrivacyGuard, Redaction
from personamem.store import (
    SCHEMA_VERSION,
    AsyncMemory,
    LeaseLost,
    Memory,
    MemoryBusy,
    SQLiteStore,
    StoreError,
    UpdateFailed,
)

EMAIL = "emily.rose@example.org"


def db(tmp_path: Path, name: str = "m.db") -> str:
    return f"sqlite:///{tmp_path / name}"


def test_forget_text_goes_through_the_privacy_guard(tmp_path: Path) -> None:
    with Memory(db(tmp_path), echo_model(), 200, 500, strategy="extract") as mem:
        mem.add(chat(4), "u")
        mem.flush("u")
        info = mem.forget("u", f"forget that my email is {EMAIL} for the pottery class")
        assert EMAIL not in info.note and "[REDACTED email]" in info.note
        assert all(EMAIL not in f for f in mem.get("u").forgotten)
        export = mem.export("u")
        assert EMAIL not in json.dumps(export)
        assert any(r["location"] == "forget" for r in export["redactions"])
    raw = b"".join(f.read_bytes() for f in tmp_path.glob("m.db*"))
    assert EMAIL.encode() not in raw


def test_one_guard_shared_by_two_stores(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    guard = PrivacyGuard(on_redact=lambda r, where: seen.append((r.kind, where)))
    key = guard.key
    a = Memory(db(tmp_path, "a.db"), echo_model(), privacy=guard)
    b = Memory(db(tmp_path, "b.db"), echo_model(), privacy=guard)
    try:
        assert guard.key == key  # the caller's guard is not changed
        a.add(f"Write to me at {EMAIL} please.", "u", update=False)
        assert seen == [("email", "message")]  # the caller's hook: once, not once per store
        assert len(a.export("u")["redactions"]) == 1  # logged once, by the store that saw it
        b.add("nothing secret here", "v", update=False)
        assert b.export("v")["redactions"] == []
        fa = a.export("u")["redactions"][0]["fingerprint"]
        assert a.store.fingerprint_key() != b.store.fingerprint_key()
        b.add(f"Mine is {EMAIL} too.", "v", update=False)
        fb = b.export("v")["redactions"][0]["fingerprint"]
        assert fa != fb  # each store keys fingerprints with its own key
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("write", ["forget", "edit", "undo"])
def test_person_writes_wait_for_the_lease(tmp_path: Path, write: str) -> None:
    with Memory(db(tmp_path), echo_model(), 200, 500, lock_timeout=0.3) as mem:
        mem.add("I like green tea.", "u", update=False)
        mem.edit("u", "- Likes green tea")
        assert mem.store.acquire("u", "another-worker", 60)
        with pytest.raises(MemoryBusy):
            if write == "forget":
                mem.forget("u", "green tea")
            elif write == "edit":
                mem.edit("u", "- Likes black tea")
            else:
                mem.undo("u")
        assert len(mem.history("u")) == 1  # nothing was written
        mem.store.release("u", "another-worker")
        assert mem.edit("u", "- Likes black tea").version == 2


def test_losing_the_lease_aborts_the_update(tmp_path: Path) -> None:
    with Memory(db(tmp_path), echo_model(), 30, 5000, strategy="extract") as mem:
        store = mem.store
        stolen = threading.Event()
        real_renew = store.renew

        def renew(user_id: str, owner: str, ttl: float) -> bool:
            if stolen.is_set():  # another worker took over (our lease had expired)
                return False
            return real_renew(user_id, owner, ttl)

        store.renew = renew  # type: ignore[method-assign]
        mem.add(chat(6), "u", update=False)
        stolen.set()
        with pytest.raises(UpdateFailed) as failed:
            mem.add(chat(6, start=6), "u")
        assert isinstance(failed.value.__cause__, LeaseLost)
        assert mem.store.versions("u") == []
        assert mem.get("u").pending_messages == 12
        stolen.clear()
        mem.flush("u")
        assert mem.get("u").pending_messages == 0 and store.check() == []


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "m.db").close()
    with sqlite3.connect(tmp_path / "m.db") as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match="newer personamem"):
        SQLiteStore(tmp_path / "m.db")


def test_an_older_database_is_migrated(tmp_path: Path) -> None:
    with Memory(db(tmp_path), echo_model(), 30, 5000, strategy="extract") as mem:
        mem.add(chat(8), "u")
    with sqlite3.connect(tmp_path / "m.db") as conn:  # as schema 1 left it: a cursor in parts
        conn.execute("DROP TABLE alembic_version")  # (from before migrations)
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
        conn.execute("UPDATE users SET cursor_part = 2")
    store = SQLiteStore(tmp_path / "m.db")
    with sqlite3.connect(tmp_path / "m.db") as conn:
        assert conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == "2"
    info = store.user("u")
    assert info is not None and info.cursor_part == 0  # re-read from the start: nothing skipped
    store.close()


def test_cpu_work_runs_off_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: dict[str, set[str]] = {"redact": set(), "load": set()}
    model = echo_model()

    def load(spec: str) -> object:
        threads["load"].add(threading.current_thread().name)
        return model

    def hook(r: Redaction, where: str) -> None:
        threads["redact"].add(threading.current_thread().name)

    monkeypatch.setattr(core, "get_model", load)

    async def main() -> str:
        mem = AsyncMemory(
            db(tmp_path), "scripted-spec", 200, 500, privacy=PrivacyGuard(on_redact=hook)
        )
        await mem.add(f"Mail me at {EMAIL}.", "u", update=False)
        await mem.answer("u", "Tea or coffee?", options=["Tea", "Coffee"])
        mem.close()
        return threading.current_thread().name

    loop_thread = asyncio.run(main())
    assert threads["redact"] and loop_thread not in threads["redact"]
    assert threads["load"] and loop_thread not in threads["load"]
