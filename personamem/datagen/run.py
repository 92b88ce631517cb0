"""The shared state of one generation run: config, models, artifacts, resumable unit execution."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..models.base import Model
from .config import GenerateConfig
from .llm import LLM
from .store import Artifacts, write_json


class GenerationError(RuntimeError):
    """Units of a stage failed after every retry; finished work is kept for a rerun."""


class Events:
    """Progress hooks (the CLI draws bars; the default does nothing)."""

    def stage(self, name: str, total: int, done: int) -> None: ...

    def advance(self, name: str) -> None: ...

    def note(self, message: str) -> None: ...


@dataclass
class Run:
    config: GenerateConfig
    writer: LLM
    judge: LLM
    tokens: Model
    art: Artifacts
    events: Events = field(default_factory=Events)
    failures: dict[str, list[str]] = field(default_factory=dict)

    def rng(self, *parts: Any) -> random.Random:
        """A random generator fixed by the run's seed and the unit it serves."""
        key = json.dumps([self.config.seed, *parts], default=str)
        return random.Random(int(hashlib.sha256(key.encode()).hexdigest()[:16], 16))

    def seed_of(self, *parts: Any) -> int:
        return self.rng(*parts).randrange(2**31)

    async def units(
        self,
        stage: str,
        keys: list[str],
        make: Callable[[str], Awaitable[Any]],
    ) -> dict[str, Any]:
        """Run ``make(key)`` for every key not finished yet (bounded by the LLM semaphores),
        save each result as it finishes, and return all results, finished earlier or now."""
        results: dict[str, Any] = {}
        todo = []
        for k in keys:
            if self.art.has(stage, k):
                results[k] = self.art.load(stage, k)
            else:
                todo.append(k)
        self.events.stage(stage, len(keys), len(keys) - len(todo))

        async def one(k: str) -> None:
            res = await make(k)
            self.art.save(stage, k, res)
            results[k] = res
            self.events.advance(stage)

        outcomes = await asyncio.gather(*(one(k) for k in todo), return_exceptions=True)
        errors = []
        for k, o in zip(todo, outcomes, strict=True):
            if isinstance(o, BaseException):
                if not isinstance(o, Exception):
                    raise o  # KeyboardInterrupt and friends stop the run
                errors.append(f"{stage} {k}: {o}")
        self.save_usage()
        if errors:
            self.failures.setdefault(stage, []).extend(errors)
            if not self.config.keep_going:
                raise GenerationError(
                    f"{len(errors)} unit(s) of stage {stage!r} failed (finished work is saved; "
                    "rerun the same command to retry them, or pass --keep-going to skip them):\n  "
                    + "\n  ".join(errors[:20])
                )
            self.events.note(f"{stage}: {len(errors)} unit(s) failed and are skipped (see report)")
        return {k: results[k] for k in keys if k in results}

    async def memo(self, stage: str, key: str, make: Callable[[], Awaitable[Any]]) -> Any:
        """A sub-result inside a unit, saved on its own (``work/<stage>.calls/``), so a unit
        interrupted or failed midway redoes only the calls that had not finished."""
        sub = f"{stage}.calls"
        if self.art.has(sub, key):
            return self.art.load(sub, key)
        res = await make()
        self.art.save(sub, key, res)
        return res

    def save_usage(self) -> None:
        """Add this process's usage to the cumulative per-stage usage file."""
        path = self.art.root / "usage.json"
        total: dict[str, dict[str, float]] = {}
        if path.is_file():
            total = json.loads(path.read_text(encoding="utf-8"))
        llms = [self.writer] + ([self.judge] if self.judge is not self.writer else [])
        for llm in llms:
            for stage, u in llm.usage.items():
                t = total.setdefault(stage, {})
                for k, v in u.as_dict().items():
                    t[k] = t.get(k, 0) + v
            llm.usage.clear()
        write_json(path, total)


def persona_summary(p: dict[str, Any]) -> str:
    """One paragraph about a persona for prompts (no sensitive data)."""
    loc = p.get("location", {})
    emp = p.get("employment", {})
    per = p.get("personality", {})
    return (
        f"{p.get('name')}, {p.get('age')}, {p.get('gender')}, {p.get('race')}, lives in "
        f"{loc.get('city')}, {loc.get('country')} ({loc.get('urbanicity')}); works as "
        f"{emp.get('job_title')} in {emp.get('industry')}; traits: "
        f"{', '.join(per.get('traits', [])[:4])}; interests: "
        f"{', '.join(per.get('interests', [])[:4])}. ({p.get('short_persona')})"
    )
