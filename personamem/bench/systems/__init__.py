"""Benchmarked systems: one module each, found automatically (see :mod:`.base`)."""

from __future__ import annotations

import importlib
import pkgutil

from .base import SYSTEMS, Context, Env, Prepared, Progress, System, conversation, register

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name != "base":
        importlib.import_module(f"{__name__}.{_mod.name}")


def get_system(name: str) -> type[System]:
    """The system class called ``name``; ValueError listing the known names otherwise."""
    try:
        return SYSTEMS[name]
    except KeyError:
        raise ValueError(
            f"unknown system {name!r}; choose from {', '.join(sorted(SYSTEMS))}"
        ) from None


__all__ = [
    "SYSTEMS",
    "Context",
    "Env",
    "Prepared",
    "Progress",
    "System",
    "conversation",
    "get_system",
    "register",
]
