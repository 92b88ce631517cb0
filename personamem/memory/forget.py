"""Forget everywhere: what a user asked to forget is kept out of every text read back.

The agent drops memory lines about a forgotten thing and keeps it out of later updates; the
store also masks it in every stored text it hands out (the messages behind a line, exports,
version history), sentence by sentence, with :func:`scrub`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .merge import FORGET_MATCH, overlap

MASK = "[forgotten]"
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)|[.!?]+", re.M)


def about(text: str, forgotten: Sequence[str]) -> str | None:
    """The forgotten thing ``text`` is about (clear word overlap), or None."""
    return next((f for f in forgotten if overlap(f, text) >= FORGET_MATCH), None)


def scrub(text: str, forgotten: Sequence[str]) -> str:
    """``text`` with each sentence about a forgotten thing replaced by ``[forgotten]``."""
    if not forgotten or not text:
        return text
    return _SENTENCE.sub(
        lambda m: MASK if m.group(0).strip() and about(m.group(0), forgotten) else m.group(0),
        text,
    )


def scrub_tree(obj: Any, forgotten: Sequence[str], keep: frozenset[str] = frozenset()) -> Any:
    """Every string in a JSON-like tree scrubbed, except under the keys in ``keep``."""
    if not forgotten:
        return obj
    if isinstance(obj, str):
        return scrub(obj, forgotten)
    if isinstance(obj, list):
        return [scrub_tree(x, forgotten, keep) for x in obj]
    if isinstance(obj, dict):
        return {k: v if k in keep else scrub_tree(v, forgotten, keep) for k, v in obj.items()}
    return obj


__all__ = ["MASK", "about", "scrub", "scrub_tree"]
