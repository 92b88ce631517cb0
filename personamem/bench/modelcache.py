"""A model wrapper that remembers continuation scores, so a benchmark never computes one twice.

Likelihood answering scores the options twice: after the prompt with its context, and after the
same prompt without context (a baseline). The baseline of a question is the same for every
system, so it is computed once and reused. It also keeps long-context cheap on the local
backend: scoring the baseline between two questions would replace the history in the KV cache
(a full re-prefill per question), so the runner scores a history's baselines first and the
answers then find them here.

A reused result is charged its logical input tokens with zero prefill (like a reused KV prefix),
so the input tokens a system reports do not depend on the order systems ran in.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..models.base import Generation, Message, Model


class ScoreCache(Model):
    """Delegates everything to ``inner``; memoizes :meth:`score_continuations` by exact input."""

    def __init__(self, inner: Model) -> None:
        super().__init__(name=inner.name, context_window=inner.context_window, usage=inner.usage)
        self.inner = inner
        self._scores: dict[str, tuple[int, list[tuple[float, int]]]] = {}
        self.hits = 0

    async def generate(self, messages: list[Message], **kw: Any) -> Generation:
        return await self.inner.generate(messages, **kw)

    async def score_choices(
        self, messages: list[Message], choices: list[str], *, prefix: str = ""
    ) -> list[float] | None:
        return await self.inner.score_choices(messages, choices, prefix=prefix)

    async def score_continuations(
        self, messages: list[Message], continuations: list[str], *, prefix: str = ""
    ) -> list[tuple[float, int]] | None:
        key = hashlib.sha256(
            json.dumps([messages, continuations, prefix], ensure_ascii=False).encode()
        ).hexdigest()
        if key in self._scores:
            tokens_in, result = self._scores[key]
            self.hits += 1
            self.usage.add(Generation("", tokens_in, 0, 0.0, prefill_tokens=0))
            return [tuple(x) for x in result]  # type: ignore[misc]
        before = self.inner.usage.snapshot()
        result = await self.inner.score_continuations(messages, continuations, prefix=prefix)
        if result is not None:
            self._scores[key] = (self.inner.usage.since(before).tokens_in, list(result))
        return result

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def count_message_tokens(self, messages: list[Message]) -> int:
        return self.inner.count_message_tokens(messages)

    def truncate_to_tokens(self, text: str, max_tokens: int) -> str:
        return self.inner.truncate_to_tokens(text, max_tokens)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __getattr__(self, name: str) -> Any:
        """Anything else (backend extras) comes from the wrapped model."""
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
