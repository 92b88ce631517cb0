"""Snippet mode: a short history per question, made from its related conversation snippet.

The release's ``train.csv`` has no full histories for most personas, but every row carries the
conversation that reveals its preference (``related_conversation_snippet``). A snippet history is
that conversation, optionally among ``distractors`` snippets of other questions of the same
persona (true facts about the same user that the question does not need), in a seeded order. It
is a fast, low-noise development loop for memory writers: a memory written from it must carry
the one preference the question tests, among others.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from .loader import ChatHistory, Release
from .render import Message

SNIPPET_PREFIX = "snippet:"


def _messages(snippet: list[dict[str, Any]]) -> list[Message]:
    out: list[Message] = []
    for m in snippet:
        content = m.get("content")
        if isinstance(content, list):
            content = "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
        role = m.get("role")
        if isinstance(content, str) and content.strip() and role in ("user", "assistant"):
            out.append({"role": role, "content": content})
    return out


def attach_snippet_histories(release: Release, *, distractors: int = 0, seed: int = 0) -> int:
    """Give every question with a snippet a history made from it (``history_snippet``); returns
    how many got one. Distractors are other questions' snippets of the same persona, never one
    with the same preference, placed before or after the item's own snippet by a seeded draw."""
    by_persona: dict[str, list[int]] = {}
    for i, q in enumerate(release.items):
        if _messages(q.related_snippet):
            by_persona.setdefault(q.persona_id, []).append(i)
    made = 0
    for pool in by_persona.values():
        for i in pool:
            q = release.items[i]
            key = hashlib.sha256(f"{seed}:{q.id}".encode()).hexdigest()
            rng = random.Random(int(key[:16], 16))
            others = [
                j
                for j in pool
                if j != i and release.items[j].preference.strip() != q.preference.strip()
            ]
            picked = rng.sample(others, min(distractors, len(others)))
            blocks = [_messages(release.items[j].related_snippet) for j in picked]
            blocks.insert(rng.randint(0, len(blocks)), _messages(q.related_snippet))
            messages = [m for b in blocks for m in b]
            link = f"{SNIPPET_PREFIX}{q.id}"
            release.add_history(
                link,
                ChatHistory(
                    path=link,
                    metadata={"snippet_of": q.id, "distractors": len(picked)},
                    messages=messages,
                ),
            )
            q.history_snippet = link
            made += 1
    return made
