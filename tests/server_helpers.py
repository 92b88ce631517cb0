"""Shared set-up of the service tests: a real SQLite store, real keys, the scripted echo model
(control flow only), an app reached through httpx's ASGI transport or a real uvicorn server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from memory_fakes import echo_model

from personamem.server import KeyStore, ServerConfig, create_app
from personamem.store import AsyncMemory

DEFAULT_DB: str | None = None
"""The store of ``make_app`` when none is given (a test module may point it at PostgreSQL)."""


def make_app(
    tmp_path: Path, *, model: Any = None, upstream: Any = None, db: str | None = None, **config: Any
) -> tuple[FastAPI, KeyStore]:
    """The app over a real store (SQLite in ``tmp_path``, or ``db``) and the scripted echo model."""
    db = db or DEFAULT_DB or f"sqlite:///{tmp_path / 'service.db'}"
    config = {"chunk_tokens": 40, "memory_tokens": 100000, "update_backoff": 0.01, **config}
    cfg = ServerConfig(db=db, **config)
    memory = AsyncMemory(
        db,
        model=model or echo_model(),
        chunk_tokens=cfg.chunk_tokens,
        memory_tokens=cfg.memory_tokens,
        strategy="extract",
    )
    keys = KeyStore(db)
    return create_app(memory, keys, cfg, upstream=upstream), keys


@contextlib.asynccontextmanager
async def asgi_client(app: FastAPI, key: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=headers
        ) as c:
            yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(app: Any) -> Iterator[str]:
    """A real uvicorn server on a free loopback port, in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def drain(app: FastAPI) -> None:
    await app.state.service.queue.drain()
    await asyncio.sleep(0)
