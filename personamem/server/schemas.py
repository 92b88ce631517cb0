"""Request and response bodies of the HTTP API (pydantic: every field validated)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ..store.base import StoredMessage

USER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$"
"""User ids: 1-128 letters, digits, ``. _ @ + -`` (starting with a letter or digit)."""

MAX_MESSAGE_CHARS = 200_000
MAX_MESSAGES = 1000


def _json_int(v: Any) -> int:
    """A JSON integer: ``3`` or ``3.0`` (JSON Schema counts both), never ``true`` or ``"3"``."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError("must be an integer")
    if isinstance(v, float) and not v.is_integer():
        raise ValueError("must be an integer")
    return int(v)


def json_int(ge: int, le: int | None = None) -> Any:
    """An integer field type within bounds that takes JSON integers only (see ``_json_int``)."""
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(_json_int)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class MessageIn(Strict):
    """One chat message to store."""

    role: Literal["user", "assistant", "system", "tool"] = "user"
    content: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Your id for the message; a message whose id was stored before is skipped.",
    )


class AddRequest(Strict):
    messages: list[MessageIn] = Field(min_length=1, max_length=MAX_MESSAGES)
    update: Literal["background", "wait", "none"] = Field(
        default="background",
        description="background: store and return at once, the memory updates later (202); "
        "wait: update now and return the new versions; none: only store.",
    )


class EditRequest(Strict):
    text: str = Field(
        max_length=MAX_MESSAGE_CHARS,
        description="The new memory, one statement per line (`[msg N]` citations optional).",
    )


class ForgetRequest(Strict):
    what: str = Field(
        min_length=1, max_length=2000, pattern=r"\S", description="What to forget, in words."
    )


class UndoRequest(Strict):
    version: json_int(0) | None = Field(
        default=None, description="Version to restore (0 = empty); default: the previous."
    )


class AnswerRequest(Strict):
    query: str = Field(min_length=1, max_length=20_000)
    options: list[Annotated[str, Field(min_length=1, max_length=2000)]] | None = Field(
        default=None,
        min_length=2,
        max_length=10,
        description="Answer choices (multiple choice); omit for an open answer.",
    )
    max_tokens: json_int(1, 100_000) | None = Field(
        default=None, description="Memory tokens to put in the prompt."
    )


class LineWithMessages(BaseModel):
    """One memory line and the stored messages behind it."""

    text: str
    sources: list[int]
    messages: list[StoredMessage]


class MemoryView(BaseModel):
    """A user's current memory, each line with the messages behind it."""

    user_id: str
    version: int
    text: str
    lines: list[LineWithMessages]
    forgotten: list[str]
    tokens: int
    messages: int
    pending_messages: int
    pending_tokens: int
    updated_at: float | None = None


class ContextView(BaseModel):
    user_id: str
    context: str


class AnswerView(BaseModel):
    text: str
    choice: int | None = None
    letter: str | None = None
    method: str
    tokens_in: int = 0
    tokens_out: int = 0


class UserList(BaseModel):
    users: list[str]


class DeleteView(BaseModel):
    user_id: str
    deleted: dict[str, int]


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorBody


__all__ = [
    "AddRequest",
    "AnswerRequest",
    "AnswerView",
    "ContextView",
    "DeleteView",
    "EditRequest",
    "ErrorResponse",
    "ForgetRequest",
    "LineWithMessages",
    "MemoryView",
    "MessageIn",
    "UndoRequest",
    "UserList",
]
