"""A deterministic test double: replies come from a script, never from a model.

For unit tests of control flow only; never what a user runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .base import Generation, Message, Model, ModelError

Reply = str | Exception | Callable[[list[Message]], "str | Exception"]


@dataclass
class ScriptedModel(Model):
    """Returns scripted replies in order (or from a function of the messages).

    Tokens are counted as whitespace-separated words plus punctuation runs, which is exact for
    this model by definition. ``calls`` keeps every prompt it was sent, for assertions.
    """

    name: str = "scripted"
    replies: list[Reply] = field(default_factory=list)
    default: Reply = "I don't know."
    choice_scores: Callable[[list[Message], list[str]], list[float]] | None = None
    continuation_scores: Callable[[list[Message], list[str]], list[tuple[float, int]]] | None = None
    """(total log-probability, tokens) of each continuation, for ``score_continuations``."""
    calls: list[list[Message]] = field(default_factory=list)
    settings: list[dict[str, Any]] = field(default_factory=list)
    """The generation settings of each ``generate`` call (max_tokens, temperature, ...)."""

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
        self.calls.append([dict(m) for m in messages])  # type: ignore[misc]
        self.settings.append(
            {
                "max_tokens": max_tokens,
                "temperature": temperature,
                "json_schema": json_schema,
                "stop": stop,
                "seed": seed,
            }
        )
        reply: Reply = self.replies.pop(0) if self.replies else self.default
        if callable(reply) and not isinstance(reply, Exception):
            reply = reply(messages)
        if isinstance(reply, Exception):
            raise reply if isinstance(reply, ModelError) else ModelError(str(reply))
        words = _TOKEN.findall(reply)
        finish = "stop"
        if len(words) > max_tokens:
            reply = "".join(_TOKEN_WS.findall(reply)[:max_tokens])
            words = words[:max_tokens]
            finish = "length"
        g = Generation(
            text=reply,
            tokens_in=self.count_message_tokens(messages),
            tokens_out=len(words),
            seconds=0.0,
            finish_reason=finish,  # type: ignore[arg-type]
        )
        return self._record(g)

    async def score_choices(
        self, messages: list[Message], choices: list[str], *, prefix: str = ""
    ) -> list[float] | None:
        if self.choice_scores is None:
            return None
        self.calls.append([dict(m) for m in messages])  # type: ignore[misc]
        return self.choice_scores(messages, choices)

    async def score_continuations(
        self, messages: list[Message], continuations: list[str], *, prefix: str = ""
    ) -> list[tuple[float, int]] | None:
        if self.continuation_scores is None:
            return None
        self.calls.append([dict(m) for m in messages])  # type: ignore[misc]
        return self.continuation_scores(messages, continuations)

    def count_tokens(self, text: str) -> int:
        return len(_TOKEN.findall(text))


_TOKEN = re.compile(r"\w+|[^\w\s]+")
_TOKEN_WS = re.compile(r"\s*(?:\w+|[^\w\s]+)")
