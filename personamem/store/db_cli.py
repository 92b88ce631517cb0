"""``personamem db ...``: the store's schema revision, and its upgrade by the Alembic migrations.

Opening a store upgrades it too; ``personamem db upgrade`` does it explicitly (before a deploy,
with a backup at hand) and prints the revision before and after.
"""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from .base import StoreError, open_store
from .cli import DEFAULT_STORE
from .migrate import HEAD_REVISION, current_url, upgrade_url

db_app = typer.Typer(
    help="The store's database schema (Alembic migrations, SQLite and PostgreSQL).",
    no_args_is_help=True,
)
console = Console(stderr=True)
out = Console()

DbOpt = Annotated[
    str,
    typer.Option(
        "--db",
        "--store",
        "-s",
        envvar="PERSONAMEM_STORE",
        help="Store URL: sqlite:///memories.db or postgresql://user@host/db (env PERSONAMEM_STORE).",
    ),
]


def _fail(msg: str) -> NoReturn:
    console.print(f"[bold red]error:[/] {escape(msg)}")
    raise typer.Exit(1)


@db_app.command("upgrade")
def upgrade_cmd(db: DbOpt = DEFAULT_STORE) -> None:
    """Upgrade the store's schema to the newest revision; print the revision before and after."""
    try:
        before, after = upgrade_url(db)
        open_store(db).close()  # the store's own first-open rows (fingerprint key)
    except StoreError as e:
        _fail(str(e))
    out.print(f"before: {escape(before)}")
    out.print(f"after:  {escape(after)}")
    if before == after:
        out.print("already at the newest revision; nothing changed")


@db_app.command("current")
def current_cmd(db: DbOpt = DEFAULT_STORE) -> None:
    """Print the store's schema revision (changes nothing)."""
    try:
        out.print(escape(current_url(db)))
    except StoreError as e:
        _fail(str(e))
    out.print(f"newest revision of this personamem: {HEAD_REVISION}")


__all__ = ["db_app"]
