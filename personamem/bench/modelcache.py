"""A model wrapper that remembers continuation scores, so a benchmark never computes one twice.

Likelihood answering scores the options twice: after the prompt with its context, and after the
same prompt without context (a baseline). The baseline of a question is the same for every
system, so it is computed once and reused. It also keeps long-context cheap on the local
backend: scoring the baseline between two questions would replace the history in the KV cache
(a full re-prefill per question), so the runner scores a history's baselines first and the
answers then find them here.

A reused result is charged its logical input tokens with zero prefill (like a reused KV prefix),
so the input tokens a system reports do not depend on the order systems ran in.

With ``path``, scores are also appended to a JSONL file (the run folder's ``scores.jsonl``) and
read back on the next start, so a stopped run does not score its baselines again. Keys include
the model's name: another model never reuses them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..models.base import Generation, Message, Model


class ScoreCache(Model):
    """Delegates everything to ``inner``; memoizes :meth:`score_continuations` by exact input."""

    def __init__(self, inner: Model, path: str | Path | None = None) -> None:
        super().__init__(name=inner.name, context_window=inner.context_window, usage=inner.usage)
        self.inner = inner
        self._scores: dict[str, tuple[int, list[tuple[float, int]]]] = {}
        self.hits = 0
        self.path = Path(path) if path is not None else None
        if self.path is not None and self.path.is_file():
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        row = json.loads(line)
                        self._scores[row["key"]] = (
                            int(row["tokens_in"]),
                            [(float(a), int(b)) for a, b in row["scores"]],
                        )
                    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                        continue  # a torn last line: that score is computed again

    def _save(self, key: str, tokens_in: int, result: list[tuple[float, int]]) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        row = {"key": key, "tokens_in": tokens_in, "scores": [list(x) for x in result]}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())

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
            json.dumps(
                [self.inner.name, messages, continuations, prefix], ensure_ascii=False
            ).encode()
        ).hexdigest()
        if key in self._scores:
            tokens_in, result = self._scores[key]
            self.hits += 1
            self.usage.add(Generation("", tokens_in, 0, 0.0, prefill_tokens=0))
            return [tuple(x) for x in result]  # type: ignore[misc]
        before = self.inner.usage.snapshot()
        result = await self.inner.score_continuations(messages, continuations, prefix=prefix)
        if result is not None:
            tokens_in = self.inner.usage.since(before).tokens_in
            self._scores[key] = (tokens_in, list(result))
            self._save(key, tokens_in, list(result))
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
