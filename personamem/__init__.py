"""personamem: learn who a user is from long chat histories and personalize answers.

``from personamem import Memory`` is the per-user memory store (see :mod:`personamem.store`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["AsyncMemory", "Memory"]


def __getattr__(name: str) -> Any:
    # Lazy, so ``import personamem.models`` does not pull in the store (and no import cycle).
    if name in __all__:
        from . import store

        return getattr(store, name)
    raise AttributeError(f"module 'personamem' has no attribute {name!r}")
