"""The store in one SQLite file (standard library ``sqlite3``, WAL journal, one connection per
thread, every write one ``BEGIN IMMEDIATE`` transaction)."""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .base import (
    MESSAGE_REDACTION_INSERT,
    REDACTION_INSERT,
    VERSION_COLS,
    Cursor,
    NewMessage,
    NewVersion,
    RedactionRecord,
    Store,
    StoredMessage,
    StoreError,
    UnknownUser,
    UserInfo,
    VersionRecord,
    check_commit,
    message_redaction_values,
    redaction_values,
    version_from_row,
    version_values,
)
from .migrate import upgrade_sqlite
from .sqlite_admin import check_database, prepare_database

# --- SQLite ----------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///relative.db`` / ``sqlite:////abs.db`` URL (or a plain path)."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
    elif url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://")
    else:
        path = url
    path = path.split("?", 1)[0]
    if not path:
        raise StoreError(f"no database file in store URL {url!r}")
    return path


class SQLiteStore(Store):
    """The store in one SQLite file (WAL mode; safe for threads and processes on one host).

    ``synchronous="FULL"`` (default) makes every commit durable across power loss;
    ``"NORMAL"`` is faster and still loses nothing committed when only the process dies.
    """

    def __init__(
        self, path: str | Path, *, synchronous: str = "FULL", timeout: float = 60.0
    ) -> None:
        self.path = str(path)
        self.url = f"sqlite:///{self.path}"
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise StoreError("synchronous must be FULL, NORMAL or EXTRA")
        self.synchronous = synchronous.upper()
        self.timeout = timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        parent = Path(self.path).parent
        if str(parent) and not parent.exists():
            parent.mkdir(parents=True, exist_ok=True)
        conn = self._conn()
        with self._write(conn):
            ready = prepare_database(conn, self.path)
        if not ready:  # an older schema: Alembic migrates it (or refuses one newer than this code)
            upgrade_sqlite(self.path, timeout=timeout)
            with self._write(conn):
                if not prepare_database(conn, self.path):
                    raise StoreError(f"{self.path}: not at the schema's head after migrating")
        self._key = bytes.fromhex(
            conn.execute("SELECT value FROM meta WHERE key='fingerprint_key'").fetchone()[0]
        )

    # --- connections and transactions ----------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{self.path}: could not switch to WAL mode (got {mode})")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA secure_delete = ON")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _write(self, conn: sqlite3.Connection | None = None) -> Iterator[sqlite3.Connection]:
        """One write transaction, taking the write lock up front (no upgrade deadlocks)."""
        conn = conn or self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: every query inside sees the same snapshot (re-entrant)."""
        conn = self._conn()
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    @contextmanager
    def consistent(self) -> Iterator[None]:
        with self._read():
            yield

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._local = threading.local()

    def fingerprint_key(self) -> bytes:
        return self._key

    # --- rows ----------------------------------------------------------------------------------
    @staticmethod
    def _version(row: sqlite3.Row) -> VersionRecord:
        return version_from_row(dict(row))

    @staticmethod
    def _message(row: sqlite3.Row) -> StoredMessage:
        return StoredMessage(**dict(row))

    @staticmethod
    def _user(conn: sqlite3.Connection, user_id: str) -> UserInfo | None:
        row = conn.execute(
            "SELECT user_id, created_at, next_seq, cursor, cursor_part, head FROM users"
            " WHERE user_id = ?",
            (user_id,),
        ).fetchone()
        if row is None:
            return None
        return UserInfo(
            user_id=row["user_id"],
            created_at=row["created_at"],
            messages=row["next_seq"],
            cursor=row["cursor"],
            cursor_part=row["cursor_part"],
            head=row["head"],
        )

    # --- messages ------------------------------------------------------------------------------
    def add_messages(
        self, user_id: str, messages: Sequence[NewMessage]
    ) -> tuple[list[int], list[str]]:
        now = time.time()
        seqs: list[int] = []
        dups: list[str] = []
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO users(user_id, created_at) VALUES (?, ?)", (user_id, now)
            )
            seq = conn.execute(
                "SELECT next_seq FROM users WHERE user_id = ?", (user_id,)
            ).fetchone()[0]
            seen: set[str] = set()
            for m in messages:
                if m.msg_id is not None:
                    if (
                        m.msg_id in seen
                        or conn.execute(
                            "SELECT 1 FROM messages WHERE user_id = ? AND msg_id = ?",
                            (user_id, m.msg_id),
                        ).fetchone()
                    ):
                        dups.append(m.msg_id)
                        continue
                    seen.add(m.msg_id)
                msg_id = m.msg_id if m.msg_id is not None else f"#{seq}"
                conn.execute(
                    "INSERT INTO messages(user_id, seq, msg_id, role, content, tokens, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (user_id, seq, msg_id, m.role, m.content, m.tokens, now),
                )
                for r in m.redactions:
                    conn.execute(
                        MESSAGE_REDACTION_INSERT.format(p="?"),
                        message_redaction_values(user_id, now, seq, r),
                    )
                seqs.append(seq)
                seq += 1
            conn.execute("UPDATE users SET next_seq = ? WHERE user_id = ?", (seq, user_id))
        return seqs, dups

    def messages(
        self,
        user_id: str,
        start: int = 0,
        end: int | None = None,
        seqs: Iterable[int] | None = None,
    ) -> list[StoredMessage]:
        conn = self._conn()
        cols = "seq, msg_id, role, content, tokens, created_at"
        if seqs is not None:
            wanted = sorted(set(seqs))
            out: list[StoredMessage] = []
            for i in range(0, len(wanted), 500):
                part = wanted[i : i + 500]
                marks = ",".join("?" * len(part))
                rows = conn.execute(
                    f"SELECT {cols} FROM messages WHERE user_id = ? AND seq IN ({marks})"
                    " ORDER BY seq",
                    (user_id, *part),
                ).fetchall()
                out += [self._message(r) for r in rows]
            return out
        hi = end if end is not None else 2**62
        rows = conn.execute(
            f"SELECT {cols} FROM messages WHERE user_id = ? AND seq >= ? AND seq < ? ORDER BY seq",
            (user_id, start, hi),
        ).fetchall()
        return [self._message(r) for r in rows]

    def existing_seqs(self, user_id: str, seqs: Iterable[int]) -> set[int]:
        return {m.seq for m in self.messages(user_id, seqs=seqs)}

    # --- users and versions --------------------------------------------------------------------
    def user(self, user_id: str) -> UserInfo | None:
        return self._user(self._conn(), user_id)

    def users(self) -> list[str]:
        rows = self._conn().execute("SELECT user_id FROM users ORDER BY user_id").fetchall()
        return [r[0] for r in rows]

    def head(self, user_id: str) -> VersionRecord | None:
        row = (
            self._conn()
            .execute(
                f"SELECT {', '.join('v.' + c.strip() for c in VERSION_COLS.split(','))}"
                " FROM users u JOIN versions v ON v.user_id = u.user_id AND v.version = u.head"
                " WHERE u.user_id = ?",
                (user_id,),
            )
            .fetchone()
        )
        return self._version(row) if row else None

    def snapshot(self, user_id: str) -> tuple[UserInfo, VersionRecord | None, list[StoredMessage]]:
        with self._read() as conn:
            info = self._user(conn, user_id)
            if info is None:
                raise UnknownUser(user_id)
            head = self.version(user_id, info.head) if info.head else None
            pending = self.messages(user_id, start=info.cursor)
        return info, head, pending

    def version(self, user_id: str, version: int) -> VersionRecord | None:
        row = (
            self._conn()
            .execute(
                f"SELECT {VERSION_COLS} FROM versions WHERE user_id = ? AND version = ?",
                (user_id, version),
            )
            .fetchone()
        )
        return self._version(row) if row else None

    def versions(self, user_id: str) -> list[VersionRecord]:
        rows = (
            self._conn()
            .execute(
                f"SELECT {VERSION_COLS} FROM versions WHERE user_id = ? ORDER BY version",
                (user_id,),
            )
            .fetchall()
        )
        return [self._version(r) for r in rows]

    def commit_version(
        self,
        user_id: str,
        new: NewVersion,
        *,
        expect_head: int,
        expect_cursor: Cursor | None = None,
        new_cursor: Cursor | None = None,
        redactions: Sequence[RedactionRecord] = (),
    ) -> VersionRecord:
        now = time.time()
        with self._write() as conn:
            info = check_commit(
                self._user(conn, user_id),
                user_id,
                expect_head=expect_head,
                expect_cursor=expect_cursor,
                new_cursor=new_cursor,
            )
            last = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM versions WHERE user_id = ?", (user_id,)
            ).fetchone()[0]
            number = last + 1
            rec = VersionRecord(
                **new.model_dump(),
                user_id=user_id,
                version=number,
                parent=expect_head,
                created_at=now,
            )
            conn.execute(
                f"INSERT INTO versions({VERSION_COLS}) VALUES ({','.join('?' * 19)})",
                version_values(user_id, number, expect_head, new, now),
            )
            cursor = (info.cursor, info.cursor_part) if new_cursor is None else new_cursor
            conn.execute(
                "UPDATE users SET head = ?, cursor = ?, cursor_part = ? WHERE user_id = ?",
                (number, cursor[0], cursor[1], user_id),
            )
            for r in redactions:
                conn.execute(
                    REDACTION_INSERT.format(p="?"), redaction_values(user_id, now, r, number)
                )
        return rec

    def advance_cursor(self, user_id: str, *, expect_cursor: Cursor, new_cursor: Cursor) -> None:
        with self._write() as conn:
            check_commit(
                self._user(conn, user_id),
                user_id,
                expect_head=None,
                expect_cursor=expect_cursor,
                new_cursor=new_cursor,
            )
            conn.execute(
                "UPDATE users SET cursor = ?, cursor_part = ? WHERE user_id = ?",
                (new_cursor[0], new_cursor[1], user_id),
            )

    def redactions(self, user_id: str) -> list[RedactionRecord]:
        rows = (
            self._conn()
            .execute(
                "SELECT kind, location, fingerprint, start_pos, end_pos, seq, version, at"
                " FROM redactions WHERE user_id = ? ORDER BY id",
                (user_id,),
            )
            .fetchall()
        )
        return [
            RedactionRecord(
                kind=r["kind"],
                location=r["location"],
                fingerprint=r["fingerprint"],
                start=r["start_pos"],
                end=r["end_pos"],
                seq=r["seq"],
                version=r["version"],
                at=r["at"],
            )
            for r in rows
        ]

    # --- the update lease ----------------------------------------------------------------------
    def acquire(self, user_id: str, owner: str, ttl: float) -> bool:
        now = time.time()
        host = socket.gethostname()
        with self._write() as conn:
            row = conn.execute(
                "SELECT owner, host, pid, expires FROM locks WHERE user_id = ?", (user_id,)
            ).fetchone()
            free = (
                row is None
                or row["owner"] == owner
                or row["expires"] < now
                or (row["host"] == host and not _pid_alive(row["pid"]))
            )
            if free:
                conn.execute(
                    "INSERT OR REPLACE INTO locks(user_id, owner, host, pid, expires)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (user_id, owner, host, os.getpid(), now + ttl),
                )
        return free

    def renew(self, user_id: str, owner: str, ttl: float) -> bool:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE locks SET expires = ? WHERE user_id = ? AND owner = ?",
                (time.time() + ttl, user_id, owner),
            )
            return cur.rowcount == 1

    def release(self, user_id: str, owner: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM locks WHERE user_id = ? AND owner = ?", (user_id, owner))

    # --- deletion and checks -------------------------------------------------------------------
    def delete_user(self, user_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._write() as conn:
            for table in ("redactions", "versions", "messages", "locks", "users"):
                cur = conn.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))
                counts[table] = cur.rowcount
        # Move the deleted pages out of the WAL too (secure_delete zeroes them in the database).
        self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return counts

    def check(self) -> list[str]:
        with self._read() as conn:
            return check_database(conn)


__all__ = ["SQLiteStore", "sqlite_path"]
