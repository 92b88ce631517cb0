"""SQLite schema: a new file created at the head revision, the fast check on open (anything
else goes to Alembic, :mod:`.migrate`), and the integrity check."""

from __future__ import annotations

import os
import sqlite3

from .base import SCHEMA_VERSION, user_problems
from .migrate import HEAD_REVISION, plan

API_KEYS_TABLE = """
CREATE TABLE IF NOT EXISTS personamem_api_keys (
    key_id     TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    name       TEXT NOT NULL,
    scope      TEXT NOT NULL,
    hash       TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION
)
"""
"""The service's API keys (:mod:`personamem.server.keys` creates it where a store has not yet,
e.g. ``personamem keys create`` before the first ``serve``); the same on SQLite and PostgreSQL."""

HEAD_SCHEMA = f"""
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
{API_KEYS_TABLE.strip()};
CREATE TABLE IF NOT EXISTS alembic_version (
    version_num VARCHAR(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
"""
"""The tables at :data:`~.migrate.HEAD_REVISION` (what the migrations from an empty file build;
tests/test_store_migrations.py compares them)."""


def prepare_database(conn: sqlite3.Connection, path: str) -> bool:
    """Create the tables of a new file at the head revision, or check an existing one is at head;
    inside the caller's write transaction. False when the file needs Alembic (an older revision,
    a file from before migrations, or a revision unknown here: :func:`.migrate.upgrade_sqlite`
    migrates or refuses it)."""
    tables = {
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND name IN ('meta', 'alembic_version')"
        )
    }
    if not tables:  # a new file (or one holding only API keys)
        for stmt in HEAD_SCHEMA.split(";"):
            if stmt.strip():
                conn.execute(stmt)
        conn.execute("INSERT INTO alembic_version(version_num) VALUES (?)", (HEAD_REVISION,))
    elif "alembic_version" not in tables:
        return False
    else:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        if row is None or row[0] != HEAD_REVISION:
            return False
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    plan(path, HEAD_REVISION, row[0] if row else None)  # refuses a newer store schema
    conn.executemany(
        "INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)",
        [("schema", str(SCHEMA_VERSION)), ("fingerprint_key", os.urandom(16).hex())],
    )
    return True


def check_database(conn: sqlite3.Connection) -> list[str]:
    """Integrity and invariant problems of the store (empty when consistent)."""
    problems: list[str] = []
    res = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    if res != ["ok"]:
        problems += [f"integrity: {r}" for r in res]
    problems += [
        f"foreign key: {tuple(r)}" for r in conn.execute("PRAGMA foreign_key_check").fetchall()
    ]
    users = conn.execute(
        "SELECT user_id, next_seq, cursor, cursor_part, head FROM users"
    ).fetchall()
    for u in users:
        uid = u["user_id"]
        numbering = conn.execute(
            "SELECT COUNT(*), MIN(seq), MAX(seq) FROM messages WHERE user_id = ?", (uid,)
        ).fetchone()
        nv, maxv = conn.execute(
            "SELECT COUNT(*), COALESCE(MAX(version), 0) FROM versions WHERE user_id = ?",
            (uid,),
        ).fetchone()
        head_found = conn.execute(
            "SELECT 1 FROM versions WHERE user_id = ? AND version = ?", (uid, u["head"])
        ).fetchone()
        consumed = conn.execute(
            "SELECT message_ids, report FROM versions WHERE user_id = ?"
            " AND source = 'update' ORDER BY version",
            (uid,),
        ).fetchall()
        msgs = conn.execute(
            "SELECT seq, role, content FROM messages WHERE user_id = ? ORDER BY seq", (uid,)
        ).fetchall()
        states = conn.execute("SELECT state FROM versions WHERE user_id = ?", (uid,)).fetchall()
        problems += user_problems(
            tuple(u),
            tuple(numbering),
            (nv, maxv, head_found is not None),
            [tuple(c) for c in consumed],
            [tuple(m) for m in msgs],
            [s[0] for s in states],
        )
    return problems


__all__ = ["HEAD_SCHEMA", "check_database", "prepare_database"]
