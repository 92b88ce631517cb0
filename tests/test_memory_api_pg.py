"""The memory API tests that run on the `mem` fixture (tests/test_memory_api.py), again with the
store in PostgreSQL (a fresh schema per test, dropped after)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest
import test_memory_api as on_sqlite
from memory_fakes import echo_model
from pg_helpers import drop, pg_url

from personamem.store import Memory
from personamem.store.postgres import PostgresStore


@pytest.fixture
def mem() -> Iterator[Memory]:
    url = pg_url()
    m = Memory(
        PostgresStore(url),
        model=echo_model(),
        strategy="extract",
        chunk_tokens=40,
        memory_tokens=100000,
    )
    yield m
    m.close()
    drop(url)


RERUN = [
    name
    for name, fn in vars(on_sqlite).items()
    if name.startswith("test_") and callable(fn) and "mem" in inspect.signature(fn).parameters
]
for _name in RERUN:
    globals()[_name] = getattr(on_sqlite, _name)


def test_the_rerun_covers_the_fixture_tests() -> None:
    assert len(RERUN) >= 10
