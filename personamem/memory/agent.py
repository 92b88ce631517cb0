"""The agentic memory of PersonaMem-v2: ``M_i = f(C_i, M_{i-1})`` chunk by chunk, capped.

The update strategies share one loop (:mod:`personamem.memory.strategies`):

* ``select`` (default, built for small local models): the user's own first-person statements and
  questions become short profile notes and "Asked about ..." lines, one at a time;
* ``extract``: the model lists facts about the user per step of the chunk as JSON;
* ``rewrite`` (the paper's single call): the model rewrites the whole memory.
* ``profile``: one inferred profile line per user message, up to three with
  ``profile_prompt="v4"`` (:mod:`personamem.memory.profile`).

Whatever the strategy, :meth:`MemoryAgent.update` applies the same rules to its result, for every
caller (the benchmark and the store alike): nothing the user asked to forget, nothing plainly
about someone else (:mod:`personamem.memory.ownership`), no secrets, and the token cap. All see
only the previous memory and the current chunk (causality). What each choice bought on the real
sample is measured in benchmarks/memory_build.md.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, Field

from ..models.base import Message, Model, ModelError
from . import prompts
from .cap import drop_weakest, hold_cap
from .chunking import Chunk, Piece, chunk_messages
from .config import MemoryConfig
from .merge import FORGET_MATCH, announces_change, content_words, overlap
from .ownership import not_the_users
from .privacy import Redaction
from .state import EMPTY, MemoryLine, MemoryState
from .strategies import STRATEGIES, prompt_version

AGENT_VERSION = "agent-v2"
"""Version of the agent's own rules (ownership, forget, cap, chunking) apart from the prompts:
part of the benchmark's cache key and run manifest, so a memory built by older rules is rebuilt.
v2: ownership and forget rules inside the agent for every caller (one pipeline)."""
_REDACTED = re.compile(r"\[REDACTED [a-z_]+\]")
_YES_NO = re.compile(r"(?i)\W*(?:(yes|yeah|yep)|no|nope|not)\b")
log = logging.getLogger("personamem.memory")
T = TypeVar("T")
FORGET_MAYBE = 0.34
"""Word overlap from which the model is asked whether a line is about something forgotten."""


def _yes_no(text: str) -> float | None:
    """1.0 for a reply that starts with yes, 0.0 for no, None for anything else."""
    m = _YES_NO.match(text)
    return None if m is None else 1.0 if m.group(1) else 0.0


def _logsumexp(xs: list[float]) -> float:
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs)) if m > float("-inf") else m


class MemoryUpdateError(RuntimeError):
    """An update could not be made (model failure); the previous memory is unchanged."""


class ChunkReport(BaseModel):
    """What one update did and cost."""

    chunk: int
    message_ids: list[int]
    chunk_tokens: int
    tokens_in: int = 0
    tokens_out: int = 0
    prefill_tokens: int = 0
    seconds: float = 0.0
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0
    added: int = 0
    removed: int = 0
    memory_tokens: int = 0
    redactions: list[dict[str, object]] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    kept_previous: bool = False


class BuildResult(BaseModel):
    """The memory built from a history, with its full cost accounting."""

    memory: str
    memory_tokens: int
    chunks: int
    history_tokens: int
    tokens_in: int
    tokens_out: int
    prefill_tokens: int
    seconds: float
    model: str
    prompt_version: str
    strategy: str
    chunk_tokens: int
    memory_cap: int
    warnings: list[str]
    reports: list[ChunkReport]
    state: MemoryState


class MemoryAgent:
    """Builds and updates one user's memory from their chat history with one model.

    Settings are a :class:`MemoryConfig`: pass ``config``, or its fields as keyword arguments
    (``MemoryAgent(model, 5000, 2048, strategy="extract")``); with both, the fields override
    the config's (a new config; the one passed is never changed).
    """

    def __init__(
        self,
        model: Model,
        chunk_tokens: int | MemoryConfig | None = None,
        memory_tokens: int | None = None,
        *,
        config: MemoryConfig | None = None,
        **options: Any,
    ) -> None:
        self.model = model
        if isinstance(chunk_tokens, MemoryConfig):  # MemoryAgent(model, MemoryConfig(...))
            if config is not None:
                raise TypeError("pass the MemoryConfig once (positionally or as config=)")
            config, chunk_tokens = chunk_tokens, None
        if chunk_tokens is not None:
            options["chunk_tokens"] = chunk_tokens
        if memory_tokens is not None:
            options["memory_tokens"] = memory_tokens
        try:
            self.config = (
                dataclasses.replace(config, **options) if config else MemoryConfig(**options)
            )
        except TypeError as e:
            raise TypeError(f"unknown memory option: {e}") from e

    @property
    def prompt_version(self) -> str:
        return prompt_version(self.config)

    # --- chunks ----------------------------------------------------------------------------
    def chunk(
        self,
        messages: Sequence[Message],
        start: int = 0,
        *,
        first_number: int = 0,
        skip_chars: int = 0,
    ) -> list[Chunk]:
        """The history split into chunks of at most ``chunk_tokens`` tokens (model tokenizer).

        ``start`` is the history index of ``messages[0]``, ``first_number`` the number of the
        first chunk and ``skip_chars`` how many characters of ``messages[0]`` were already read
        (a store resuming inside a long message). Secrets are redacted from whole messages first,
        so a secret is never split across two pieces where the detectors could miss it."""
        guard = self.config.privacy
        found: dict[int, list[dict[str, object]]] = {}
        cleaned: list[Message] = []
        for i, m in enumerate(messages):
            text, rs = guard.clean(m["content"], where=f"message {start + i}")
            if rs:
                found[start + i] = [r.as_dict() for r in rs]
            cleaned.append({"role": m["role"], "content": text} if rs else m)
        chunks = chunk_messages(
            cleaned,
            self.model.count_tokens,
            self.config.chunk_tokens,
            start=start,
            first_number=first_number,
            skip_chars=skip_chars,
        )
        seen: set[int] = set()
        for c in chunks:
            for i in c.message_ids:
                if i in found and i not in seen:
                    c.redactions.extend(found[i])
                    seen.add(i)
        return chunks

    def count(self, text: str) -> int:
        return self.model.count_tokens(text)

    # --- whole history ---------------------------------------------------------------------
    async def build(
        self,
        messages: Sequence[Message],
        *,
        max_chunks: int | None = None,
        state: MemoryState | None = None,
        done: Sequence[ChunkReport] = (),
        on_chunk: Callable[[ChunkReport, MemoryState], None] | None = None,
    ) -> BuildResult:
        """Run the causal update over every chunk of ``messages`` and return the final memory.

        To resume an interrupted build, pass the ``state`` after the chunks already processed
        and their reports as ``done``: those chunks are skipped and counted in the totals.
        A chunk whose update fails keeps the previous memory (recorded as a warning) and the
        loop goes on; :meth:`update` raises instead, for callers that must retry.
        """
        t0 = time.perf_counter()
        all_chunks = self.chunk(messages)
        chunks = all_chunks if max_chunks is None else all_chunks[:max_chunks]
        state = state or MemoryState()
        reports: list[ChunkReport] = list(done)
        for chunk in chunks[len(done) :]:
            try:
                state, report = await self.update(state, chunk)
            except MemoryUpdateError as e:
                report = ChunkReport(
                    chunk=chunk.number,
                    message_ids=chunk.message_ids,
                    chunk_tokens=chunk.tokens,
                    warnings=[str(e)],
                    kept_previous=True,
                    memory_tokens=state.tokens,
                )
                state = state.model_copy(
                    update={"warnings": [*state.warnings, f"chunk {chunk.number}: {e}"]}
                )
            reports.append(report)
            if on_chunk:
                on_chunk(report, state)
        return BuildResult(
            memory=state.text,
            memory_tokens=self.count(state.text),
            chunks=len(chunks),
            history_tokens=sum(c.tokens for c in all_chunks),
            tokens_in=sum(r.tokens_in for r in reports),
            tokens_out=sum(r.tokens_out for r in reports),
            prefill_tokens=sum(r.prefill_tokens for r in reports),
            seconds=sum(r.seconds for r in done) + time.perf_counter() - t0,
            model=self.model.name,
            prompt_version=self.prompt_version,
            strategy=self.config.strategy,
            chunk_tokens=self.config.chunk_tokens,
            memory_cap=self.config.memory_tokens,
            warnings=state.warnings,
            reports=reports,
            state=state,
        )

    # --- one update ------------------------------------------------------------------------
    async def update(self, state: MemoryState, chunk: Chunk) -> tuple[MemoryState, ChunkReport]:
        """``M_i = f(C_i, M_{i-1})``: a new state from the previous one and one chunk.

        ``state`` is never modified. Raises :class:`MemoryUpdateError` if the model fails. A
        malformed reply is asked again where one call stands for one message (the profile
        writer, yes/no questions; see :meth:`ask`) and otherwise keeps the previous memory (the
        report says so).
        """
        t0 = time.perf_counter()
        before = self.model.usage.snapshot()
        report = ChunkReport(
            chunk=chunk.number, message_ids=chunk.message_ids, chunk_tokens=chunk.tokens
        )
        pieces, redactions = self._redact(chunk.pieces)
        report.redactions = list(chunk.redactions) + [r.as_dict() for r in redactions]
        new = state.model_copy(deep=True)
        new.warnings = []
        try:
            await STRATEGIES[self.config.strategy](self, new, state, pieces, report)
            new.forgotten = list(dict.fromkeys(new.forgotten))
            report.warnings += await self._keep_forgotten_out(state, new)
            report.warnings += self._keep_others_out(state, new, chunk)
            new = await hold_cap(self, new, state, report)
        except ModelError as e:
            raise MemoryUpdateError(f"model failed on chunk {chunk.number}: {e}") from e
        # Secrets must never enter the memory, whatever the model wrote.
        for line in new.lines:
            cleaned, found = self.config.privacy.clean(line.text, where="memory")
            if found:
                line.text = cleaned
                report.redactions += [r.as_dict() for r in found]
        new.lines = [ln for ln in new.lines if content_words(_REDACTED.sub(" ", ln.text))]
        if new.lines and self.count(new.text) > self.config.memory_tokens:
            new = drop_weakest(self, new, self.count(new.text), report)  # redaction grew it
        new.chunks_done = state.chunks_done + 1
        new.next_message = max(chunk.message_ids, default=state.next_message - 1) + 1
        new.tokens = self.count(new.text) if new.lines else 0
        new.warnings = state.warnings + [f"chunk {chunk.number}: {w}" for w in report.warnings]
        used = self.model.usage.since(before)
        report.tokens_in, report.tokens_out = used.tokens_in, used.tokens_out
        report.prefill_tokens = used.prefill_tokens
        report.prefill_seconds, report.decode_seconds = used.prefill_seconds, used.decode_seconds
        report.seconds = time.perf_counter() - t0
        report.memory_tokens = new.tokens
        return new, report

    def _redact(self, pieces: list[Piece]) -> tuple[list[Piece], list[Redaction]]:
        out, found = [], []
        for p in pieces:
            text, rs = self.config.privacy.clean(p.content, where=f"message {p.index}")
            found += rs
            out.append(Piece(p.index, p.role, text, p.part, p.parts) if rs else p)
        return out, found

    async def _merge_fact(
        self,
        state: MemoryState,
        text: str,
        sources: list[int],
        report: ChunkReport,
        score: float | None = None,
        evidence: str | None = None,
        said: str | None = None,
    ) -> None:
        """Add a note, merge it into the same note, or let it replace a note it updates.
        ``said``: what the user said that the note stands on (default: ``evidence``)."""
        if await self._is_forgotten(state, text):
            return
        if not content_words(text):
            return
        best, best_score = None, 0.0
        asked = text.startswith(prompts.ASKED)
        for line in state.lines:
            if line.text.startswith(prompts.ASKED) != asked:
                continue  # a question neither repeats nor updates a fact, nor a fact a question
            s = overlap(text, line.text)  # "Asked about" and note verbs are stop words
            if s > best_score:
                best, best_score = line, s
        if best is not None and best_score >= 0.8:  # same fact again: keep one, merge citations
            best.sources = sorted(set(best.sources) | set(sources))
            return
        # Only a statement of the user's that says something changed can make an older note out
        # of date; a question cannot.
        changed = not asked and announces_change(said or evidence or text)
        if best is not None and best_score >= 0.34 and self.config.check_replacements and changed:
            if await self._yes(
                prompts.REPLACE_USER.format(old=best.text, new=text), prompts.REPLACE_SYSTEM, report
            ):
                state.lines.remove(best)
                report.removed += 1
        state.lines.append(MemoryLine(text=text, sources=sources, score=score, evidence=evidence))
        report.added += 1

    async def forget(self, state: MemoryState, what: str) -> tuple[MemoryState, int]:
        """A new state without the lines about ``what``; ``what`` also stays out of later updates."""
        new = state.model_copy(deep=True)
        removed = await self._forget(new, what)
        new.tokens = self.count(new.text) if new.lines else 0
        return new, removed

    async def _forget(self, state: MemoryState, what: str) -> int:
        if what.lower() not in {f.lower() for f in state.forgotten}:
            state.forgotten.append(what)
        drop = [ln for ln in state.lines if await self._about_forgotten(ln.text, what)]
        state.lines = [ln for ln in state.lines if ln not in drop]
        return len(drop)

    async def _about_forgotten(self, text: str, what: str, ask: bool = True) -> bool:
        """Whether ``text`` is about ``what`` (something the user asked to forget): clear word
        overlap, or (``ask``) a partial one the model confirms."""
        s = overlap(text, what)
        if s >= FORGET_MATCH:
            return True
        return (
            ask
            and s >= FORGET_MAYBE
            and await self._yes(
                prompts.FORGET_USER.format(note=text, what=what), prompts.REPLACE_SYSTEM
            )
        )

    async def _is_forgotten(self, state: MemoryState, text: str) -> bool:
        """Whether ``text`` is about anything the user asked to forget."""
        for what in state.forgotten:
            if await self._about_forgotten(text, what):
                return True
        return False

    # --- ownership and forget rules, for every strategy -------------------------------------
    async def _keep_forgotten_out(self, before: MemoryState, new: MemoryState) -> list[str]:
        """Drop lines about anything forgotten: any line with the same words, and a new line
        with partly the same words when the model says it is the same thing. Returns warnings."""
        old = {ln.text for ln in before.lines}
        warnings: list[str] = []
        keep: list[MemoryLine] = []
        for ln in new.lines:
            hit = None
            for f in new.forgotten:
                if await self._about_forgotten(ln.text, f, ask=ln.text not in old):
                    hit = f
                    break
            if hit is None:
                keep.append(ln)
            else:
                warnings.append(f"kept out a line about forgotten {hit!r}: {ln.text!r}")
        new.lines = keep
        return warnings

    @staticmethod
    def _keep_others_out(before: MemoryState, new: MemoryState, chunk: Chunk) -> list[str]:
        """Drop new lines plainly not about the user (the model should have said so)."""
        old = {ln.text for ln in before.lines}
        warnings: list[str] = []
        keep: list[MemoryLine] = []
        for ln in new.lines:
            why = None if ln.text in old else not_the_users(ln.text, chunk)
            if why:
                warnings.append(f"not stored: {why}: {ln.text!r}")
            else:
                keep.append(ln)
        new.lines = keep
        return warnings

    async def ask(
        self,
        messages: list[Message],
        parse: Callable[[str], T | None],
        *,
        what: str,
        report: ChunkReport | None = None,
        settled: T | None = None,
        max_tokens: int = 512,
        **settings: Any,
    ) -> T:
        """The parsed reply to ``messages``. An unusable reply (empty, cut off, longer than
        ``max_tokens``, or one ``parse`` rejects) is logged, noted in ``report`` and asked again
        up to ``reply_retries`` times; then :class:`ModelError`, so the update fails and keeps the
        previous memory, as when the backend fails (a transient bad reply never loses a message).

        ``settled``: returned instead of failing when every attempt gave the very same unusable
        reply: a deterministic model's settled answer, which no retry of the update would change
        (failing would block the user's memory for good); noted in ``report``."""
        tries = self.config.reply_retries + 1
        seen: set[str] = set()
        for attempt in range(1, tries + 1):
            g = await self.model.generate(messages, max_tokens=max_tokens, **settings)
            seen.add(g.text)
            over = g.tokens_out > max_tokens
            got = None if over else parse(g.text)
            if got is not None:
                return got
            why = (
                "empty"
                if not g.text.strip()
                else f"{g.tokens_out} tokens for at most {max_tokens}"
                if over
                else f"not usable ({len(g.text)} characters, {g.finish_reason})"
            )
            note = f"{what}: unusable reply, {why} (attempt {attempt} of {tries})"
            log.warning(note)
            if report is not None:
                report.warnings.append(note)
        if settled is not None and tries > 1 and len(seen) == 1:
            note = f"{what}: the same unusable reply {tries} times (the model's settled answer): skipped"
            log.warning(note)
            if report is not None:
                report.warnings.append(note)
            return settled
        raise ModelError(f"{what}: no usable reply in {tries} attempts")

    async def _yes(self, question: str, system: str, report: ChunkReport | None = None) -> bool:
        return await self._p_yes(question, system, report) > 0.5

    async def _p_yes(self, question: str, system: str, report: ChunkReport | None = None) -> float:
        """P(yes) for a yes/no question: from the two answers' log-probs where the backend scores,
        else 1.0 or 0.0 from a generated answer (neither yes nor no: asked again, see :meth:`ask`)."""
        msgs: list[Message] = [
            {"role": "system", "content": system},
            {"role": "user", "content": question},
        ]
        # Models answer "Yes"/"No" far more often than "yes"/"no": count both spellings.
        scores = await self.model.score_choices(msgs, ["Yes", "yes", "No", "no"])
        if scores is not None:
            yes = _logsumexp(scores[:2])
            no = _logsumexp(scores[2:])
            diff = max(-50.0, min(50.0, no - yes))
            return 1.0 / (1.0 + math.exp(diff))
        return await self.ask(msgs, _yes_no, what="yes/no question", report=report, max_tokens=3)


__all__ = [
    "AGENT_VERSION",
    "EMPTY",
    "BuildResult",
    "ChunkReport",
    "MemoryAgent",
    "MemoryConfig",
    "MemoryUpdateError",
]
