"""The store in PostgreSQL (psycopg 3): the same interface and invariants as the SQLite store,
for several API processes and workers on several machines sharing one database.

``postgresql://user@host:5432/db`` (any libpq URL); ``?schema=name`` keeps the tables in their own
schema (created if missing), e.g. one per test run. The schema is created and upgraded by Alembic
migrations (``migrations/``, shared with SQLite; :mod:`.migrate`) when a store opens. Every write is one transaction that locks the
user's row (``SELECT ... FOR UPDATE``), which serializes writers of one user across processes and
machines; :meth:`PostgresStore.consistent` reads in one ``REPEATABLE READ`` snapshot. The update
lease is a row in ``locks`` with an expiry (a dead process's lease on another machine is taken
over when it expires).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .base import (
    MESSAGE_REDACTION_INSERT,
    REDACTION_INSERT,
    SCHEMA_VERSION,
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
    user_problems,
    version_from_row,
    version_values,
)
from .migrate import upgrade_postgres

_MSG_COLS = "seq, msg_id, role, content, tokens, created_at"


def is_postgres_url(url: object) -> bool:
    return isinstance(url, str) and url.startswith(("postgres://", "postgresql://"))


def split_url(url: str) -> tuple[str, str | None]:
    """(libpq URL, schema) of a store URL: personamem's own ``schema=`` option taken out."""
    if "?" not in url:
        return url, None
    base, query = url.split("?", 1)
    schema = None
    rest = []
    for part in query.split("&"):
        k, _, v = part.partition("=")
        if k == "schema":
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$", v):
                raise StoreError(f"bad schema name {v!r}: letters, digits and _ only")
            schema = v
        elif part:
            rest.append(part)
    return base + ("?" + "&".join(rest) if rest else ""), schema


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


class PostgresStore(Store):
    """The store in a PostgreSQL database (one connection per thread)."""

    def __init__(self, url: str, *, connect_timeout: float = 10.0) -> None:
        try:
            import alembic  # noqa: F401 - the migrations need it
            import psycopg
        except ImportError as e:  # pragma: no cover - depends on the installed extras
            raise StoreError(
                f"PostgreSQL needs the server extra ({e.name} is missing): "
                "pip install 'personamem[server]'"
            ) from e
        self._psycopg = psycopg
        self.url = url
        self.dsn, self.schema = split_url(url)
        self.connect_timeout = connect_timeout
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        upgrade(self.dsn, self.schema)
        with self._write() as cur:
            cur.execute(
                "INSERT INTO meta(key, value) VALUES ('schema', %s), ('fingerprint_key', %s)"
                " ON CONFLICT (key) DO NOTHING",
                (str(SCHEMA_VERSION), os.urandom(16).hex()),
            )
            cur.execute("SELECT value FROM meta WHERE key = 'fingerprint_key'")
            self._key = bytes.fromhex(cur.fetchone()[0])

    # --- connections and transactions ----------------------------------------------------------
    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            try:
                conn = self._psycopg.connect(
                    self.dsn, autocommit=True, connect_timeout=int(self.connect_timeout)
                )
            except self._psycopg.OperationalError as e:
                raise StoreError(f"cannot connect to PostgreSQL at {self.dsn}: {e}") from e
            if self.schema:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                conn.execute(f'SET search_path TO "{self.schema}"')
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _in_tx(self, conn: Any) -> bool:
        return conn.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE

    @contextmanager
    def _write(self) -> Iterator[Any]:
        """One transaction (a savepoint inside an open one)."""
        conn = self._conn()
        with conn.transaction(), conn.cursor() as cur:
            yield cur

    @contextmanager
    def _read(self) -> Iterator[Any]:
        """Reads in one REPEATABLE READ snapshot (re-entrant)."""
        conn = self._conn()
        if self._in_tx(conn):
            with conn.cursor() as cur:
                yield cur
            return
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield cur

    @contextmanager
    def consistent(self) -> Iterator[None]:
        with self._read():
            yield

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._conn().cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except Exception:  # noqa: S110 - closing best-effort
                    pass
            self._all.clear()
        self._local = threading.local()

    def drop_schema(self) -> None:
        """Drop this store's schema and everything in it (test clean-up)."""
        if not self.schema:
            raise StoreError("drop_schema needs a store URL with ?schema=")
        self._conn().execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        self.close()

    def fingerprint_key(self) -> bytes:
        return self._key

    # --- rows ----------------------------------------------------------------------------------
    @staticmethod
    def _version(row: Sequence[Any]) -> VersionRecord:
        d = dict(zip([c.strip() for c in VERSION_COLS.split(",")], row, strict=True))
        return version_from_row(d)

    @staticmethod
    def _message(row: Sequence[Any]) -> StoredMessage:
        seq, msg_id, role, content, tokens, created_at = row
        return StoredMessage(
            seq=seq, msg_id=msg_id, role=role, content=content, tokens=tokens, created_at=created_at
        )

    @staticmethod
    def _user_row(row: Sequence[Any] | None) -> UserInfo | None:
        if row is None:
            return None
        user_id, created_at, next_seq, cursor, cursor_part, head = row
        return UserInfo(
            user_id=user_id,
            created_at=created_at,
            messages=next_seq,
            cursor=cursor,
            cursor_part=cursor_part,
            head=head,
        )

    def _user(self, cur: Any, user_id: str, lock: bool = False) -> UserInfo | None:
        cur.execute(
            "SELECT user_id, created_at, next_seq, cursor, cursor_part, head FROM users"
            " WHERE user_id = %s" + (" FOR UPDATE" if lock else ""),
            (user_id,),
        )
        return self._user_row(cur.fetchone())

    # --- messages ------------------------------------------------------------------------------
    def add_messages(
        self, user_id: str, messages: Sequence[NewMessage]
    ) -> tuple[list[int], list[str]]:
        now = time.time()
        seqs: list[int] = []
        dups: list[str] = []
        with self._write() as cur:
            cur.execute(
                "INSERT INTO users(user_id, created_at) VALUES (%s, %s)"
                " ON CONFLICT (user_id) DO NOTHING",
                (user_id, now),
            )
            cur.execute("SELECT next_seq FROM users WHERE user_id = %s FOR UPDATE", (user_id,))
            seq = cur.fetchone()[0]
            seen: set[str] = set()
            for m in messages:
                if m.msg_id is not None:
                    cur.execute(
                        "SELECT 1 FROM messages WHERE user_id = %s AND msg_id = %s",
                        (user_id, m.msg_id),
                    )
                    if m.msg_id in seen or cur.fetchone():
                        dups.append(m.msg_id)
                        continue
                    seen.add(m.msg_id)
                msg_id = m.msg_id if m.msg_id is not None else f"#{seq}"
                cur.execute(
                    "INSERT INTO messages(user_id, seq, msg_id, role, content, tokens, created_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (user_id, seq, msg_id, m.role, m.content, m.tokens, now),
                )
                for r in m.redactions:
                    cur.execute(
                        MESSAGE_REDACTION_INSERT.format(p="%s"),
                        message_redaction_values(user_id, now, seq, r),
                    )
                seqs.append(seq)
                seq += 1
            cur.execute("UPDATE users SET next_seq = %s WHERE user_id = %s", (seq, user_id))
        return seqs, dups

    def messages(
        self,
        user_id: str,
        start: int = 0,
        end: int | None = None,
        seqs: Iterable[int] | None = None,
    ) -> list[StoredMessage]:
        if seqs is not None:
            wanted = sorted(set(seqs))
            if not wanted:
                return []
            rows = self._query(
                f"SELECT {_MSG_COLS} FROM messages WHERE user_id = %s AND seq = ANY(%s)"
                " ORDER BY seq",
                (user_id, wanted),
            )
            return [self._message(r) for r in rows]
        hi = end if end is not None else 2**31 - 1
        rows = self._query(
            f"SELECT {_MSG_COLS} FROM messages WHERE user_id = %s AND seq >= %s AND seq < %s"
            " ORDER BY seq",
            (user_id, start, hi),
        )
        return [self._message(r) for r in rows]

    def existing_seqs(self, user_id: str, seqs: Iterable[int]) -> set[int]:
        wanted = sorted(set(seqs))
        if not wanted:
            return set()
        rows = self._query(
            "SELECT seq FROM messages WHERE user_id = %s AND seq = ANY(%s)", (user_id, wanted)
        )
        return {r[0] for r in rows}

    # --- users and versions --------------------------------------------------------------------
    def user(self, user_id: str) -> UserInfo | None:
        with self._conn().cursor() as cur:
            return self._user(cur, user_id)

    def users(self) -> list[str]:
        return [r[0] for r in self._query("SELECT user_id FROM users ORDER BY user_id")]

    def head(self, user_id: str) -> VersionRecord | None:
        cols = ", ".join("v." + c.strip() for c in VERSION_COLS.split(","))
        rows = self._query(
            f"SELECT {cols} FROM users u JOIN versions v"
            " ON v.user_id = u.user_id AND v.version = u.head WHERE u.user_id = %s",
            (user_id,),
        )
        return self._version(rows[0]) if rows else None

    def snapshot(self, user_id: str) -> tuple[UserInfo, VersionRecord | None, list[StoredMessage]]:
        with self._read() as cur:
            info = self._user(cur, user_id)
            if info is None:
                raise UnknownUser(user_id)
            head = self.version(user_id, info.head) if info.head else None
            pending = self.messages(user_id, start=info.cursor)
        return info, head, pending

    def version(self, user_id: str, version: int) -> VersionRecord | None:
        rows = self._query(
            f"SELECT {VERSION_COLS} FROM versions WHERE user_id = %s AND version = %s",
            (user_id, version),
        )
        return self._version(rows[0]) if rows else None

    def versions(self, user_id: str) -> list[VersionRecord]:
        rows = self._query(
            f"SELECT {VERSION_COLS} FROM versions WHERE user_id = %s ORDER BY version",
            (user_id,),
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
        with self._write() as cur:
            info = check_commit(
                self._user(cur, user_id, lock=True),
                user_id,
                expect_head=expect_head,
                expect_cursor=expect_cursor,
                new_cursor=new_cursor,
            )
            cur.execute(
                "SELECT COALESCE(MAX(version), 0) FROM versions WHERE user_id = %s", (user_id,)
            )
            number = cur.fetchone()[0] + 1
            rec = VersionRecord(
                **new.model_dump(),
                user_id=user_id,
                version=number,
                parent=expect_head,
                created_at=now,
            )
            cur.execute(
                f"INSERT INTO versions({VERSION_COLS}) VALUES ({','.join(['%s'] * 19)})",
                version_values(user_id, number, expect_head, new, now),
            )
            cursor = (info.cursor, info.cursor_part) if new_cursor is None else new_cursor
            cur.execute(
                "UPDATE users SET head = %s, cursor = %s, cursor_part = %s WHERE user_id = %s",
                (number, cursor[0], cursor[1], user_id),
            )
            for r in redactions:
                cur.execute(
                    REDACTION_INSERT.format(p="%s"), redaction_values(user_id, now, r, number)
                )
        return rec

    def advance_cursor(self, user_id: str, *, expect_cursor: Cursor, new_cursor: Cursor) -> None:
        with self._write() as cur:
            check_commit(
                self._user(cur, user_id, lock=True),
                user_id,
                expect_head=None,
                expect_cursor=expect_cursor,
                new_cursor=new_cursor,
            )
            cur.execute(
                "UPDATE users SET cursor = %s, cursor_part = %s WHERE user_id = %s",
                (new_cursor[0], new_cursor[1], user_id),
            )

    def redactions(self, user_id: str) -> list[RedactionRecord]:
        rows = self._query(
            "SELECT kind, location, fingerprint, start_pos, end_pos, seq, version, at"
            " FROM redactions WHERE user_id = %s ORDER BY id",
            (user_id,),
        )
        return [
            RedactionRecord(
                kind=k, location=loc, fingerprint=fp, start=s, end=e, seq=q, version=v, at=at
            )
            for k, loc, fp, s, e, q, v, at in rows
        ]

    # --- the update lease ----------------------------------------------------------------------
    def acquire(self, user_id: str, owner: str, ttl: float) -> bool:
        now = time.time()
        host = socket.gethostname()
        with self._write() as cur:
            cur.execute(
                "INSERT INTO locks(user_id, owner, host, pid, expires) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (user_id) DO NOTHING",
                (user_id, owner, host, os.getpid(), now + ttl),
            )
            if cur.rowcount == 1:
                return True
            cur.execute(
                "SELECT owner, host, pid, expires FROM locks WHERE user_id = %s FOR UPDATE",
                (user_id,),
            )
            row = cur.fetchone()
            free = (
                row is None
                or row[0] == owner
                or row[3] < now
                or (row[1] == host and not _pid_alive(row[2]))
            )
            if free:
                cur.execute(
                    "INSERT INTO locks(user_id, owner, host, pid, expires)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (user_id) DO UPDATE SET"
                    " owner = EXCLUDED.owner, host = EXCLUDED.host, pid = EXCLUDED.pid,"
                    " expires = EXCLUDED.expires",
                    (user_id, owner, host, os.getpid(), now + ttl),
                )
        return free

    def renew(self, user_id: str, owner: str, ttl: float) -> bool:
        with self._write() as cur:
            cur.execute(
                "UPDATE locks SET expires = %s WHERE user_id = %s AND owner = %s",
                (time.time() + ttl, user_id, owner),
            )
            return cur.rowcount == 1

    def release(self, user_id: str, owner: str) -> None:
        with self._write() as cur:
            cur.execute("DELETE FROM locks WHERE user_id = %s AND owner = %s", (user_id, owner))

    # --- deletion and checks -------------------------------------------------------------------
    def delete_user(self, user_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._write() as cur:
            for table in ("redactions", "versions", "messages", "locks", "users"):
                cur.execute(f"DELETE FROM {table} WHERE user_id = %s", (user_id,))
                counts[table] = cur.rowcount
        return counts

    def check(self) -> list[str]:
        problems: list[str] = []
        with self._read() as cur:
            cur.execute(
                "SELECT m.user_id FROM messages m LEFT JOIN users u USING (user_id)"
                " WHERE u.user_id IS NULL LIMIT 5"
            )
            problems += [f"foreign key: messages of missing user {r[0]!r}" for r in cur.fetchall()]
            cur.execute("SELECT user_id, next_seq, cursor, cursor_part, head FROM users")
            for user in cur.fetchall():
                uid, head = user[0], user[4]
                cur.execute(
                    "SELECT COUNT(*), MIN(seq), MAX(seq) FROM messages WHERE user_id = %s", (uid,)
                )
                numbering = cur.fetchone()
                cur.execute(
                    "SELECT COUNT(*), COALESCE(MAX(version), 0),"
                    " COALESCE(BOOL_OR(version = %s), FALSE) FROM versions WHERE user_id = %s",
                    (head, uid),
                )
                versions = cur.fetchone()
                cur.execute(
                    "SELECT message_ids, report FROM versions WHERE user_id = %s"
                    " AND source = 'update' ORDER BY version",
                    (uid,),
                )
                consumed = cur.fetchall()
                cur.execute(
                    "SELECT seq, role, content FROM messages WHERE user_id = %s ORDER BY seq",
                    (uid,),
                )
                msgs = cur.fetchall()
                cur.execute("SELECT state FROM versions WHERE user_id = %s", (uid,))
                states = [r[0] for r in cur.fetchall()]
                problems += user_problems(user, numbering, versions, consumed, msgs, states)
        return problems


def upgrade(dsn: str, schema: str | None = None, revision: str = "head") -> tuple[str, str]:
    """Bring the database (or ``schema``) to ``revision`` (:func:`.migrate.upgrade_postgres`)."""
    return upgrade_postgres(dsn, schema, revision)


__all__ = ["PostgresStore", "is_postgres_url", "split_url", "upgrade"]
