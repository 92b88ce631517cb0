"""The personamem service: an HTTP API (FastAPI) over the per-user memory store, with API keys
scoped to tenants, background memory updates, a personalization proxy, a web page and metrics.

``personamem serve`` runs it; :func:`create_app` builds the ASGI app over an open store. The web
framework is imported on first use (extra ``server``), so the rest of the CLI works without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import ServerConfig
from .keys import ApiKey, KeyStore, KeyStoreError, NewKey

if TYPE_CHECKING:
    from .app import ApiError, Principal, Service, build_app, create_app

_LAZY = {"ApiError", "Principal", "Service", "build_app", "create_app"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import app

        return getattr(app, name)
    raise AttributeError(name)


__all__ = [
    "ApiError",
    "ApiKey",
    "KeyStore",
    "KeyStoreError",
    "NewKey",
    "Principal",
    "ServerConfig",
    "Service",
    "build_app",
    "create_app",
]
