"""Memory as a product: a durable, versioned memory per user over the memory agent.

``Memory`` (blocking) and ``AsyncMemory`` (coroutines) store messages, run the agent of
:mod:`personamem.memory` over the pending ones, and keep every version, its provenance, forget
requests and the redaction log in a :class:`Store` (SQLite: :class:`SQLiteStore`).
"""

from .api import AsyncMemory, Memory
from .base import (
    SCHEMA_VERSION,
    Conflict,
    NewMessage,
    NewVersion,
    RedactionRecord,
    Store,
    StoredMessage,
    StoreError,
    UnknownUser,
    UserInfo,
    VersionRecord,
    open_store,
)
from .results import (
    AddResult,
    LeaseLost,
    LineSources,
    LineView,
    MemoryBusy,
    OverCap,
    UpdateFailed,
    UserMemory,
    VersionInfo,
)
from .sqlite import SQLiteStore

__all__ = [
    "SCHEMA_VERSION",
    "AddResult",
    "AsyncMemory",
    "Conflict",
    "LeaseLost",
    "LineSources",
    "LineView",
    "Memory",
    "MemoryBusy",
    "NewMessage",
    "OverCap",
    "NewVersion",
    "RedactionRecord",
    "SQLiteStore",
    "Store",
    "StoreError",
    "StoredMessage",
    "UnknownUser",
    "UpdateFailed",
    "UserInfo",
    "UserMemory",
    "VersionInfo",
    "VersionRecord",
    "open_store",
]
