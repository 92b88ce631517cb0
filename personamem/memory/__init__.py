"""Agentic memory: build, update and hold one capped, human-readable memory per user."""

from .agent import BuildResult, ChunkReport, MemoryAgent, MemoryConfig, MemoryUpdateError
from .chunking import Chunk, Piece, chunk_messages, split_message
from .privacy import PrivacyGuard, Redaction, find_secrets, redact
from .state import EMPTY, MemoryLine, MemoryState

__all__ = [
    "EMPTY",
    "BuildResult",
    "Chunk",
    "ChunkReport",
    "MemoryAgent",
    "MemoryConfig",
    "MemoryLine",
    "MemoryState",
    "MemoryUpdateError",
    "Piece",
    "PrivacyGuard",
    "Redaction",
    "chunk_messages",
    "find_secrets",
    "redact",
    "split_message",
]
