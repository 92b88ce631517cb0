"""The memory web page (filled in below)."""

from __future__ import annotations

from typing import Any


def install_web(app: Any) -> None:
    return None
