"""The agentic memory of PersonaMem-v2: ``M_i = f(C_i, M_{i-1})`` chunk by chunk, capped.

Three update strategies share one loop:

* ``select`` (default, built for small local models): the user's own first-person statements and
  questions in the chunk are candidates (deterministic: no editing requests, hypotheticals,
  boilerplate, text written by someone else, or code and math exercises). With ``notes``
  (default) the model turns each statement into a short profile note ("Takes early spin classes;
  drinks oat lattes") or says it reveals nothing, and each question into what the user asked
  about ("Asked about knee pain after long bike rides"), under a JSON schema. A note that is not
  about the user, copies an example or shares no content word with its statement is rejected and
  the statement kept verbatim; an unusable topic drops the question. Repeats are merged; when
  the user says something changed, the model is asked whether the new line makes an older one
  out of date; over the cap the weakest, oldest lines go. Every line cites its messages and
  keeps the user's words.
* ``extract``: the chunk is read in short steps; for each step the model lists facts about the
  user as schema-constrained JSON; code merges them into the memory, drops forgotten and
  third-party items, and asks short yes/no questions when a new fact may replace an old one.
* ``rewrite`` (the paper's single call): the model rewrites the whole memory from the previous
  memory and the chunk. Better for large models; used for RL training.

All see only the previous memory and the current chunk (causality), and all hold the token cap
(compress, else keep the previous memory with a warning). What each choice bought on the real
sample is measured in benchmarks/memory_build.md.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from ..models.base import Message, Model, ModelError
from . import prompts
from .chunking import Chunk, Piece, chunk_messages
from .merge import announces_change, content_words, forget_request, overlap, salvage_json
from .privacy import PrivacyGuard, Redaction
from .profile import PROFILE_VERSION, profile_update
from .select import candidates, is_question, reads_as_profile_note, signal, split_sentences
from .state import EMPTY, MemoryLine, MemoryState

Strategy = Literal["select", "extract", "rewrite", "profile"]
_REDACTED = re.compile(r"\[REDACTED [a-z_]+\]")


def _logsumexp(xs: list[float]) -> float:
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs)) if m > float("-inf") else m


# A question that means nothing on its own: a piece of a split sentence, or a short follow-up
# about something said before ("... behind that?").
_FRAGMENT = re.compile(r"^[a-z]|^(?:\S+\s+){0,7}\S*\s+(?:[Tt]hat|this|it|them|those|there)\W*$")


_DANGLING = re.compile(
    r"(?:\s+(?:a|an|the|and|or|of|in|on|at|to|for|with|without|by|from|as|into|about|"
    r"\w{1,2}|\d+))+$",
    re.IGNORECASE,
)


def _cut_at_phrase(text: str) -> str:
    """Text cut off at a length limit, back to its last whole phrase: the last comma or
    semicolon when that keeps most of it, then without dangling function words ("aligned with
    festival weekend, with a 2" -> "aligned with festival weekend"). Empty when nothing whole
    is left."""
    cut = max(text.rfind(","), text.rfind(";"))
    if cut >= len(text) * 0.5:
        return text[:cut]
    words = text.split()
    if len(words) > 1:
        text = " ".join(words[:-1])  # the last word may itself be cut ("coordinat")
    return _DANGLING.sub("", text)


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


@dataclass
class MemoryConfig:
    """Knobs of the memory agent (defaults follow the paper where it says, measurement elsewhere)."""

    chunk_tokens: int = 5000
    memory_tokens: int = 2048
    strategy: Strategy = "select"
    judge_statements: bool = False
    """Select strategy: ask the model whether each statement is personal (P(yes) becomes its
    score). Off by default: with Qwen2.5-0.5B the answers did not discriminate (P(yes) 0.22-0.39
    for every statement, greetings included); turn it on for larger models."""
    select_threshold: float = 0.5
    notes: bool = True
    """Select strategy: rewrite each selected statement as a short profile note (the statement
    is kept as the line's evidence). Off: the memory holds the statements verbatim."""
    step_tokens: int = 1200
    """Extract strategy: the model reads the chunk in steps of at most this many tokens."""
    assistant_tokens: int = 40
    """Extract strategy: tokens of each assistant turn shown for context (-1: all)."""
    max_facts_per_step: int = 6
    check_replacements: bool = True
    """Ask the model whether a new fact makes a similar old one out of date."""
    max_new_tokens: int = 400
    profile_tokens: int = 400
    """Profile strategy: tokens of one user message the writer reads (longer ones are cut)."""
    privacy: PrivacyGuard = field(default_factory=PrivacyGuard)


class MemoryAgent:
    """Builds and updates one user's memory from their chat history with one model."""

    def __init__(
        self,
        model: Model,
        chunk_tokens: int = 5000,
        memory_tokens: int = 2048,
        *,
        config: MemoryConfig | None = None,
        **overrides: object,
    ) -> None:
        self.model = model
        self.config = config or MemoryConfig(chunk_tokens=chunk_tokens, memory_tokens=memory_tokens)
        for k, v in overrides.items():
            if not hasattr(self.config, k):
                raise TypeError(f"unknown memory option {k!r}")
            setattr(self.config, k, v)

    @property
    def prompt_version(self) -> str:
        return {
            "select": prompts.NOTES_VERSION if self.config.notes else prompts.SELECT_VERSION,
            "extract": prompts.PROMPT_VERSION,
            "rewrite": "rewrite-v1",
            "profile": PROFILE_VERSION,
        }[self.config.strategy]

    # --- chunks ----------------------------------------------------------------------------
    def chunk(self, messages: Sequence[Message], start: int = 0) -> list[Chunk]:
        """The history split into chunks of at most ``chunk_tokens`` tokens (model tokenizer).

        Secrets are redacted from whole messages first, so a secret is never split across two
        pieces where the detectors could miss it."""
        guard = self.config.privacy
        found: dict[int, list[dict[str, object]]] = {}
        cleaned: list[Message] = []
        for i, m in enumerate(messages):
            text, rs = guard.clean(m["content"], where=f"message {start + i}")
            if rs:
                found[start + i] = [r.as_dict() for r in rs]
            cleaned.append({"role": m["role"], "content": text} if rs else m)
        chunks = chunk_messages(
            cleaned, self.model.count_tokens, self.config.chunk_tokens, start=start
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

        ``state`` is never modified. Raises :class:`MemoryUpdateError` if the model fails;
        malformed output keeps the previous memory (the report says so).
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
            if self.config.strategy == "select":
                await self._select_update(new, pieces, report)
            elif self.config.strategy == "extract":
                await self._extract_update(new, pieces, report)
            elif self.config.strategy == "profile":
                await profile_update(self, new, pieces, report)
            else:
                await self._rewrite_update(new, state, pieces, report)
            new = await self._hold_cap(new, state, report)
        except ModelError as e:
            raise MemoryUpdateError(f"model failed on chunk {chunk.number}: {e}") from e
        # Secrets must never enter the memory, whatever the model wrote.
        for line in new.lines:
            cleaned, found = self.config.privacy.clean(line.text, where="memory")
            if found:
                line.text = cleaned
                report.redactions += [r.as_dict() for r in found]
        new.lines = [ln for ln in new.lines if content_words(_REDACTED.sub(" ", ln.text))]
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

    # --- select strategy -------------------------------------------------------------------
    async def _select_update(
        self, new: MemoryState, pieces: list[Piece], report: ChunkReport
    ) -> None:
        for p in pieces:
            if p.role != "user":
                continue
            asked = [forget_request(p.content)] + [
                forget_request(x) for x in split_sentences(p.content)
            ]
            for what in dict.fromkeys(w for w in asked if w):
                report.removed += await self._forget(new, what)
            for sentence in candidates(p.content):
                if forget_request(sentence) or await self._is_forgotten(new, sentence):
                    continue
                if self.config.judge_statements:
                    question = prompts.SELECT_USER.format(sentence=sentence)
                    score = await self._p_yes(question, prompts.SELECT_SYSTEM)
                    if score <= self.config.select_threshold:
                        continue
                else:
                    score = signal(sentence)
                text, evidence = sentence, None
                if self.config.notes and is_question(sentence):
                    topic = await self._topic(sentence)
                    if topic is None:  # a question is no fact to keep in the user's words
                        continue
                    text, evidence = topic, sentence
                elif self.config.notes:
                    note = await self._note(sentence)
                    if note == "":  # the model says the statement reveals nothing about the user
                        continue
                    if note is not None:
                        text, evidence = note, sentence
                await self._merge_fact(
                    new, text, [p.index], report, score=round(score, 4), evidence=evidence
                )

    async def _short_reply(
        self, msgs: list[Message], schema: dict, key: str, max_tokens: int
    ) -> str | None:
        """The one string field of a schema-constrained reply, whitespace collapsed and, when it
        ran to the schema's length limit, cut back to its last whole phrase; None when the call
        fails, the reply is broken or nothing is left."""
        try:
            g = await self.model.generate(
                msgs, max_tokens=max_tokens, temperature=0.0, json_schema=schema
            )
            data = json.loads(g.text)
        except (ModelError, json.JSONDecodeError):
            return None
        text = data.get(key) if isinstance(data, dict) else None
        if not isinstance(text, str):
            return None
        text = " ".join(text.split())
        limit = schema["properties"][key].get("maxLength")
        if limit and len(text) >= limit - 1:
            text = _cut_at_phrase(text)  # the schema closed the string mid-phrase
        return text.strip(" .;,?") or None

    def _faithful(self, text: str, said: str, examples: frozenset[str]) -> bool:
        """Shorter than what the user said, about it (a shared content word), not a prompt
        example, and free of secrets (the input was redacted; one must not come back)."""
        return (
            text not in examples
            and bool(content_words(text) & content_words(said))
            and len(text) < len(said)
            and not self.config.privacy.clean(text)[1]
        )

    async def _note(self, sentence: str) -> str | None:
        """A short profile note for one statement of the user's: ``""`` when the model says it
        reveals nothing, None when its reply is unusable (the caller keeps the statement)."""
        msgs: list[Message] = prompts.note_messages(sentence)  # type: ignore[assignment]
        note = await self._short_reply(msgs, prompts.note_schema(), "note", 48)
        if note is None:
            return None
        if note.lower() in ("none", "nothing", "n/a", "no"):
            return ""
        if not self._faithful(note, sentence, prompts.NOTE_EXAMPLES):
            return None
        if not reads_as_profile_note(note):
            return None  # "Time zone differences", "Cloud computing is ...": not about the user
        return note[0].upper() + note[1:]

    async def _topic(self, question: str) -> str | None:
        """ "Asked about <topic>" for one question of the user's, or None when the reply is
        unusable (broken, copied from the prompt, or not about what the user asked)."""
        if _FRAGMENT.search(question):
            return None  # "on Tuesday or Wednesday work for you?", "Is there a theory behind that?"
        msgs: list[Message] = prompts.topic_messages(question)  # type: ignore[assignment]
        topic = await self._short_reply(msgs, prompts.topic_schema(), "topic", 40)
        if topic is None:
            return None
        if topic.lower().startswith(prompts.ASKED.lower()):
            topic = topic[len(prompts.ASKED) :]
        if not self._faithful(topic, question, prompts.TOPIC_EXAMPLES):
            return None
        return prompts.ASKED + topic

    async def _is_forgotten(self, state: MemoryState, text: str) -> bool:
        """Whether ``text`` is about something the user asked to forget: clear word overlap, or
        a partial one the model confirms."""
        for what in state.forgotten:
            s = overlap(text, what)
            if s >= 0.6:
                return True
            if s >= 0.34 and await self._yes(
                f"Note: {text}\nThe user asked: forget {what}.\n"
                "Is the note about what the user asked to forget? Answer yes or no.",
                prompts.REPLACE_SYSTEM,
            ):
                return True
        return False

    # --- extract strategy ------------------------------------------------------------------
    def _view(self, piece: Piece) -> str:
        """How the extractor sees a piece: user turns whole, assistant turns abbreviated."""
        n = self.config.assistant_tokens
        if piece.role != "assistant" or n < 0:
            return piece.render()
        short = self.model.truncate_to_tokens(piece.content.strip(), n)
        if len(short) < len(piece.content.strip()):
            short = short.rstrip() + " …"
        return Piece(piece.index, piece.role, short, piece.part, piece.parts).render()

    def _steps(self, pieces: list[Piece]) -> list[list[str]]:
        steps: list[list[str]] = []
        cur: list[str] = []
        cur_tokens = 0
        for p in pieces:
            v = self._view(p)
            t = self.count(v) + 2
            if cur and cur_tokens + t > self.config.step_tokens:
                steps.append(cur)
                cur, cur_tokens = [], 0
            cur.append(v)
            cur_tokens += t
        if cur:
            steps.append(cur)
        return steps

    async def _extract_update(
        self, new: MemoryState, pieces: list[Piece], report: ChunkReport
    ) -> None:
        valid_ids = {p.index for p in pieces}
        # 1. Forget requests in this chunk (deterministic), applied in order.
        for p in pieces:
            if p.role == "user" and (what := forget_request(p.content)):
                report.removed += await self._forget(new, what)
        # 2. Facts, step by step.
        schema = prompts.extract_schema(self.config.max_facts_per_step)
        for step in self._steps(pieces):
            if not any("] user" in s[:20] for s in step):
                continue  # nothing the user wrote
            msgs: list[Message] = [
                {"role": "system", "content": prompts.EXTRACT_SYSTEM},
                {"role": "user", "content": prompts.EXTRACT_USER.format(chat="\n\n".join(step))},
            ]
            g = await self.model.generate(
                msgs, max_tokens=self.config.max_new_tokens, json_schema=schema, temperature=0.0
            )
            facts = salvage_json(g.text, "facts")
            if facts is None:
                report.warnings.append(f"unparseable extraction output ignored: {g.text[:80]!r}")
                continue
            for f in facts:
                if not isinstance(f, dict) or not isinstance(f.get("fact"), str):
                    continue
                if f.get("about", "user") != "user":
                    continue
                text = " ".join(f["fact"].split()).strip(" -•")
                if len(text) < 8:
                    continue
                ids = [i for i in f.get("messages", []) if isinstance(i, int) and i in valid_ids]
                said = " ".join(p.content for p in pieces if p.index in ids and p.role == "user")
                await self._merge_fact(new, text, ids, report, said=said or None)

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
                prompts.REPLACE_USER.format(old=best.text, new=text), prompts.REPLACE_SYSTEM
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
        state.forgotten.append(what)
        drop = []
        for line in state.lines:
            s = overlap(what, line.text)
            if s >= 0.6:
                drop.append(line)
            elif s >= 0.34 and await self._yes(
                f"Note: {line.text}\nThe user asked: forget {what}.\n"
                "Is the note about what the user asked to forget? Answer yes or no.",
                prompts.REPLACE_SYSTEM,
            ):
                drop.append(line)
        state.lines = [ln for ln in state.lines if ln not in drop]
        return len(drop)

    async def _yes(self, question: str, system: str) -> bool:
        return await self._p_yes(question, system) > 0.5

    async def _p_yes(self, question: str, system: str) -> float:
        """P(yes) for a yes/no question: from the two answers' log-probs where the backend scores,
        else 1.0 or 0.0 from a generated answer."""
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
        g = await self.model.generate(msgs, max_tokens=3)
        return 1.0 if g.text.strip().lower().startswith("yes") else 0.0

    # --- rewrite strategy ------------------------------------------------------------------
    async def _rewrite_update(
        self, new: MemoryState, previous: MemoryState, pieces: list[Piece], report: ChunkReport
    ) -> None:
        chat = "\n\n".join(p.render() for p in pieces)
        msgs: list[Message] = [
            {"role": "system", "content": prompts.REWRITE_SYSTEM},
            {
                "role": "user",
                "content": prompts.REWRITE_USER.format(
                    memory=previous.text, chat=chat, limit=self.config.memory_tokens
                ),
            },
        ]
        g = await self.model.generate(
            msgs, max_tokens=self.config.memory_tokens + 64, temperature=0.0
        )
        text = g.text
        if g.finish_reason == "length":  # cut off: drop the unfinished last line
            text = text[: text.rfind("\n")] if "\n" in text else ""
        parsed = MemoryState.from_text(text)
        bulleted = sum(1 for ln in text.splitlines() if ln.lstrip().startswith(("-", "*", "•")))
        if not text.strip() or not parsed.lines or bulleted < len(parsed.lines) / 2:
            report.warnings.append("model output was not a memory; kept the previous memory")
            report.kept_previous = True
            return
        valid = {p.index for p in pieces} | {i for ln in previous.lines for i in ln.sources}
        for ln in parsed.lines:
            ln.sources = [i for i in ln.sources if i in valid]
        report.added = sum(
            1 for ln in parsed.lines if ln.text not in {x.text for x in previous.lines}
        )
        report.removed = sum(
            1 for ln in previous.lines if ln.text not in {x.text for x in parsed.lines}
        )
        new.lines = parsed.lines

    # --- the cap ---------------------------------------------------------------------------
    async def _hold_cap(
        self, new: MemoryState, previous: MemoryState, report: ChunkReport
    ) -> MemoryState:
        cap = self.config.memory_tokens
        if not new.lines or self.count(new.text) <= cap:
            return new
        tokens = self.count(new.text)
        if self.config.strategy in ("select", "profile"):
            return self._drop_least_personal(new, tokens, report)
        msgs: list[Message] = [
            {"role": "system", "content": prompts.COMPRESS_SYSTEM},
            {
                "role": "user",
                "content": prompts.COMPRESS_USER.format(tokens=tokens, limit=cap, memory=new.text),
            },
        ]
        g = await self.model.generate(
            msgs,
            max_tokens=cap + 64,
            json_schema=prompts.compress_schema(max(4, len(new.lines))),
            temperature=0.0,
        )
        notes = salvage_json(g.text, "notes") or []
        compressed = MemoryState.from_text("\n".join(n for n in notes if isinstance(n, str)))
        ok_ids = {i for ln in new.lines for i in ln.sources}
        for ln in compressed.lines:
            ln.sources = [i for i in ln.sources if i in ok_ids]
        if compressed.lines and self.count(compressed.text) <= cap:
            report.warnings.append(f"memory over the cap ({tokens} > {cap} tokens): compressed")
            compressed.forgotten = new.forgotten
            report.removed += max(0, len(new.lines) - len(compressed.lines))
            return compressed
        report.warnings.append(
            f"memory over the cap ({tokens} > {cap} tokens) and compression failed: "
            "kept the previous memory; this chunk's new facts were not stored"
        )
        report.kept_previous = True
        report.added = report.removed = 0
        kept = previous.model_copy(deep=True)
        kept.forgotten = new.forgotten
        return kept

    def _drop_least_personal(
        self, new: MemoryState, tokens: int, report: ChunkReport
    ) -> MemoryState:
        """Select strategy's compression: drop whole statements until the memory fits, weakest
        first: lowest personal score (capped at 3) plus up to 3 points for recency, so later
        statements (which carry updated preferences) survive. Never cuts a sentence."""
        cap = self.config.memory_tokens
        newest = max((max(ln.sources, default=0) for ln in new.lines), default=0) or 1

        def keep_score(i: int) -> tuple[float, int]:
            ln = new.lines[i]
            base = min(ln.score if ln.score is not None else 3.0, 3.0)
            return base + 3.0 * max(ln.sources, default=newest) / newest, i

        order = sorted(range(len(new.lines)), key=keep_score)
        drop: set[int] = set()
        budget = tokens
        for i in order:
            if budget <= cap:
                break
            drop.add(i)
            budget -= self.count(new.lines[i].render()) + 1
        new.lines = [ln for i, ln in enumerate(new.lines) if i not in drop]
        while new.lines and self.count(new.text) > cap:  # the per-line estimate was short
            new.lines.pop(min(range(len(new.lines)), key=keep_score))
            drop.add(-1 - len(drop))
        report.removed += len(drop)
        report.warnings.append(
            f"memory over the cap ({tokens} > {cap} tokens): dropped {len(drop)} least personal "
            "statement(s)"
        )
        return new


__all__ = [
    "EMPTY",
    "BuildResult",
    "ChunkReport",
    "MemoryAgent",
    "MemoryConfig",
    "MemoryUpdateError",
]
