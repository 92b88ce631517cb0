"""The SQLite store's schema under Alembic (personamem/store/migrations, shared with PostgreSQL):
a file from before migrations is upgraded in place with its data intact, a file newer than the
code is refused, a new file is created at head without Alembic, and that head equals the
migrations run from an empty file."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from memory_fakes import chat, echo_model, word
from typer.testing import CliRunner

from personamem.cli import app
from personamem.store import SCHEMA_VERSION, Memory, SQLiteStore, StoreError
from personamem.store.migrate import HEAD_REVISION, alembic_head, current_url, upgrade_sqlite

OLD_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    user_id    TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    next_seq   INTEGER NOT NULL DEFAULT 0,
    cursor     INTEGER NOT NULL DEFAULT 0,
    cursor_part INTEGER NOT NULL DEFAULT 0,
    head       INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS messages (
    user_id    TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    msg_id     TEXT NOT NULL,
    role       TEXT NOT NULL,
    content    TEXT NOT NULL,
    tokens     INTEGER NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (user_id, seq),
    UNIQUE (user_id, msg_id)
);
CREATE TABLE IF NOT EXISTS versions (
    user_id        TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    version        INTEGER NOT NULL,
    parent         INTEGER NOT NULL,
    restores       INTEGER,
    source         TEXT NOT NULL,
    state          TEXT NOT NULL,
    text           TEXT NOT NULL,
    model          TEXT,
    prompt_version TEXT,
    message_ids    TEXT NOT NULL,
    chunk_tokens   INTEGER NOT NULL,
    tokens_in      INTEGER NOT NULL,
    tokens_out     INTEGER NOT NULL,
    memory_tokens  INTEGER NOT NULL,
    seconds        REAL NOT NULL,
    note           TEXT NOT NULL,
    warnings       TEXT NOT NULL,
    report         TEXT NOT NULL,
    created_at     REAL NOT NULL,
    PRIMARY KEY (user_id, version)
);
CREATE TABLE IF NOT EXISTS redactions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    at          REAL NOT NULL,
    location    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    start_pos   INTEGER,
    end_pos     INTEGER,
    seq         INTEGER,
    version     INTEGER
);
CREATE INDEX IF NOT EXISTS redactions_user ON redactions(user_id, id);
CREATE TABLE IF NOT EXISTS locks (
    user_id TEXT PRIMARY KEY,
    owner   TEXT NOT NULL,
    host    TEXT NOT NULL,
    pid     INTEGER NOT NULL,
    expires REAL NOT NULL
);
"""
"""The SQLite schema as personamem created it before Alembic (store schema 2), frozen here."""

STORE_TABLES = ("users", "messages", "versions", "redactions", "locks", "meta")
LONG = " ".join(f"I enjoy {word(i)} {word(i + 100)} {word(i + 200)}." for i in range(16))
EMAIL = "emily.rose@example.org"


def rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the store's tables, in storage order."""
    with sqlite3.connect(path) as conn:
        return {
            t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in STORE_TABLES
        }


def revision(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def reads(store: SQLiteStore) -> dict[str, Any]:
    """Everything the store API reads back."""
    out: dict[str, Any] = {"users": store.users(), "key": store.fingerprint_key()}
    for u in store.users():
        out[u] = (
            store.user(u),
            store.messages(u),
            store.versions(u),
            store.redactions(u),
            store.head(u),
        )
    return out


def populate(url: str) -> None:
    """Users with messages, update versions, an edit, a forget (redactions), a message cut
    mid-way (a character cursor inside it), and one pending message."""
    with Memory(url, echo_model(), 40, 5000, strategy="extract") as mem:
        mem.add(chat(8), "alice")
        mem.add(f"My email is {EMAIL} and I grow tomatoes.", "alice")
        mem.forget("alice", "tomatoes")
        mem.edit("alice", "- Enjoys tea")
        mem.add(chat(4, prefix="b"), "bob", update=False)
    with Memory(url, echo_model(), 40, 5000, strategy="select", notes=False) as mem:
        mem.add([{"role": "user", "content": LONG}], user_id="carol")


def legacy_file(tmp_path: Path) -> Path:
    """A store file as personamem wrote it before migrations: the old DDL, meta schema 2, no
    alembic_version, holding the rows of a populated store."""
    src = tmp_path / "src.db"
    populate(f"sqlite:///{src}")
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:
        conn.executescript(OLD_DDL)
        conn.execute("ATTACH DATABASE ? AS src", (str(src),))
        for table in STORE_TABLES:
            conn.execute(f"INSERT INTO {table} SELECT * FROM src.{table}")
        conn.commit()
        conn.execute("DETACH DATABASE src")
    return old


def test_a_file_from_before_migrations_is_upgraded_in_place(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = legacy_file(tmp_path)
    before = rows(old)
    assert dict(before["meta"])["schema"] == "2"
    carol = [r for r in before["users"] if r[0] == "carol"][0]
    assert carol[4] > 0  # a cursor inside a message, in characters: must survive as it is
    assert before["versions"] and before["redactions"] and len(before["users"]) == 3
    expected = reads(src := SQLiteStore(tmp_path / "src.db"))
    src.close()
    with caplog.at_level(logging.WARNING, logger="personamem.store"):
        store = SQLiteStore(old)
    assert f"from schema 2 (before migrations) to {HEAD_REVISION}" in caplog.text
    assert reads(store) == expected
    assert store.check() == []
    store.close()
    assert rows(old) == before  # nothing lost or changed
    assert revision(old) == HEAD_REVISION
    with (
        Memory(f"sqlite:///{old}", echo_model(), 40, 5000) as a,
        Memory(f"sqlite:///{tmp_path / 'src.db'}", echo_model(), 40, 5000) as b,
    ):
        for u in ("alice", "bob", "carol"):
            assert a.get(u) == b.get(u)
            assert a.history(u) == b.history(u)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="personamem.store"):
        SQLiteStore(old).close()  # at head now: no second migration
    assert caplog.text == ""


def test_the_cli_upgrades_and_prints_the_revisions(tmp_path: Path) -> None:
    old = legacy_file(tmp_path)
    before = rows(old)
    url = f"sqlite:///{old}"
    runner = CliRunner()
    res = runner.invoke(app, ["db", "current", "--db", url])
    assert res.exit_code == 0 and "schema 2 (before migrations)" in res.stdout
    res = runner.invoke(app, ["db", "upgrade", "--db", url])
    assert res.exit_code == 0, res.output
    assert "before: schema 2 (before migrations)" in res.stdout
    assert f"after:  {HEAD_REVISION} (head)" in res.stdout
    assert rows(old) == before and revision(old) == HEAD_REVISION
    res = runner.invoke(app, ["db", "upgrade", "--db", url])
    assert res.exit_code == 0 and "nothing changed" in res.stdout
    assert current_url(url) == f"{HEAD_REVISION} (head)"


def test_a_file_at_an_unknown_newer_revision_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with Memory(f"sqlite:///{path}", echo_model(), 40, 5000, strategy="extract") as mem:
        mem.add(chat(4), "u")
    with sqlite3.connect(path) as conn:  # as a later personamem would leave it
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
    before = rows(path)
    with pytest.raises(StoreError) as refused:
        SQLiteStore(path)
    msg = str(refused.value)
    assert "newer personamem" in msg and "schema revision 0099" in msg
    assert f"up to {HEAD_REVISION}" in msg and "pip install -U personamem" in msg
    res = CliRunner().invoke(app, ["db", "upgrade", "--db", f"sqlite:///{path}"])
    assert res.exit_code == 1 and "schema revision 0099" in " ".join(res.output.split())
    assert rows(path) == before and revision(path) == "0099"  # left as it was


def test_a_new_file_is_created_at_head_without_alembic(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    code = (
        "import sys; from personamem.store import SQLiteStore\n"
        f"SQLiteStore({str(path)!r}).close(); SQLiteStore({str(path)!r}).close()\n"
        "print(sorted(m for m in ('alembic', 'sqlalchemy') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]", out.stderr  # no Alembic import on the fast path
    assert revision(path) == HEAD_REVISION == alembic_head()
    assert dict(rows(path)["meta"])["schema"] == str(SCHEMA_VERSION)
    assert current_url(f"sqlite:///{path}") == f"{HEAD_REVISION} (head)"


def structure(path: Path) -> dict[str, Any]:
    """Tables, columns, keys and indexes of a SQLite file."""
    with sqlite3.connect(path) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        out: dict[str, Any] = {}
        for t in names:
            indexes = conn.execute(f"PRAGMA index_list({t})").fetchall()
            out[t] = {
                "columns": conn.execute(f"PRAGMA table_info({t})").fetchall(),
                "foreign keys": conn.execute(f"PRAGMA foreign_key_list({t})").fetchall(),
                "indexes": sorted(
                    (i[1], i[2], i[3], conn.execute(f"PRAGMA index_info({i[1]})").fetchall())
                    for i in indexes
                ),
            }
        return out


def test_the_head_schema_is_what_the_migrations_build(tmp_path: Path) -> None:
    assert alembic_head() == HEAD_REVISION
    assert upgrade_sqlite(str(tmp_path / "migrated.db")) == (
        "empty (no store tables)",
        f"{HEAD_REVISION} (head)",
    )
    SQLiteStore(tmp_path / "created.db").close()
    assert structure(tmp_path / "migrated.db") == structure(tmp_path / "created.db")
    store = SQLiteStore(tmp_path / "migrated.db")  # a migrated file opens as a store
    store.add_messages("u", [])
    assert store.users() == ["u"] and store.check() == []
    store.close()


# --- PostgreSQL: the same migrations and checks ------------------------------------------------
def test_postgres_cli_upgrade_and_an_unknown_newer_revision() -> None:
    import psycopg
    from pg_helpers import drop, pg_url

    from personamem.store.postgres import PostgresStore, split_url

    url = pg_url()
    runner = CliRunner()
    try:
        res = runner.invoke(app, ["db", "upgrade", "--db", url])
        assert res.exit_code == 0, res.output
        assert "before: empty (no store tables)" in res.stdout
        assert f"after:  {HEAD_REVISION} (head)" in res.stdout
        assert current_url(url) == f"{HEAD_REVISION} (head)"
        store = PostgresStore(url)
        store.add_messages("u", [])
        store.close()
        dsn, schema = split_url(url)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"UPDATE \"{schema}\".alembic_version SET version_num = '0099'")
        with pytest.raises(StoreError, match="newer personamem.*schema revision 0099"):
            PostgresStore(url)
        res = runner.invoke(app, ["db", "upgrade", "--db", url])
        assert res.exit_code == 1 and "schema revision 0099" in " ".join(res.output.split())
        assert current_url(url) == "0099"
    finally:
        drop(url)


def test_a_file_holding_only_api_keys_gets_the_store_at_head(tmp_path: Path) -> None:
    from personamem.server import KeyStore

    url = f"sqlite:///{tmp_path / 'service.db'}"
    keys = KeyStore(url)  # `personamem keys create` before the first `personamem serve`
    key = keys.create("acme")
    keys.close()
    SQLiteStore(tmp_path / "service.db").close()
    assert revision(tmp_path / "service.db") == HEAD_REVISION
    keys = KeyStore(url)
    assert [k.key_id for k in keys.list()] == [key.key_id]
    keys.close()
