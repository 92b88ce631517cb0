"""Settings of the HTTP service."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

ENV = "PERSONAMEM_SERVER_CONFIG"


@dataclass
class ServerConfig:
    """What ``personamem serve`` runs; every field is a command-line option."""

    db: str = "sqlite:///personamem.db"
    """Store URL: ``sqlite:///path.db`` or ``postgresql://host/db``; API keys live there too."""
    model: str = "local/qwen2.5-1.5b"
    """Model that writes memories and answers ``/answer``."""
    chunk_tokens: int = 5000
    memory_tokens: int = 2048
    upstream: str | None = None
    """What ``/v1/chat/completions`` forwards to: an OpenAI-compatible base URL
    (``http://host:port/v1``) or a model spec (``local/qwen2.5-0.5b``); None disables the proxy."""
    upstream_key: str | None = None
    """Bearer key for an upstream URL (default: ``OPENAI_API_KEY``)."""
    proxy_memory_tokens: int = 1024
    """Memory tokens the proxy adds to a request."""
    max_body_bytes: int = 1_048_576
    rate_limit: float = 50.0
    """Requests per second per API key (burst: twice as many); 0 turns the limit off."""
    update_workers: int = 1
    """In-process update workers (0: none; then ``personamem worker`` must run)."""
    update_retries: int = 5
    """Attempts per update job before it is a dead letter."""
    update_backoff: float = 1.0
    """Seconds before the first retry (doubling each time)."""
    queue: str | None = None
    """Redis URL of the durable job queue (``redis://host:6379/0``), shared by every API process
    and ``personamem worker``; None: jobs live in this process (the data stays durable: pending
    messages are in the store and the next add or flush reads them)."""
    queue_namespace: str = "personamem"
    queue_heartbeat_ms: int = 60_000

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServerConfig:
        raw = os.environ.get(ENV)
        return cls(**json.loads(raw)) if raw else cls()


__all__ = ["ENV", "ServerConfig"]
