"""Reward functions for GRPO: MCQ exact match and an LLM judge for open-ended answers.

Both follow TRL's reward-function signature (``prompts``, ``completions``, dataset columns as
keyword arguments -> one float or None per completion). A function returns None for rows of the
other task type (``task`` column ``mcq`` / ``open``), which is how TRL mixes task types: per row it
sums the functions that gave a number. A judge that fails (model error, no parsable score from any
judge) also gives None: no signal, rather than a wrong one.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

_BOXED = re.compile(r"\\boxed\{\s*\(?\s*([A-Za-z])\s*\)?\s*\}")


def completion_text(completion: Any) -> str:
    """The text of a completion: TRL passes strings or lists of chat messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(
            m.get("content", "") for m in completion if isinstance(m, dict) and m.get("content")
        )
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    return str(completion or "")


def boxed_letter(text: str) -> str | None:
    """The letter of the LAST ``\\boxed{X}`` (case-insensitive, ``\\boxed{(b)}`` allowed), else None."""
    found = _BOXED.findall(text or "")
    return found[-1].upper() if found else None


def mcq_score(text: str, correct: str) -> float:
    """1.0 when the last ``\\boxed{}`` letter is the correct letter, else 0.0 (no box: 0.0)."""
    letter = boxed_letter(text)
    return 1.0 if letter is not None and letter == correct.strip().upper() else 0.0


def mcq_reward(
    prompts: Sequence[Any], completions: Sequence[Any], answer: Sequence[str], **kwargs: Any
) -> list[float | None]:
    """TRL reward: MCQ exact match on ``answer`` (the correct letter); None for open rows."""
    tasks = kwargs.get("task") or ["mcq"] * len(completions)
    return [
        mcq_score(completion_text(c), a) if t == "mcq" else None
        for c, a, t in zip(completions, answer, tasks, strict=True)
    ]


class JudgeReward:
    """TRL reward: the mean 0-1 alignment score of LLM judges for open-ended rows.

    Uses the benchmark's judge rubric (``personamem.bench.scoring``); ``judges`` are model specs
    (``openai/...`` for a served judge, ``local/...`` or ``scripted`` in tests). Rows need the
    columns ``query``, ``preference`` and ``reference``.
    """

    __name__ = "judge_reward"

    def __init__(self, judges: Sequence[Any]) -> None:
        if not judges:
            raise ValueError("JudgeReward needs at least one judge model (--judges SPEC)")
        self.judges = list(judges)
        # One event loop for every call: model backends keep asyncio locks bound to their loop.
        self._loop = asyncio.new_event_loop()

    async def _score(self, judge: Any, query: str, pref: str, ref: str, text: str) -> float | None:
        """The benchmark's own rubric (preference only, no reference answer: the judge the
        benchmark validates is the judge the reward uses); ``ref`` is not shown to it."""
        from ..bench.scoring import align_messages, parse_score
        from ..data import QAItem
        from ..models.base import ModelError

        item = QAItem(
            id="reward",
            split="train",
            row=0,
            persona_id="",
            query=query,
            correct_answer=ref,
            incorrect_answers=[],
            preference=pref,
        )
        msgs = align_messages(item, text)
        try:
            gen = await judge.generate(
                msgs,
                max_tokens=160,
                temperature=0.0,
            )
        except (ModelError, OSError, TimeoutError):
            return None
        return parse_score(gen.text)

    async def _row(self, query: str, pref: str, ref: str, text: str) -> float | None:
        scores = await asyncio.gather(
            *(self._score(j, query, pref, ref, text) for j in self.judges)
        )
        ok = [s for s in scores if s is not None]
        return sum(ok) / len(ok) if ok else None

    async def ascore(
        self, completions: Sequence[Any], rows: Sequence[dict[str, str]]
    ) -> list[float | None]:
        return list(
            await asyncio.gather(
                *(
                    self._row(r["query"], r["preference"], r["reference"], completion_text(c))
                    for c, r in zip(completions, rows, strict=True)
                )
            )
        )

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
    ) -> list[float | None]:
        tasks = kwargs.get("task") or ["open"] * len(completions)
        idx = [i for i, t in enumerate(tasks) if t == "open"]
        out: list[float | None] = [None] * len(completions)
        if not idx:
            return out
        rows = [{k: kwargs[k][i] for k in ("query", "preference", "reference")} for i in idx]
        scores = self._loop.run_until_complete(self.ascore([completions[i] for i in idx], rows))
        for i, s in zip(idx, scores, strict=True):
            out[i] = s
        return out
