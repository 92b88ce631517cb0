"""Memory quality beyond MCQ: preference recall, line precision, verbatim share, paired deltas.

Read from a finished run folder (the ``memory`` system's rows and the memories it wrote) and the
release it ran on:

- **recall**: share of questions whose ground-truth preference the memory states or implies: the
  best-matching memory line is within ``threshold`` cosine similarity (MiniLM) of the
  preference. Forget items (``ask_to_forget``) are left out: there the memory must *not* hold it.
- **precision**: share of memory lines that match something true of the persona: any of its
  (current) preferences in the release, at the same threshold. The release does not list
  everything true of a user, so this is a lower bound.
- **verbatim**: share of lines that copy 8 or more consecutive words of a message.
- **paired difference**: per question, memory's correctness minus another system's, with a
  normal-approximation 95% interval on the mean difference.

The similarity method is validated by :func:`validate_matcher`: the persona's preference list as
a memory must match (near 100%), the same list without the item's own preference (its other,
related preferences) and another persona's memory must rarely match.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from ..data import QAItem
from ..memory.state import MemoryState
from .embed import Embedder
from .report import wilson

THRESHOLD = 0.6
VERBATIM_WORDS = 8
_WORD = re.compile(r"[a-z0-9']+")
_SENT = re.compile(r"(?<=[.!?])\s+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def is_verbatim(line: str, sources: Sequence[str], n: int = VERBATIM_WORDS) -> bool:
    """Whether ``line`` copies ``n`` or more consecutive words of any source text."""
    w = words(line)
    if len(w) < n:
        return False
    grams = {" ".join(w[i : i + n]) for i in range(len(w) - n + 1)}
    for s in sources:
        sw = words(s)
        if any(" ".join(sw[i : i + n]) in grams for i in range(len(sw) - n + 1)):
            return True
    return False


def truths(persona_items: Sequence[QAItem]) -> list[str]:
    """What the release says is true of the persona: its current preferences."""
    out = [q.preference for q in persona_items if q.preference and q.pref_type != "ask_to_forget"]
    return list(dict.fromkeys(s.strip() for s in out if s.strip()))


class Interval(BaseModel):
    value: float | None
    lo: float | None
    hi: float | None
    n: int

    def __str__(self) -> str:
        if self.value is None:
            return "n/a"
        return f"{100 * self.value:.1f}% [{100 * (self.lo or 0):.1f}, {100 * (self.hi or 0):.1f}] (n={self.n})"


def share(k: int, n: int) -> Interval:
    if n == 0:
        return Interval(value=None, lo=None, hi=None, n=0)
    lo, hi = wilson(k, n)
    return Interval(value=k / n, lo=lo, hi=hi, n=n)


def paired(diffs: Sequence[float]) -> Interval:
    """Mean of per-question differences with a normal 95% interval."""
    n = len(diffs)
    if n == 0:
        return Interval(value=None, lo=None, hi=None, n=0)
    m = sum(diffs) / n
    sd = math.sqrt(sum((d - m) ** 2 for d in diffs) / (n - 1)) if n > 1 else 0.0
    half = 1.96 * sd / math.sqrt(n)
    return Interval(value=m, lo=m - half, hi=m + half, n=n)


class Matcher:
    """Cosine similarity of sentence embeddings, with a threshold."""

    def __init__(self, embedder: Embedder, threshold: float = THRESHOLD) -> None:
        self.embedder = embedder
        self.threshold = threshold
        self._cache: dict[str, np.ndarray] = {}

    def vecs(self, texts: Sequence[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            for t, v in zip(todo, self.embedder.encode(todo), strict=True):
                self._cache[t] = v
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])

    def best(self, query: str, lines: Sequence[str]) -> float:
        if not lines:
            return 0.0
        return float((self.vecs(lines) @ self.vecs([query])[0]).max())

    def matches(self, query: str, lines: Sequence[str]) -> bool:
        return self.best(query, lines) >= self.threshold


def memory_lines(text: str) -> list[str]:
    return [ln.text for ln in MemoryState.from_text(text).lines]


class Validation(BaseModel):
    """Recall of the matcher on memories whose answer is known."""

    oracle: Interval
    """The persona's preference list as its memory: must match (near 100%)."""
    leave_one_out: Interval
    """The same list without the item's own preference: related lines must rarely match."""
    other_persona: Interval
    """Another persona's preference list: must rarely match."""


def validate_matcher(matcher: Matcher, items: Sequence[QAItem]) -> Validation:
    """Recall of ``matcher`` on memories made of the release's own preference lists."""
    by_persona: dict[str, list[str]] = {}
    for q in items:
        if q.preference and q.pref_type != "ask_to_forget":
            by_persona.setdefault(q.persona_id, []).append(q.preference)
    personas = sorted(by_persona)
    hit = loo = other = n = 0
    for q in items:
        if not q.preference or q.pref_type == "ask_to_forget":
            continue
        n += 1
        own = list(dict.fromkeys(by_persona[q.persona_id]))
        hit += matcher.matches(q.preference, own)
        loo += matcher.matches(q.preference, [p for p in own if p != q.preference])
        rest = [p for p in personas if p != q.persona_id]
        if rest:
            other += matcher.matches(q.preference, by_persona[rest[0]])
    return Validation(
        oracle=share(hit, n), leave_one_out=share(loo, n), other_persona=share(other, n)
    )


class QualityReport(BaseModel):
    memories: int
    lines_per_memory: float
    recall: Interval
    recall_shuffled: Interval | None = None
    """Chance level of ``recall``: each question's preference against the memory of another
    question of the same persona (written from other conversations of the same user); only
    where memories differ per question (snippet mode)."""
    precision: Interval
    verbatim: Interval
    accuracy: dict[str, Interval]
    paired_vs: dict[str, Interval]
    threshold: float


def memory_quality(
    rows: Sequence[dict[str, Any]],
    items: dict[str, QAItem],
    memories_dir: Path,
    history_texts: dict[str, list[str]],
    matcher: Matcher,
) -> QualityReport:
    """Quality of the memories behind a run's ``memory`` rows (mcq mode)."""
    by_system: dict[str, dict[str, bool]] = {}
    for r in rows:
        if r.get("mode") == "mcq" and r.get("status", "ok") != "error":
            by_system.setdefault(r["system"], {})[r["qid"]] = bool(r.get("correct"))
    mem_rows = [r for r in rows if r["system"] == "memory" and r.get("mode") == "mcq"]
    persona_items: dict[str, list[QAItem]] = {}
    for q in items.values():
        persona_items.setdefault(q.persona_id, []).append(q)
    recall_k = recall_n = 0
    seen: dict[str, list[str]] = {}
    owner: dict[str, QAItem] = {}  # history hash -> a question asked of it (for its persona)
    for r in mem_rows:
        q = items.get(r["qid"])
        path = memories_dir / f"{r.get('history_hash')}.md"
        if q is None or not path.is_file():
            continue
        lines = memory_lines(path.read_text(encoding="utf-8"))
        seen[str(r.get("history_hash"))] = lines
        owner.setdefault(str(r.get("history_hash")), q)
        if q.preference and q.pref_type != "ask_to_forget":
            recall_n += 1
            recall_k += matcher.matches(q.preference, lines)
    shuffled = _shuffled_recall(mem_rows, items, seen, matcher)
    prec_k = prec_n = verb_k = 0
    for h, lines in seen.items():
        truth = truths(persona_items[owner[h].persona_id])
        texts = history_texts.get(h, [])
        for ln in lines:
            prec_n += 1
            prec_k += matcher.matches(ln, truth)
            verb_k += is_verbatim(ln, texts)
    accuracy = {s: share(sum(v.values()), len(v)) for s, v in by_system.items()}
    mem = by_system.get("memory", {})
    paired_vs = {
        s: paired([float(mem[q]) - float(v[q]) for q in mem if q in v])
        for s, v in by_system.items()
        if s != "memory"
    }
    return QualityReport(
        memories=len(seen),
        lines_per_memory=(sum(len(v) for v in seen.values()) / len(seen)) if seen else 0.0,
        recall=share(recall_k, recall_n),
        recall_shuffled=shuffled,
        precision=share(prec_k, prec_n),
        verbatim=share(verb_k, prec_n),
        accuracy=accuracy,
        paired_vs=paired_vs,
        threshold=matcher.threshold,
    )


def _shuffled_recall(
    mem_rows: Sequence[dict[str, Any]],
    items: dict[str, QAItem],
    seen: dict[str, list[str]],
    matcher: Matcher,
) -> Interval | None:
    """Recall against the next (in question order, cyclic) other memory of the same persona
    whose question has a different preference; None when the persona has one memory."""
    by_persona: dict[str, list[tuple[QAItem, str]]] = {}
    for r in mem_rows:
        q = items.get(r["qid"])
        h = str(r.get("history_hash"))
        if q is not None and h in seen and q.preference and q.pref_type != "ask_to_forget":
            by_persona.setdefault(q.persona_id, []).append((q, h))
    k = n = 0
    for group in by_persona.values():
        if len({h for _, h in group}) < 2:
            continue
        for i, (q, h) in enumerate(group):
            for j in range(1, len(group)):
                other_q, other_h = group[(i + j) % len(group)]
                if other_h != h and other_q.preference.strip() != q.preference.strip():
                    n += 1
                    k += matcher.matches(q.preference, seen[other_h])
                    break
    return share(k, n) if n else None
