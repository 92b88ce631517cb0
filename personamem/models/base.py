"""The one model interface every part of personamem talks to."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from typing_extensions import TypedDict


class Message(TypedDict):
    """A chat message, OpenAI style."""

    role: str
    content: str


class ModelError(RuntimeError):
    """A model call failed after retries (network, server, timeout, bad reply)."""


@dataclass
class Generation:
    """One model reply with its cost."""

    text: str
    tokens_in: int
    tokens_out: int
    seconds: float
    finish_reason: Literal["stop", "length"] = "stop"
    prefill_tokens: int | None = None
    """Tokens actually evaluated for the prompt (less than tokens_in when a KV prefix was reused)."""


@dataclass
class Usage:
    """Running totals of what a model has cost so far."""

    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    prefill_tokens: int = 0
    seconds: float = 0.0
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0

    def add(self, g: Generation, prefill_seconds: float = 0.0) -> None:
        self.calls += 1
        self.tokens_in += g.tokens_in
        self.tokens_out += g.tokens_out
        self.prefill_tokens += g.prefill_tokens if g.prefill_tokens is not None else g.tokens_in
        self.seconds += g.seconds
        self.prefill_seconds += prefill_seconds
        self.decode_seconds += max(0.0, g.seconds - prefill_seconds)

    def snapshot(self) -> Usage:
        return Usage(**self.__dict__)

    def since(self, before: Usage) -> Usage:
        return Usage(**{k: getattr(self, k) - getattr(before, k) for k in self.__dict__})

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def longest_prefix(text: str, count: Callable[[str], int], max_tokens: int) -> str:
    """The longest prefix of ``text`` with at most ``max_tokens`` tokens by ``count``
    (binary search on characters; the one truncation search of personamem)."""
    if count(text) <= max_tokens:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(text[:mid]) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


@dataclass
class Model(ABC):
    """An LLM: generate text, optionally score a fixed set of choices, count tokens exactly.

    Every backend (llama.cpp, OpenAI-compatible HTTP, the scripted test double) implements this.
    """

    name: str
    context_window: int = 32768
    usage: Usage = field(default_factory=Usage)

    @abstractmethod
    async def generate(
        self,
        messages: list[Message],
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
        json_schema: dict[str, Any] | None = None,
        stop: list[str] | None = None,
        seed: int | None = None,
    ) -> Generation:
        """Return the assistant's reply to ``messages``.

        ``json_schema`` constrains the reply to JSON matching the schema where the backend can
        (llama.cpp grammar, OpenAI ``response_format``); callers must still validate the result.
        Raises :class:`ModelError` when the call fails.
        """

    async def score_choices(
        self, messages: list[Message], choices: list[str], *, prefix: str = ""
    ) -> list[float] | None:
        """Log-probability of each choice as the start of the assistant's reply (after ``prefix``).

        Returns None when the backend cannot score (callers then generate and parse).
        """
        return None

    async def score_continuations(
        self, messages: list[Message], continuations: list[str], *, prefix: str = ""
    ) -> list[tuple[float, int]] | None:
        """Total log-probability and token count of each continuation of the assistant's reply.

        Returns None when the backend cannot score.
        """
        return None

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Exact number of tokens of ``text`` for this model's tokenizer (no special tokens)."""

    def count_message_tokens(self, messages: list[Message]) -> int:
        """Tokens of a chat prompt, including the chat template's per-message overhead."""
        return sum(self.count_tokens(m["content"]) + 4 for m in messages) + 2

    def truncate_to_tokens(self, text: str, max_tokens: int) -> str:
        """Longest prefix of ``text`` that fits in ``max_tokens`` (binary search on characters)."""
        return longest_prefix(text, self.count_tokens, max_tokens)

    def _record(self, g: Generation, prefill_seconds: float = 0.0) -> Generation:
        self.usage.add(g, prefill_seconds)
        return g

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release resources (HTTP clients, model weights)."""
