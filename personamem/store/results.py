"""What the memory store API returns (pydantic models, JSON-ready)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ..memory.agent import MemoryUpdateError
from .base import Provenance, StoredMessage, VersionRecord


class LineView(BaseModel):
    """One line of the memory and the stored messages (per-user ``seq``) that support it."""

    text: str
    sources: list[int] = Field(default_factory=list)


class UserMemory(BaseModel):
    """A user's current memory."""

    user_id: str
    version: int
    text: str
    lines: list[LineView]
    forgotten: list[str]
    tokens: int
    messages: int
    pending_messages: int
    pending_tokens: int
    updated_at: float | None = None


class VersionInfo(Provenance):
    """One memory version, what produced it, and its diff from the version before."""

    version: int
    parent: int
    source: str
    created_at: float
    text: str
    diff: str = ""

    @classmethod
    def of(cls, rec: VersionRecord, diff: str = "") -> VersionInfo:
        return cls(**rec.model_dump(exclude={"user_id", "state"}), diff=diff)


class AddResult(BaseModel):
    """What ``add`` stored and the versions it wrote."""

    user_id: str
    stored: list[int]
    duplicates: list[str]
    redactions: int
    versions: list[VersionInfo]
    pending_messages: int
    pending_tokens: int


class LineSources(BaseModel):
    text: str
    sources: list[StoredMessage]


class MemoryBusy(TimeoutError):
    """Another worker held the user's update lease for longer than ``lock_timeout``
    (from ``add``: the messages are stored and pending; ``.result`` says what was stored)."""

    result: AddResult | None = None


class LeaseLost(MemoryUpdateError):
    """Another worker took the user's update lease during an update (it was held longer than
    ``lease_seconds``); nothing more was committed and the rest stays pending."""


class OverCap(ValueError):
    """A memory a person wrote (``edit``) is over the token cap; nothing was changed."""


class UpdateFailed(MemoryUpdateError):
    """The messages were stored but an update failed; they stay pending (retry with ``flush``)."""

    def __init__(self, message: str, result: AddResult) -> None:
        super().__init__(message)
        self.result = result


__all__ = [
    "AddResult",
    "LeaseLost",
    "LineSources",
    "LineView",
    "MemoryBusy",
    "OverCap",
    "UpdateFailed",
    "UserMemory",
    "VersionInfo",
]
