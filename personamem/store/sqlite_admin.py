"""SQLite schema: creation, version check and migration, and the integrity check."""

from __future__ import annotations

import json
import os
import sqlite3

from .base import SCHEMA_VERSION, StoreError, unread_problems

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
        n, lo, hi = conn.execute(
            "SELECT COUNT(*), MIN(seq), MAX(seq) FROM messages WHERE user_id = ?", (uid,)
        ).fetchone()
        if n != u["next_seq"] or (n and (lo != 0 or hi != n - 1)):
            problems.append(f"{uid}: messages not numbered 0..{u['next_seq'] - 1}")
        if not 0 <= u["cursor"] <= u["next_seq"]:
            problems.append(f"{uid}: cursor {u['cursor']} outside 0..{u['next_seq']}")
        nv, maxv = conn.execute(
            "SELECT COUNT(*), COALESCE(MAX(version), 0) FROM versions WHERE user_id = ?",
            (uid,),
        ).fetchone()
        if nv != maxv:
            problems.append(f"{uid}: versions not numbered 1..{maxv}")
        if (
            u["head"]
            and not conn.execute(
                "SELECT 1 FROM versions WHERE user_id = ? AND version = ?", (uid, u["head"])
            ).fetchone()
        ):
            problems.append(f"{uid}: head v{u['head']} missing")
        consumed = conn.execute(
            "SELECT message_ids, report FROM versions WHERE user_id = ?"
            " AND source = 'update' ORDER BY version",
            (uid,),
        ).fetchall()
        # Updates read messages in order; consecutive chunks share at most the one
        # message a chunk boundary split.
        last = -1
        for ids, _ in consumed:
            got = json.loads(ids)
            if got and got[0] < last:
                problems.append(f"{uid}: message {got[0]} was read into the memory twice")
            last = max(got, default=last)
        done = u["cursor"] if u["cursor_part"] == 0 else u["cursor"] + 1
        if last >= done:
            problems.append(f"{uid}: a version read message {last} beyond the cursor")
        msgs = conn.execute(
            "SELECT seq, role, content FROM messages WHERE user_id = ? ORDER BY seq",
            (uid,),
        ).fetchall()
        problems += unread_problems(
            uid,
            [tuple(m) for m in msgs],
            [(json.loads(ids), json.loads(rep)) for ids, rep in consumed],
            (u["cursor"], u["cursor_part"]),
        )
        for (state,) in conn.execute(
            "SELECT state FROM versions WHERE user_id = ?", (uid,)
        ).fetchall():
            try:
                json.loads(state)
            except ValueError:
                problems.append(f"{uid}: a version's state is not valid JSON")
    return problems


__all__ = ["check_database", "prepare_database"]
