"""PostgreSQL for tests: the server at 127.0.0.1:5432 (trust auth, database ``test``), one fresh
schema per store, dropped afterwards. When PostgreSQL does not answer the tests fail, unless
PERSONAMEM_SKIP_PG=1 says to skip them."""

from __future__ import annotations

import os
import uuid

import pytest

PG_BASE = os.environ.get("PERSONAMEM_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def pg_url() -> str:
    """A store URL with a new schema; fails (or skips with PERSONAMEM_SKIP_PG=1) without PG."""
    try:
        import psycopg

        psycopg.connect(PG_BASE, connect_timeout=3).close()
    except Exception as e:  # noqa: BLE001 - any failure to connect
        if os.environ.get("PERSONAMEM_SKIP_PG") == "1":
            pytest.skip(f"PostgreSQL not reachable and PERSONAMEM_SKIP_PG=1: {e}")
        pytest.fail(
            f"PostgreSQL does not answer at {PG_BASE} ({e}); start it, or set "
            "PERSONAMEM_SKIP_PG=1 to skip the PostgreSQL tests"
        )
    return f"{PG_BASE}?schema=pm_test_{os.getpid()}_{uuid.uuid4().hex[:10]}"


def drop(url: str) -> None:
    """Drop the store's schema (directly: the store may be one that refuses to open)."""
    import psycopg

    from personamem.store.postgres import split_url

    dsn, schema = split_url(url)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
