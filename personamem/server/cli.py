"""``personamem serve`` and ``personamem keys create|list|revoke``."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..store.base import StoreError
from .config import ENV, ServerConfig
from .keys import KeyStore

console = Console(stderr=True)
out = Console()

DbOpt = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="PERSONAMEM_STORE",
        help="Store URL: sqlite:///path.db or postgresql://host/db (the keys live there too).",
    ),
]
keys_app = typer.Typer(
    help="API keys of the service: each belongs to one tenant and sees only its users.",
    no_args_is_help=True,
)


def _keys(db: str) -> KeyStore:
    try:
        return KeyStore(db)
    except (StoreError, OSError, ValueError) as e:
        console.print(f"[bold red]error:[/] cannot open the key store at {db}: {e}")
        raise typer.Exit(1) from None


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant the key belongs to.")],
    db: DbOpt = "sqlite:///personamem.db",
    name: Annotated[str, typer.Option(help="A label for the key (who uses it).")] = "",
    scope: Annotated[
        str, typer.Option(help="write (every operation) or read (no changes).")
    ] = "write",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Create a key and print it. The key is shown only now; only its hash is stored."""
    try:
        new = _keys(db).create(tenant, name=name, scope=scope)  # type: ignore[arg-type]
    except StoreError as e:
        console.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(2) from None
    if as_json:
        out.print_json(new.model_dump_json())
        return
    out.print(new.key, soft_wrap=True)
    console.print(
        f"key id {new.key_id}, tenant {new.tenant}, scope {new.scope}: store it now, "
        "it cannot be shown again"
    )


@keys_app.command("list")
def keys_list(
    db: DbOpt = "sqlite:///personamem.db",
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List keys (ids, tenants, scopes, state; never the secrets)."""
    keys = _keys(db).list(tenant)
    if as_json:
        out.print_json(json.dumps([k.model_dump() for k in keys]))
        return
    table = Table("key id", "tenant", "name", "scope", "state")
    for k in keys:
        table.add_row(k.key_id, k.tenant, k.name, k.scope, "active" if k.active else "revoked")
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (from `personamem keys list`).")],
    db: DbOpt = "sqlite:///personamem.db",
) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    try:
        k = _keys(db).revoke(key_id)
    except StoreError as e:
        console.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(1) from None
    console.print(f"revoked {k.key_id} (tenant {k.tenant})")


def serve(
    db: DbOpt = "sqlite:///personamem.db",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    model: Annotated[
        str, typer.Option("--model", "-m", help="Model that writes memories and answers.")
    ] = "local/qwen2.5-1.5b",
    upstream: Annotated[
        str | None,
        typer.Option(
            help="Where /v1/chat/completions forwards: an OpenAI-compatible base URL "
            "(http://host:port/v1) or a model spec (local/qwen2.5-0.5b). Default: no proxy."
        ),
    ] = None,
    chunk_tokens: Annotated[int, typer.Option(help="Tokens of messages per memory update.")] = 5000,
    memory_tokens: Annotated[int, typer.Option(help="Memory size cap in tokens.")] = 2048,
    update_workers: Annotated[
        int, typer.Option(help="Background memory updaters in each API process.")
    ] = 1,
    rate_limit: Annotated[
        float, typer.Option(help="Requests per second per key (0: no limit).")
    ] = 50.0,
    max_body: Annotated[int, typer.Option(help="Largest request body in bytes.")] = 1_048_576,
    workers: Annotated[int, typer.Option(help="API processes (uvicorn workers).")] = 1,
    queue: Annotated[
        str | None,
        typer.Option(
            envvar="PERSONAMEM_QUEUE",
            help="Redis URL of the durable update queue shared with `personamem worker` "
            "(redis://127.0.0.1:6379/0). Default: updates run in this process.",
        ),
    ] = None,
) -> None:
    """Run the HTTP service: the memory API under /v1, the web page at /, metrics at /metrics,
    the OpenAPI schema at /openapi.json and its docs at /docs. Create a key first:
    `personamem keys create --tenant T --db URL`."""
    import uvicorn

    cfg = ServerConfig(
        db=db,
        model=model,
        upstream=upstream,
        chunk_tokens=chunk_tokens,
        memory_tokens=memory_tokens,
        update_workers=update_workers,
        rate_limit=rate_limit,
        max_body_bytes=max_body,
        queue=queue,
    )
    _keys(db).close()  # fail early on a bad URL, and create the tables once
    os.environ[ENV] = cfg.to_env()
    console.print(f"personamem serving {db} on http://{host}:{port} (docs at /docs)")
    uvicorn.run(
        "personamem.server.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


def worker(
    queue: Annotated[
        str,
        typer.Option(envvar="PERSONAMEM_QUEUE", help="Redis URL of the update queue."),
    ] = "redis://127.0.0.1:6379/0",
    db: DbOpt = "sqlite:///personamem.db",
    model: Annotated[
        str, typer.Option("--model", "-m", help="Model that writes memories.")
    ] = "local/qwen2.5-1.5b",
    chunk_tokens: Annotated[int, typer.Option(help="Tokens of messages per memory update.")] = 5000,
    memory_tokens: Annotated[int, typer.Option(help="Memory size cap in tokens.")] = 2048,
    threads: Annotated[int, typer.Option(help="Jobs run at once in this process.")] = 1,
    retries: Annotated[int, typer.Option(help="Attempts per job before a dead letter.")] = 5,
    namespace: Annotated[str, typer.Option(help="Redis key prefix (as `serve`).")] = "personamem",
) -> None:
    """Run memory updates from the durable queue (start as many as you like, on any machine
    that reaches the database and Redis). Ctrl-C finishes the running jobs and stops."""
    import signal
    import threading

    from ..store import AsyncMemory
    from .queue import DurableUpdates, LoopRunner, QueueConfig

    try:
        memory = AsyncMemory(
            db, model=model, chunk_tokens=chunk_tokens, memory_tokens=memory_tokens
        )
        jobs = DurableUpdates(
            QueueConfig(url=queue, namespace=namespace, max_retries=max(0, retries - 1))
        )
    except (StoreError, OSError, ValueError) as e:
        console.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(1) from None
    runner = LoopRunner(memory)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    jobs.start_worker(runner, threads=threads)
    console.print(f"personamem worker: {threads} thread(s) on {queue}, store {db}")
    stop.wait()
    console.print("stopping: finishing running jobs")
    jobs.stop()
    runner.close()
    memory.close()


__all__ = ["keys_app", "serve", "worker"]
