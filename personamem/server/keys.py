"""API keys: random secrets shown once, stored only as a SHA-256 hash, each scoped to a tenant.

A key reads ``pmk_<key id>_<secret>``. The key id is public (it names the key in listings and
logs); the 256-bit secret is never stored, only ``sha256(secret)``, and checked in constant time.
(A slow hash such as scrypt protects low-entropy passwords; a 256-bit random secret cannot be
guessed, so one SHA-256 keeps each request cheap.)

Keys live in the service's database: a table ``personamem_api_keys`` in the SQLite file or the
PostgreSQL database of the store (:func:`open_keys`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import BaseModel

from ..store.base import StoreError
from ..store.postgres import split_url
from ..store.sqlite import sqlite_path
from ..store.sqlite_admin import API_KEYS_TABLE

Scope = Literal["read", "write"]
TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_KEY_RE = re.compile(r"^pmk_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")


class KeyStoreError(StoreError):
    """A key operation failed (bad tenant, unknown key id)."""


class ApiKey(BaseModel):
    """A stored key (never its secret)."""

    key_id: str
    tenant: str
    name: str
    scope: Scope
    created_at: float
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class NewKey(ApiKey):
    """A key just created: ``key`` is the only time the secret is shown."""

    key: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(key: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    m = _KEY_RE.match(key.strip())
    return (m.group(1), m.group(2)) if m else None


class KeyStore:
    """Create, list, revoke and verify API keys in SQLite (a path) or PostgreSQL (a URL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._pg = url.startswith(("postgres://", "postgresql://"))
        self._local = threading.local()
        self._schema: str | None = None
        if self._pg:
            self._dsn, self._schema = split_url(url)
        with self._tx() as cur:
            if self._pg:  # several processes may start at once
                cur.execute("SELECT pg_advisory_xact_lock(hashtext('personamem-keys'))")
            cur.execute(API_KEYS_TABLE)

    # --- connections ---------------------------------------------------------------------------
    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._pg:
                import psycopg

                conn = psycopg.connect(self._dsn, autocommit=True)
                if self._schema:
                    conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
                    conn.execute(f'SET search_path TO "{self._schema}"')
            else:
                conn = sqlite3.connect(
                    sqlite_path(self.url), timeout=60, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA busy_timeout = 60000")
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        conn = self._conn()
        if self._pg:
            with conn.transaction():
                yield _Cursor(conn.cursor(), pg=True)
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield _Cursor(conn.cursor(), pg=False)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # --- operations ----------------------------------------------------------------------------
    def create(self, tenant: str, name: str = "", scope: Scope = "write") -> NewKey:
        """A new key for ``tenant`` (lowercase letters, digits, ``-`` and ``_``)."""
        if not TENANT_RE.match(tenant):
            raise KeyStoreError(
                f"bad tenant {tenant!r}: use 1-63 lowercase letters, digits, '-' or '_'"
            )
        if scope not in ("read", "write"):
            raise KeyStoreError(f"bad scope {scope!r}: use read or write")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        now = time.time()
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO personamem_api_keys(key_id, tenant, name, scope, hash, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, tenant, name, scope, _hash(secret), now),
            )
        return NewKey(
            key_id=key_id,
            tenant=tenant,
            name=name,
            scope=scope,
            created_at=now,
            key=f"pmk_{key_id}_{secret}",
        )

    def list(self, tenant: str | None = None) -> list[ApiKey]:
        q = "SELECT key_id, tenant, name, scope, created_at, revoked_at FROM personamem_api_keys"
        args: tuple[Any, ...] = ()
        if tenant is not None:
            q += " WHERE tenant = ?"
            args = (tenant,)
        with self._tx() as cur:
            rows = cur.execute(q + " ORDER BY created_at", args).fetchall()
        return [ApiKey(**dict(zip(ApiKey.model_fields, r, strict=False))) for r in rows]

    def revoke(self, key_id: str) -> ApiKey:
        with self._tx() as cur:
            n = cur.execute(
                "UPDATE personamem_api_keys SET revoked_at = ? WHERE key_id = ?"
                " AND revoked_at IS NULL",
                (time.time(), key_id),
            ).rowcount
        found = [k for k in self.list() if k.key_id == key_id]
        if not found:
            raise KeyStoreError(f"no key {key_id!r}; `personamem keys list` shows the key ids")
        if n == 0 and found[0].revoked_at is None:  # pragma: no cover - concurrent change
            raise KeyStoreError(f"could not revoke {key_id!r}")
        return found[0]

    def verify(self, key: str) -> ApiKey | None:
        """The key's record if the key is well formed, known, not revoked and its secret matches
        (checked in constant time); a revoked key returns its record with ``revoked_at`` set."""
        parsed = parse_key(key)
        if parsed is None:
            return None
        key_id, secret = parsed
        with self._tx() as cur:
            row = cur.execute(
                "SELECT key_id, tenant, name, scope, created_at, revoked_at, hash"
                " FROM personamem_api_keys WHERE key_id = ?",
                (key_id,),
            ).fetchone()
        if row is None or not hmac.compare_digest(row[6], _hash(secret)):
            return None
        return ApiKey(**dict(zip(ApiKey.model_fields, row[:6], strict=False)))


class _Cursor:
    """sqlite3 and psycopg cursors behind one ``?`` parameter style."""

    def __init__(self, cur: Any, pg: bool) -> None:
        self.cur, self.pg = cur, pg

    def execute(self, q: str, args: tuple[Any, ...] = ()) -> Any:
        if self.pg:
            q = q.replace("?", "%s")
        self.cur.execute(q, args)
        return self.cur


def open_keys(url: str) -> KeyStore:
    """The key store at a store URL (``sqlite:///path.db`` or ``postgresql://...``)."""
    return KeyStore(url)


__all__ = ["ApiKey", "KeyStore", "KeyStoreError", "NewKey", "Scope", "open_keys", "parse_key"]
