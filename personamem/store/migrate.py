"""The store's schema history: one Alembic environment (``migrations/``) for SQLite and
PostgreSQL, its head revision, and upgrades that refuse a database newer than the code.

A schema change is a new revision file in ``migrations/versions/`` (never an edit of an old one)
that runs on both backends (``op.batch_alter_table`` for SQLite ALTERs), a new
:data:`HEAD_REVISION`, and the new head DDL in ``sqlite_admin.py``: a new SQLite file is created
at head directly (no Alembic import; ``tests/test_store_migrations.py`` checks both agree).
SQLite files from before Alembic (``meta.schema`` without ``alembic_version``) are stamped with
the revision of their schema number, then upgraded.

Alembic and SQLAlchemy are imported only when a migration runs.
"""

from __future__ import annotations

import logging
import sqlite3
from functools import lru_cache
from pathlib import Path
from typing import Any

from .base import SCHEMA_VERSION, StoreError

HEAD_REVISION = "0002"
"""The newest revision in ``migrations/versions/`` (a test checks it against Alembic's head)."""
LEGACY_REVISIONS = {1: "0001", 2: "0002"}
"""``meta.schema`` of a SQLite file from before Alembic -> the revision with the same tables."""
MIGRATIONS = Path(__file__).parent / "migrations"

log = logging.getLogger("personamem.store")


def describe(revision: str | None, schema: str | None = None) -> str:
    """A revision for people: ``0002 (head)``, ``schema 2 (before migrations)``, ``empty``."""
    if revision is not None:
        return f"{revision} (head)" if revision == HEAD_REVISION else revision
    if schema is not None:
        return f"schema {schema} (before migrations)"
    return "empty (no store tables)"


def newer_error(where: str, found: str) -> StoreError:
    return StoreError(
        f"{where} was written by a newer personamem: it is at {found}, and this personamem "
        f"knows revisions up to {HEAD_REVISION} (store schema {SCHEMA_VERSION}). Upgrade "
        "personamem (pip install -U personamem) to open it; this version cannot read it safely."
    )


@lru_cache(maxsize=1)
def _known_revisions() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS))
    return frozenset(r.revision for r in script.walk_revisions())


def alembic_head() -> str:
    """The head revision as Alembic reads it from ``migrations/versions/``."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def plan(where: str, revision: str | None, schema: str | None) -> str | None:
    """Check a database's revision and ``meta.schema`` before migrating it: :class:`StoreError`
    if newer than this code (or unreadable); else the revision to stamp a pre-Alembic SQLite
    file with (None when Alembic already tracks it, or the database is empty)."""
    number = None
    if schema is not None:
        try:
            number = int(schema)
        except ValueError:
            raise StoreError(
                f"{where}: unreadable schema version {schema!r}; not a personamem store?"
            ) from None
        if number > SCHEMA_VERSION:
            raise newer_error(where, f"store schema {number}")
    if revision is not None:
        if revision != HEAD_REVISION and revision not in _known_revisions():
            raise newer_error(where, f"schema revision {revision}")
        return None
    if number is None:
        return None
    if number not in LEGACY_REVISIONS:
        raise StoreError(f"{where}: unknown store schema {number}; not a personamem store?")
    return LEGACY_REVISIONS[number]


# --- running Alembic ---------------------------------------------------------------------------
def _state(conn: Any, schema: str | None = None) -> tuple[str | None, str | None]:
    """(Alembic revision, ``meta.schema``) of the database on a SQLAlchemy connection."""
    import sqlalchemy as sa

    insp = sa.inspect(conn)
    prefix = f'"{schema}".' if schema else ""
    revision = value = None
    if insp.has_table("alembic_version", schema=schema):
        revision = conn.execute(
            sa.text(f"SELECT version_num FROM {prefix}alembic_version")
        ).scalar()
    if insp.has_table("meta", schema=schema):
        value = conn.execute(
            sa.text(f"SELECT value FROM {prefix}meta WHERE key = 'schema'")
        ).scalar()
    return revision, value


def _run(conn: Any, revision: str, schema: str | None = None, *, stamp: bool = False) -> None:
    """Alembic on ``conn`` (in the caller's transaction): upgrade, downgrade (``-1``, ``base``) or
    stamp to ``revision``."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    cfg.attributes["schema"] = schema
    if stamp:
        command.stamp(cfg, revision)
    elif revision.startswith("-") or revision == "base":
        command.downgrade(cfg, revision)
    else:
        command.upgrade(cfg, revision)


def _migrate(conn: Any, where: str, revision: str, schema: str | None) -> tuple[str, str]:
    """Check, log and run the migration to ``revision``; (before, after) described."""
    before, value = _state(conn, schema)
    legacy = plan(where, before, value)
    target = HEAD_REVISION if revision == "head" else revision
    if (before is not None or value is not None) and (legacy is not None or before != target):
        log.warning(
            "%s: migrating the store schema in place from %s to %s (one transaction)",
            where,
            describe(before, value),
            target,
        )
    if legacy is not None:
        _run(conn, legacy, schema, stamp=True)
    _run(conn, revision, schema)
    after = _state(conn, schema)
    return describe(before, value), describe(*after)


def upgrade_sqlite(path: str, revision: str = "head", timeout: float = 60.0) -> tuple[str, str]:
    """Bring a SQLite file to ``revision`` in one ``BEGIN IMMEDIATE`` transaction (several
    processes may call this at once); (before, after) described."""
    import sqlalchemy as sa

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)

    engine = sa.create_engine("sqlite://", creator=connect, poolclass=sa.pool.NullPool)

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:  # pysqlite would defer BEGIN past the DDL
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    try:
        with engine.begin() as conn:
            return _migrate(conn, path, revision, None)
    except sa.exc.OperationalError as e:
        raise StoreError(f"cannot migrate the store {path}: {e.orig}") from e
    finally:
        engine.dispose()


def sqlalchemy_url(dsn: str) -> str:
    """The libpq URL as SQLAlchemy names the psycopg 3 driver."""
    return "postgresql+psycopg://" + dsn.split("://", 1)[1]


def upgrade_postgres(
    dsn: str, schema: str | None = None, revision: str = "head"
) -> tuple[str, str]:
    """Bring a PostgreSQL database (or ``schema``) to ``revision``; several processes may call
    this at once (an advisory lock serializes them). (before, after) described."""
    import sqlalchemy as sa

    engine = sa.create_engine(sqlalchemy_url(dsn), poolclass=sa.pool.NullPool)
    where = dsn if not schema else f"{dsn} (schema {schema})"
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('personamem-schema'))"))
            if schema:
                conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                conn.execute(sa.text(f'SET search_path TO "{schema}"'))
            return _migrate(conn, where, revision, schema)
    except sa.exc.OperationalError as e:
        raise StoreError(f"cannot connect to PostgreSQL at {dsn}: {e.orig}") from e
    finally:
        engine.dispose()


def upgrade_url(url: str, revision: str = "head") -> tuple[str, str]:
    """:func:`upgrade_sqlite` or :func:`upgrade_postgres` for a store URL."""
    if url.startswith(("postgres://", "postgresql://")):
        from .postgres import split_url

        return upgrade_postgres(*split_url(url), revision=revision)
    from .sqlite import sqlite_path

    return upgrade_sqlite(sqlite_path(url), revision)


def current_url(url: str) -> str:
    """The described revision of the store at ``url`` (nothing is created or changed)."""
    import sqlalchemy as sa

    if url.startswith(("postgres://", "postgresql://")):
        from .postgres import split_url

        dsn, schema = split_url(url)
        engine = sa.create_engine(sqlalchemy_url(dsn), poolclass=sa.pool.NullPool)
    else:
        from .sqlite import sqlite_path

        path, schema = sqlite_path(url), None
        if not Path(path).exists():
            raise StoreError(f"no database file {path}")
        engine = sa.create_engine(
            "sqlite://",
            creator=lambda: sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True),
            poolclass=sa.pool.NullPool,
        )
    try:
        with engine.connect() as conn:
            return describe(*_state(conn, schema))
    except sa.exc.OperationalError as e:
        raise StoreError(f"cannot read the store at {url}: {e.orig}") from e
    finally:
        engine.dispose()


__all__ = [
    "HEAD_REVISION",
    "LEGACY_REVISIONS",
    "MIGRATIONS",
    "alembic_head",
    "current_url",
    "describe",
    "plan",
    "upgrade_postgres",
    "upgrade_sqlite",
    "upgrade_url",
]
