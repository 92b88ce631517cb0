"""The memory agent: build and update one capped, human-readable memory from a chat history.

The product around it (a durable per-user store, versions, API, CLI) is :mod:`personamem.store`.
"""

from .agent import BuildResult, ChunkReport, MemoryAgent, MemoryConfig, MemoryUpdateError
from .chunking import Chunk, Piece, chunk_messages, split_message
from .merge import detect_forget
from .ownership import not_the_users, third_party, written_by_others
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
    "detect_forget",
    "find_secrets",
    "not_the_users",
    "redact",
    "split_message",
    "third_party",
    "written_by_others",
]
