"""Model calls for the pipeline: bounded concurrency, retries with backoff, structured replies
(schema-constrained where the backend allows, repaired and retried otherwise), per-stage usage."""

from __future__ import annotations

import ast
import asyncio
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..models.base import Message, Model, ModelError

T = TypeVar("T", bound=BaseModel)


class StructuredOutputError(RuntimeError):
    """A reply never matched its schema within the allowed repairs (the message says where)."""


@dataclass
class StageUsage:
    """What one stage cost: calls, tokens, retries, repairs, wall seconds."""

    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    retries: int = 0
    repairs: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def extract_json(text: str) -> Any:
    """Parse a JSON object from a model reply: code fences, prose around it, trailing commas,
    Python literals. Raises ValueError saying what is wrong."""
    t = text.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", t, re.S)
    if fence:
        t = fence.group(1).strip()
    start = t.find("{")
    if start < 0:
        raise ValueError("no JSON object in the reply")
    end = t.rfind("}")
    candidates = [t[start : end + 1]] if end > start else []
    candidates.append(t[start:] + "}")  # cut off before the closing brace
    for c in candidates:
        for variant in (c, re.sub(r",\s*([}\]])", r"\1", c)):
            try:
                return json.loads(variant)
            except json.JSONDecodeError:
                pass
            try:
                val = ast.literal_eval(variant)
                if isinstance(val, dict):
                    return val
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                pass
    raise ValueError("the reply is not valid JSON")


@dataclass
class LLM:
    """One model shared by every stage, with a semaphore and per-stage accounting."""

    model: Model
    concurrency: int = 4
    max_retries: int = 4
    max_repairs: int = 3
    backoff_seconds: float = 1.0
    usage: dict[str, StageUsage] = field(default_factory=dict)
    _sem: asyncio.Semaphore | None = field(default=None, repr=False)

    def stage(self, name: str) -> StageUsage:
        return self.usage.setdefault(name, StageUsage())

    async def text(
        self,
        stage: str,
        messages: list[Message],
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
        json_schema: dict[str, Any] | None = None,
        seed: int | None = None,
    ) -> str:
        """One generation with retries on :class:`ModelError` (backoff doubles each time)."""
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.concurrency)
        u = self.stage(stage)
        delay = self.backoff_seconds
        for attempt in range(1, self.max_retries + 1):
            try:
                async with self._sem:
                    t0 = time.perf_counter()
                    g = await self.model.generate(
                        messages,
                        max_tokens=max_tokens,
                        temperature=temperature,
                        json_schema=json_schema,
                        seed=seed,
                    )
                u.calls += 1
                u.tokens_in += g.tokens_in
                u.tokens_out += g.tokens_out
                u.seconds += time.perf_counter() - t0
                return g.text
            except ModelError as e:
                if attempt == self.max_retries:
                    raise ModelError(
                        f"{stage}: model call failed {attempt} times; last error: {e}"
                    ) from e
                u.retries += 1
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    async def structured(
        self,
        stage: str,
        what: str,
        messages: list[Message],
        schema: type[T],
        *,
        max_tokens: int = 1200,
        temperature: float = 0.0,
        seed: int | None = None,
        check: Any = None,
    ) -> T:
        """A reply parsed into ``schema``. The JSON schema constrains decoding where the backend
        can; a reply that does not parse or validate (or fails ``check``, a function raising
        ValueError) is sent back with the error for a repair, up to ``max_repairs`` times."""
        js = schema.model_json_schema()
        convo = list(messages)
        last = ""
        for attempt in range(1, self.max_repairs + 1):
            text = await self.text(
                stage,
                convo,
                max_tokens=max_tokens,
                temperature=temperature,
                json_schema=js,
                seed=None if seed is None else seed + attempt - 1,
            )
            try:
                obj = schema.model_validate(extract_json(text))
                if check is not None:
                    check(obj)
                return obj
            except (ValueError, ValidationError) as e:
                last = f"{_short(str(e))} (reply began: {text[:160]!r})"
                if attempt < self.max_repairs:
                    self.stage(stage).repairs += 1
                    convo = list(messages) + [
                        {"role": "assistant", "content": text[:2000]},
                        {
                            "role": "user",
                            "content": "That reply was not usable: "
                            + _short(str(e))
                            + ". Reply again with only one JSON object matching this schema: "
                            + json.dumps(js),
                        },
                    ]
        raise StructuredOutputError(
            f"{stage} ({what}): no valid reply after {self.max_repairs} attempts: {last}"
        )

    async def choose(
        self, stage: str, messages: list[Message], choices: list[str], *, seed: int = 0
    ) -> int:
        """Index of the choice a judge picks."""
        probs = await self.choice_probs(stage, messages, choices, seed=seed)
        return max(range(len(choices)), key=lambda i: probs[i])

    async def choice_probs(
        self, stage: str, messages: list[Message], choices: list[str], *, seed: int = 0
    ) -> list[float]:
        """A judge's distribution over the choices: the backend's log-probabilities renormalised
        over the choices where it can score, else one-hot on a schema-constrained reply."""
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.concurrency)
        u = self.stage(stage)
        async with self._sem:
            t0 = time.perf_counter()
            before = self.model.usage.snapshot()
            try:
                scores = await self.model.score_choices(messages, choices)
            except ModelError:
                scores = None
            if scores is not None:
                d = self.model.usage.since(before)
                u.calls += 1
                u.tokens_in += d.tokens_in
                u.seconds += time.perf_counter() - t0
                top = max(scores)
                ex = [math.exp(x - top) for x in scores]
                return [x / sum(ex) for x in ex]
        i = await self._choose_generated(stage, messages, choices, seed)
        return [1.0 if j == i else 0.0 for j in range(len(choices))]

    async def _choose_generated(
        self, stage: str, messages: list[Message], choices: list[str], seed: int
    ) -> int:
        u = self.stage(stage)
        schema = {
            "type": "object",
            "properties": {"answer": {"type": "string", "enum": choices}},
            "required": ["answer"],
        }
        convo = list(messages)
        text = ""
        for attempt in range(1, self.max_repairs + 1):
            text = await self.text(
                stage, convo, max_tokens=20, json_schema=schema, seed=seed + attempt - 1
            )
            try:
                ans = str(extract_json(text).get("answer", "")).strip()
            except ValueError:
                ans = text.strip()
            for i, c in enumerate(choices):
                if ans.upper().startswith(c.upper()):
                    return i
            if attempt < self.max_repairs:
                u.repairs += 1
                convo = list(messages) + [
                    {"role": "assistant", "content": text[:500]},
                    {
                        "role": "user",
                        "content": "Reply with only one of: "
                        + ", ".join(choices)
                        + ' as {"answer": "..."}.',
                    },
                ]
        raise StructuredOutputError(
            f"{stage}: judge answered {text[:80]!r}, not one of {choices}, {self.max_repairs} times"
        )


def _short(s: str, n: int = 300) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[:n] + "..."
