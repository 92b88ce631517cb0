"""The fault-injection run's workload, its deterministic writer and the fault-injecting model
(benchmarks/fault_injection.py runs them through the store)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from personamem.memory.profile import PROFILE_SYSTEM, profile_reply
from personamem.memory.prompts import REPLACE_SYSTEM
from personamem.models import Model, ModelError, ScriptedModel
from personamem.models.base import Generation, Message

FAULT_KINDS = ("exception", "timeout", "empty", "malformed", "overlong")
HARD = ("exception", "timeout")
"""Faults that raise: the update fails and a caller must see it."""
FAULT_MARK = "injected fault #"


# --- the workload --------------------------------------------------------------------------------
ACTIVITIES = (
    "kayaking", "pottery", "chess", "sourdough baking", "trail running", "birdwatching",
    "watercolor painting", "rock climbing", "jazz piano", "vegetable gardening", "salsa dancing",
    "film photography", "origami", "fly fishing", "woodworking", "calligraphy", "board games",
    "stargazing", "cycling", "knitting", "archery", "beekeeping", "fencing", "yoga",
)  # fmt: skip
WHEN = (
    "on weekend mornings", "after work", "every sunday", "twice a month", "on rainy evenings",
    "before breakfast", "on holidays", "during lunch breaks",
)  # fmt: skip
VERBS = ("practice", "enjoy", "spend hours on", "look forward to", "relax with", "got into")
REPLIES = ("That sounds lovely.", "Thanks for sharing.", "Good to know.", "Noted, thank you.")


def workload(users: int, messages: int, seed: int) -> dict[str, list[dict[str, str]]]:
    """``messages`` messages in total, split evenly over ``users`` users: user and assistant turns
    alternate; some user turns announce a change ("switched from ... to ...", which makes the
    agent ask whether an older line is out of date) and some run longer than a chunk."""
    rng = random.Random(seed)
    out: dict[str, list[dict[str, str]]] = {}
    for u in range(users):
        uid = f"user{u}"
        n = messages // users + (1 if u < messages % users else 0)
        acts = rng.sample(ACTIVITIES, 10)
        msgs: list[dict[str, str]] = []
        for i in range(n):
            if i % 2:
                text = rng.choice(REPLIES)
            elif i % 14 == 8:
                text = " ".join(
                    f"I {rng.choice(VERBS)} {rng.choice(acts)} {rng.choice(WHEN)}."
                    for _ in range(12)
                )
            elif i % 6 == 4:
                a, b = rng.sample(acts, 2)
                text = f"These days I switched from {a} to {b} {rng.choice(WHEN)}."
            else:
                text = f"I {rng.choice(VERBS)} {rng.choice(acts)} {rng.choice(WHEN)}."
            role = "assistant" if i % 2 else "user"
            msgs.append({"role": role, "content": text, "id": f"{uid}-{i}"})
        out[uid] = msgs
    return out


def batches(msgs: list[dict[str, str]], rng: random.Random) -> list[list[dict[str, str]]]:
    """The messages in the order they arrive, in batches of 1-6."""
    out, i = [], 0
    while i < len(msgs):
        k = rng.randint(1, 6)
        out.append(msgs[i : i + k])
        i += k
    return out


# --- the deterministic writer ----------------------------------------------------------------------
_SKIP = {"i", "these", "days", "my"}


def profile_lines(text: str) -> list[str]:
    """The writer's profile lines for a message: its first words, sometimes a second line."""
    words = [w for w in re.findall(r"[A-Za-z]+", text) if w.lower() not in _SKIP][:9]
    if not words:
        return []
    lines = [" ".join(words)]
    if zlib.crc32(text.encode()) % 3 == 0:
        lines.append(f"Cares about {words[-1].lower()}")
    return lines


def writer(messages: list[Message]) -> str | Exception:
    """Replies of the scripted writer: profile lines, and a yes/no on replacing a line."""
    system, last = messages[0]["content"], messages[-1]["content"]
    if system == PROFILE_SYSTEM:  # the default (v3) prompt: one line or none
        lines = profile_lines(last)
        return profile_reply(lines[0] if lines else None)
    if system == REPLACE_SYSTEM:
        return "Yes" if zlib.crc32(last.encode()) % 2 else "No"
    return ModelError(f"the scripted writer has no reply for {system[:60]!r}")


# --- the fault-injecting model ---------------------------------------------------------------------
@dataclass
class FaultyModel(Model):
    """Wraps a model; on a share ``rate`` of its calls the call fails in one of ``kinds``.

    The draw for a call depends on ``seed``, the prompt and how many times that prompt was sent
    before, so a run's faults do not depend on how the workers interleave. ``injected`` lists
    (fault number, kind) of every fault; each exception's message names its fault number.
    """

    name: str = "faulty"
    inner: Model = field(default_factory=lambda: ScriptedModel(default=writer))
    rate: float = 0.3
    seed: int = 0
    timeout: float = 0.05
    kinds: tuple[str, ...] = FAULT_KINDS
    injected: list[tuple[int, str]] = field(default_factory=list)
    calls: int = 0
    _sent: Counter[str] = field(default_factory=Counter)

    def _draw(self, messages: list[Message]) -> random.Random:
        key = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()
        k = self._sent[key]
        self._sent[key] += 1
        return random.Random(f"{self.seed}:{key}:{k}")

    async def generate(
        self, messages: list[Message], *, max_tokens: int = 512, **kwargs: Any
    ) -> Generation:
        self.calls += 1
        rng = self._draw(messages)
        kind = rng.choice(self.kinds) if rng.random() < self.rate else None
        if kind is None:
            return self._record(
                await self.inner.generate(messages, max_tokens=max_tokens, **kwargs)
            )
        number = len(self.injected) + 1
        self.injected.append((number, kind))
        mark = f"{FAULT_MARK}{number} ({kind})"
        if kind == "exception":  # half of them not the ModelError the interface promises
            if rng.random() < 0.5:
                raise ModelError(f"{mark}: the backend failed")
            raise ConnectionResetError(f"{mark}: connection reset by the backend")
        if kind == "timeout":
            try:  # a backend that does not answer, cut off by the client's timeout
                await asyncio.wait_for(asyncio.sleep(self.timeout * 20), self.timeout)
            except asyncio.TimeoutError as e:
                raise ModelError(f"{mark}: no reply within {self.timeout}s") from e
        real = (await self.inner.generate(messages, max_tokens=max_tokens, **kwargs)).text
        if kind == "empty":
            text = ""
        elif kind == "malformed":  # cut off mid-reply, as by a dropped stream
            text = real[: rng.randint(1, max(1, len(real) - 1))]
        else:  # over-long: the backend ignored max_tokens and kept going
            text = real + " " + " ".join(["and", "more", "text"] * (8 * max_tokens))
        tokens = self.inner.count_tokens(text)
        return self._record(Generation(text=text, tokens_in=0, tokens_out=tokens, seconds=0.0))

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)
