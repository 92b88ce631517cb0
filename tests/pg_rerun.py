"""Run a SQLite store test module again with every store in PostgreSQL.

``rerun(module)`` returns the names to put in a test module's globals: the module's tests that
do not reach into SQLite itself (nor run a real model: the ``slow`` ones test the model, not the
store, and would double the slow suite's model time), its fixtures, and an autouse fixture under which
:func:`personamem.store.open_store` opens each ``sqlite:///<path>`` URL as a PostgreSQL store in
a fresh schema (the same schema for the same path, so reopening a "file" finds its data; every
schema is dropped after the test). A ``store`` fixture is replaced by a PostgreSQL one.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from pg_helpers import drop, pg_url

import personamem.store.base as store_base
import personamem.store.core as store_core
from personamem.store import Store
from personamem.store.postgres import PostgresStore
from personamem.store.sqlite import sqlite_path

SQLITE_ONLY = (
    "sqlite3",  # opens the file with the sqlite3 module
    "SQLiteStore",  # builds the SQLite store itself
    "subprocess",  # a child process would open SQLite (the PostgreSQL kill tests are their own)
    "sys.executable",
    "_spawn(",
    "read_bytes",  # reads the database file
    "open_store(",  # tests the URL parser itself
    ".path",  # the database file
    "journal_mode",  # the SQLite journal
)
"""Source text that marks a test as being about SQLite itself (kept out of the rerun)."""


@pytest.fixture(autouse=True)
def pg_stores(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Every SQLite URL the test opens becomes a PostgreSQL schema of its own."""
    real = store_base.open_store
    schemas: dict[str, str] = {}

    def open_pg(url: Any) -> Store:
        if isinstance(url, Store) or str(url).startswith(("postgres://", "postgresql://")):
            return real(url)
        path = os.path.abspath(sqlite_path(str(url)))
        if path not in schemas:
            schemas[path] = pg_url()
        return PostgresStore(schemas[path])

    monkeypatch.setattr(store_base, "open_store", open_pg)
    monkeypatch.setattr(store_core, "open_store", open_pg)
    yield schemas
    for url in schemas.values():
        drop(url)


@pytest.fixture
def store() -> Iterator[PostgresStore]:
    url = pg_url()
    s = PostgresStore(url)
    yield s
    s.close()
    drop(url)


def _is_fixture(obj: Any) -> bool:
    return type(obj).__name__ == "FixtureFunctionDefinition"


def rerun(module: ModuleType) -> dict[str, Any]:
    """The tests and fixtures of ``module`` to collect again on PostgreSQL."""
    out: dict[str, Any] = {"pg_stores": pg_stores}
    for name, obj in vars(module).items():
        if _is_fixture(obj):
            out[name] = store if name == "store" else obj
        elif name.startswith("test_") and inspect.isfunction(obj):
            source = inspect.getsource(obj).replace("store: SQLiteStore", "")  # a type hint
            slow = any(m.name == "slow" for m in getattr(obj, "pytestmark", []))
            if not slow and not any(mark in source for mark in SQLITE_ONLY):
                out[name] = obj
    return out


def reran(names: dict[str, Any]) -> list[str]:
    return sorted(n for n in names if n.startswith("test_"))
