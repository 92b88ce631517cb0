"""Alembic environment of the PostgreSQL store: runs on the connection the store hands over
(``config.attributes["connection"]``), keeping its version table in the store's schema."""

from alembic import context

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=None,
    version_table_schema=config.attributes.get("schema"),
)
with context.begin_transaction():
    context.run_migrations()
