"""Agentic memory: build, update and hold one capped, human-readable memory per user."""

from .agent import BuildResult, ChunkReport, MemoryAgent, MemoryConfig, MemoryUpdateError
from .api import (
    AddResult,
    AsyncMemory,
    LineSources,
    LineView,
    Memory,
    MemoryBusy,
    UpdateFailed,
    UserMemory,
    VersionInfo,
    detect_forget,
)
from .chunking import Chunk, Piece, chunk_messages, split_message
from .privacy import PrivacyGuard, Redaction, find_secrets, redact
from .state import EMPTY, MemoryLine, MemoryState
from .store import SQLiteStore, Store, StoreError, UnknownUser, open_store

__all__ = [
    "EMPTY",
    "AddResult",
    "AsyncMemory",
    "BuildResult",
    "Chunk",
    "ChunkReport",
    "LineSources",
    "LineView",
    "Memory",
    "MemoryBusy",
    "MemoryAgent",
    "MemoryConfig",
    "MemoryLine",
    "MemoryState",
    "MemoryUpdateError",
    "Piece",
    "PrivacyGuard",
    "Redaction",
    "SQLiteStore",
    "Store",
    "StoreError",
    "UnknownUser",
    "UpdateFailed",
    "UserMemory",
    "VersionInfo",
    "chunk_messages",
    "detect_forget",
    "find_secrets",
    "open_store",
    "redact",
    "split_message",
]
