"""SQLite schema: creation, version check and migration, and the integrity check."""

from __future__ import annotations

import os
import sqlite3

from .base import SCHEMA_VERSION, StoreError, user_problems

_SCHEMA = """
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


def prepare_database(conn: sqlite3.Connection, path: str) -> None:
    """Create the tables of a new database, or check (and migrate) an existing one's schema
    version; inside the caller's write transaction."""
    for stmt in _SCHEMA.split(";"):
        if stmt.strip():
            conn.execute(stmt)
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    fresh = row is None
    if fresh:
        conn.execute("INSERT INTO meta(key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
    conn.execute(
        "INSERT OR IGNORE INTO meta(key, value) VALUES ('fingerprint_key', ?)",
        (os.urandom(16).hex(),),
    )
    if fresh:
        return
    try:
        found = int(row[0])
    except ValueError:
        raise StoreError(
            f"{path}: unreadable schema version {row[0]!r}; not a personamem store?"
        ) from None
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer personamem (store schema {found}; this version reads "
            f"up to {SCHEMA_VERSION}): upgrade personamem to open it"
        )
    for version in range(found, SCHEMA_VERSION):
        _MIGRATIONS[version](conn)
    if found < SCHEMA_VERSION:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))


def _v1_to_v2(conn: sqlite3.Connection) -> None:
    """Schema 1 counted the read position inside a long message in parts, which depend on the
    chunk size and tokenizer of the time (unknown now); schema 2 counts characters. The parts
    already read are read again from the message's start: nothing is skipped (a repeated fact
    merges with itself)."""
    conn.execute("UPDATE users SET cursor_part = 0 WHERE cursor_part != 0")


_MIGRATIONS = {1: _v1_to_v2}
"""Schema version -> the migration to the next one (in the open transaction)."""


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


__all__ = ["check_database", "prepare_database"]
