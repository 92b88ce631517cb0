"""Answer a user's query from a context (memory, full history, retrieved excerpts or nothing).

MCQ with a backend that scores choices: the letter's log-probability is read for every cyclic
rotation of the options (each option sits at each letter once) and summed per option, which
cancels the model's preference for a position. Other backends (HTTP) generate a letter for every
rotation and each parsed letter is a vote for the option shown there. A tie (a model that always
answers "B" gives every option one vote) is broken by a draw seeded from the question, never by
position; the answer records the tied options and the seed.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections import Counter
from typing import Literal

from pydantic import BaseModel, Field

from ..models.base import Message, Model
from . import prompts
from .parse import LETTERS, parse_choice

Method = Literal["auto", "likelihood", "score", "generate"]


class Answer(BaseModel):
    """One answer and what it cost."""

    text: str
    choice: int | None = None
    """Index of the chosen option in the options as given (MCQ), None if unparseable."""
    letter: str | None = None
    method: str = "generate"
    scores: list[float] = Field(default_factory=list)
    tied: list[int] = Field(default_factory=list)
    """The options that tied for the best score (empty without a tie); ``choice`` is drawn among
    them with ``random.Random(tie_seed).choice(tied)``."""
    tie_seed: int | None = None
    raw: list[str] = Field(default_factory=list)
    prompt: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    prefill_tokens: int = 0
    seconds: float = 0.0


def tie_seed(query: str, options: list[str]) -> int:
    """A seed from the question's text: the same question always breaks a tie the same way."""
    data = "\0".join([query, *options]).encode()
    return int(hashlib.sha256(data).hexdigest()[:8], 16)


def best_option(
    scores: list[float], query: str, options: list[str]
) -> tuple[int, list[int], int | None]:
    """The best-scoring option; a tie is drawn with a seed from the question (position plays no
    part). Returns (choice, the tied options or [], the seed or None)."""
    top = max(scores)
    tied = [i for i, s in enumerate(scores) if s == top]
    if len(tied) == 1:
        return tied[0], [], None
    seed = tie_seed(query, options)
    return random.Random(seed).choice(tied), tied, seed


def _log_softmax(xs: list[float]) -> list[float]:
    m = max(xs)
    z = m + math.log(sum(math.exp(x - m) for x in xs))
    return [x - z for x in xs]


class Answerer:
    """Builds the answer prompt around a context and asks the model."""

    def __init__(
        self,
        model: Model,
        *,
        method: Method = "auto",
        rotations: int | None = None,
        max_tokens: int = 400,
    ) -> None:
        self.model = model
        self.method = method
        self.rotations = rotations
        self.max_tokens = max_tokens

    @staticmethod
    def messages(
        query: str,
        *,
        options: list[str] | None = None,
        memory: str | None = None,
        history: list[Message] | None = None,
        snippets: str | None = None,
    ) -> list[Message]:
        """The prompt: history (if any) as prior turns, then one user turn with the request."""
        prefix = ""
        if memory is not None:
            prefix += prompts.MEMORY_PREFIX.format(memory=memory.strip())
        if snippets is not None:  # alone (retrieval) or after the memory (memory+retrieval)
            prefix += prompts.RETRIEVAL_PREFIX.format(snippets=snippets.strip())
        if options is not None:
            body = prompts.MCQ.format(
                prefix=prefix, query=query.strip(), options=prompts.format_options(options)
            )
        else:
            body = prompts.OPEN.format(prefix=prefix, query=query.strip())
        msgs: list[Message] = []
        if history:
            msgs.extend(history)
        if not msgs or msgs[0]["role"] != "system":
            msgs.insert(0, {"role": "system", "content": prompts.SYSTEM})
        msgs.append({"role": "user", "content": body})
        return msgs

    async def mcq(self, query: str, options: list[str], **context: object) -> Answer:
        """Pick one of ``options`` for ``query`` given a context (memory=, history=, snippets=)."""
        n = len(options)
        if not 2 <= n <= len(LETTERS):
            raise ValueError(f"need 2 to {len(LETTERS)} options, got {n}")
        if self.method in ("auto", "likelihood"):
            a = await self._mcq_likelihood(query, options, **context)
            if a is not None:
                return a
            if self.method == "likelihood":
                raise ValueError(f"{self.model.name} cannot score text; use method='generate'")
        return await self._mcq_letters(query, options, **context)

    async def _mcq_likelihood(
        self, query: str, options: list[str], **context: object
    ) -> Answer | None:
        """Score each option as the reply itself (no letters, so no position bias).

        With a context, the score is how much the context raises the option's log-probability
        over the same prompt without context (pointwise mutual information), so generic,
        fluent options do not win by fluency alone. Without context: mean log-prob per token.
        """
        t0 = time.perf_counter()
        before = self.model.usage.snapshot()
        msgs = self.messages(query, **context)  # type: ignore[arg-type]
        cond = await self.model.score_continuations(msgs, [o.strip() for o in options])
        if cond is None:
            return None
        if any(v is not None for v in context.values()):
            bare = self.messages(query)
            base = await self.model.score_continuations(bare, [o.strip() for o in options])
            assert base is not None
            scores = [c[0] - b[0] for c, b in zip(cond, base, strict=True)]
        else:
            scores = [c[0] / max(1, c[1]) for c in cond]
        choice, tied, seed = best_option(scores, query, options)
        used = self.model.usage.since(before)
        return Answer(
            text=options[choice],
            choice=choice,
            letter=LETTERS[choice],
            method="likelihood",
            scores=scores,
            tied=tied,
            tie_seed=seed,
            raw=[f"{LETTERS[i]}:{s:.3f}" for i, s in enumerate(scores)],
            prompt=msgs[-1]["content"],
            tokens_in=used.tokens_in,
            tokens_out=0,
            prefill_tokens=used.prefill_tokens,
            seconds=time.perf_counter() - t0,
        )

    async def _mcq_letters(self, query: str, options: list[str], **context: object) -> Answer:
        n = len(options)
        t0 = time.perf_counter()
        before = self.model.usage.snapshot()
        rotations = self.rotations if self.rotations is not None else n
        rotations = max(1, min(rotations, n))
        letters = list(LETTERS[:n])
        totals = [0.0] * n
        raws: list[str] = []
        votes: Counter[int] = Counter()
        method = "score"
        first_prompt = ""
        for r in range(rotations):
            order = [(i + r) % n for i in range(n)]  # position p shows option order[p]
            msgs = self.messages(query, options=[options[i] for i in order], **context)  # type: ignore[arg-type]
            if not first_prompt:
                first_prompt = msgs[-1]["content"]
            scores = None
            if self.method in ("auto", "score"):
                scores = await self.model.score_choices(msgs, letters)
                if scores is None and self.method == "score":
                    raise ValueError(
                        f"{self.model.name} cannot score choices; use method='generate'"
                    )
            if scores is not None:
                for p, lp in enumerate(_log_softmax(scores)):
                    totals[order[p]] += lp
                raws.append(" ".join(f"{letters[p]}:{s:.3f}" for p, s in enumerate(scores)))
            else:
                method = "generate"
                g = await self.model.generate(msgs, max_tokens=16, temperature=0.0)
                raws.append(g.text)
                pos = parse_choice(g.text, n)
                if pos is not None:
                    votes[order[pos]] += 1
        scores = totals if method == "score" else [float(votes[i]) for i in range(n)]
        choice: int | None = None
        tied: list[int] = []
        seed: int | None = None
        if method == "score" or votes:
            choice, tied, seed = best_option(scores, query, options)
        used = self.model.usage.since(before)
        return Answer(
            text=options[choice] if choice is not None else (raws[0] if raws else ""),
            choice=choice,
            letter=LETTERS[choice] if choice is not None else None,
            method=method,
            scores=scores,
            tied=tied,
            tie_seed=seed,
            raw=raws,
            prompt=first_prompt,
            tokens_in=used.tokens_in,
            tokens_out=used.tokens_out,
            prefill_tokens=used.prefill_tokens,
            seconds=time.perf_counter() - t0,
        )

    async def open(self, query: str, **context: object) -> Answer:
        """A free-text personalized answer to ``query`` given a context."""
        t0 = time.perf_counter()
        before = self.model.usage.snapshot()
        msgs = self.messages(query, **context)  # type: ignore[arg-type]
        g = await self.model.generate(msgs, max_tokens=self.max_tokens, temperature=0.0)
        used = self.model.usage.since(before)
        return Answer(
            text=g.text.strip(),
            method="generate",
            raw=[g.text],
            prompt=msgs[-1]["content"],
            tokens_in=used.tokens_in,
            tokens_out=used.tokens_out,
            prefill_tokens=used.prefill_tokens,
            seconds=time.perf_counter() - t0,
        )


def fit_history(messages: list[Message], model: Model, budget: int) -> tuple[list[Message], int]:
    """The most recent messages whose whole prompt (chat template included) fits in ``budget``
    tokens, the leading system message kept only when it fits; and the tokens dropped."""
    total = model.count_message_tokens(messages)
    if total <= budget:
        return list(messages), 0
    system = [m for m in messages[:1] if m["role"] == "system"]
    rest = messages[len(system) :]
    if system and model.count_message_tokens(system) > budget // 2:
        system = []
    # Estimate from per-message counts, then correct with the exact template count.
    kept: list[Message] = []
    used = model.count_message_tokens(system) if system else 0
    for m in reversed(rest):
        t = model.count_tokens(m["content"]) + 5
        if used + t > budget:
            break
        kept.append(m)
        used += t
    kept.reverse()
    while kept and model.count_message_tokens(system + kept) > budget:
        kept.pop(0)
    out = system + kept
    return out, total - model.count_message_tokens(out)
