"""Personalization proxy (filled in below)."""

from __future__ import annotations

from typing import Any


def install_proxy(app: Any, service: Any, upstream: Any) -> None:
    app.state.proxy = None
