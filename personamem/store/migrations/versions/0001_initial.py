"""The store's first schema: users, messages, versions, redactions, locks, meta, API keys.

The same tables on both backends; SQLite names its own types (``REAL``, an ``AUTOINCREMENT`` id),
as the SQLite store created them before its schema moved to Alembic (store schema 1 and 2).

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS users (
        user_id     TEXT PRIMARY KEY,
        created_at  DOUBLE PRECISION NOT NULL,
        next_seq    INTEGER NOT NULL DEFAULT 0,
        cursor      INTEGER NOT NULL DEFAULT 0,
        cursor_part INTEGER NOT NULL DEFAULT 0,
        head        INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS messages (
        user_id    TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        seq        INTEGER NOT NULL,
        msg_id     TEXT NOT NULL,
        role       TEXT NOT NULL,
        content    TEXT NOT NULL,
        tokens     INTEGER NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (user_id, seq),
        UNIQUE (user_id, msg_id)
    )""",
    """CREATE TABLE IF NOT EXISTS versions (
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
        seconds        DOUBLE PRECISION NOT NULL,
        note           TEXT NOT NULL,
        warnings       TEXT NOT NULL,
        report         TEXT NOT NULL,
        created_at     DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (user_id, version)
    )""",
    """CREATE TABLE IF NOT EXISTS redactions (
        id          BIGSERIAL PRIMARY KEY,
        user_id     TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        at          DOUBLE PRECISION NOT NULL,
        location    TEXT NOT NULL,
        kind        TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        start_pos   INTEGER,
        end_pos     INTEGER,
        seq         INTEGER,
        version     INTEGER
    )""",
    "CREATE INDEX IF NOT EXISTS redactions_user ON redactions(user_id, id)",
    """CREATE TABLE IF NOT EXISTS locks (
        user_id TEXT PRIMARY KEY,
        owner   TEXT NOT NULL,
        host    TEXT NOT NULL,
        pid     INTEGER NOT NULL,
        expires DOUBLE PRECISION NOT NULL
    )""",
]
TABLES.append(
    """CREATE TABLE IF NOT EXISTS personamem_api_keys (
        key_id     TEXT PRIMARY KEY,
        tenant     TEXT NOT NULL,
        name       TEXT NOT NULL,
        scope      TEXT NOT NULL,
        hash       TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION
    )"""
)

SQLITE_TABLES = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS users (
    user_id    TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    next_seq   INTEGER NOT NULL DEFAULT 0,
    cursor     INTEGER NOT NULL DEFAULT 0,
    cursor_part INTEGER NOT NULL DEFAULT 0,
    head       INTEGER NOT NULL DEFAULT 0
)""",
    """CREATE TABLE IF NOT EXISTS messages (
    user_id    TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    msg_id     TEXT NOT NULL,
    role       TEXT NOT NULL,
    content    TEXT NOT NULL,
    tokens     INTEGER NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (user_id, seq),
    UNIQUE (user_id, msg_id)
)""",
    """CREATE TABLE IF NOT EXISTS versions (
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
)""",
    """CREATE TABLE IF NOT EXISTS redactions (
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
)""",
    "CREATE INDEX IF NOT EXISTS redactions_user ON redactions(user_id, id)",
    """CREATE TABLE IF NOT EXISTS locks (
    user_id TEXT PRIMARY KEY,
    owner   TEXT NOT NULL,
    host    TEXT NOT NULL,
    pid     INTEGER NOT NULL,
    expires REAL NOT NULL
)""",
    TABLES[-1],  # API keys: the same statement (DOUBLE PRECISION has SQLite's REAL affinity)
]


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for stmt in SQLITE_TABLES if sqlite else TABLES:
        op.execute(stmt)


def downgrade() -> None:
    for table in (
        "personamem_api_keys",
        "locks",
        "redactions",
        "versions",
        "messages",
        "users",
        "meta",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
