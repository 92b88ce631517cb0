"""Alembic environment of the store, shared by SQLite and PostgreSQL: runs on the connection
the caller hands over (``config.attributes["connection"]``, in its transaction), keeping the
version table in the store's PostgreSQL schema; SQLite ALTERs run in batch mode (table copy)."""

from alembic import context

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=None,
    version_table_schema=config.attributes.get("schema"),
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
