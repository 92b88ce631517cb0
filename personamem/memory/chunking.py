"""Split a chat history into chunks of at most N tokens, on message boundaries.

A chunk's size is the exact token count of its rendered text (see :mod:`personamem.data.render`)
for the model in use. A single message longer than a chunk is split into parts at paragraph,
sentence or word boundaries, each rendered as ``[i] role (part k/n): ...``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from ..data.render import render_message
from ..models.base import Message, longest_prefix

SEP = "\n\n"


@dataclass(frozen=True)
class Piece:
    """A message, or one part of a message too long for a chunk."""

    index: int  # position of the message in the history
    role: str
    content: str
    part: int = 1
    parts: int = 1
    start: int = 0
    """Where this part starts in the message's text (characters of ``content.strip()``)."""

    @property
    def end(self) -> int:
        """Where this part ends in the message's text."""
        return self.start + len(self.content)

    def render(self) -> str:
        return render_message(
            self.index, {"role": self.role, "content": self.content}, self.part, self.parts
        )


@dataclass
class Chunk:
    """Consecutive pieces of a history, at most ``chunk_tokens`` tokens once rendered."""

    number: int
    pieces: list[Piece]
    tokens: int
    redactions: list[dict[str, object]] = field(default_factory=list)
    """Secrets removed from this chunk's messages before chunking (kind and place, never the text)."""

    @property
    def message_ids(self) -> list[int]:
        return sorted({p.index for p in self.pieces})

    def render(self) -> str:
        return SEP.join(p.render() for p in self.pieces)


def _split_points(text: str) -> list[int]:
    """Candidate cut positions, best first: paragraphs, then sentences, then words."""
    cuts = [m.end() for m in re.finditer(r"\n\s*\n", text)]
    cuts += [m.end() for m in re.finditer(r"[.!?][\"')\]]?\s+", text)]
    cuts += [m.end() for m in re.finditer(r"\s+", text)]
    return cuts


def _fits(count: Callable[[str], int], piece: Piece, limit: int) -> bool:
    return count(piece.render()) <= limit


def split_message(
    index: int, message: Message, count: Callable[[str], int], limit: int, *, skip_chars: int = 0
) -> list[Piece]:
    """Split one message into pieces whose rendered size is at most ``limit`` tokens.

    ``skip_chars``: the first characters of the (stripped) text were already read. The pieces
    are the ones the whole message splits into when a part starts there (the settings did not
    change since); otherwise the rest of the text is split on its own. Either way no character
    after ``skip_chars`` is left out, whatever chunk size or tokenizer read the first part.
    """
    text = message["content"].strip()
    role = message["role"]
    if skip_chars >= len(text):
        return []
    if skip_chars:
        whole_split = split_message(index, message, count, limit)
        at = [k for k, p in enumerate(whole_split) if p.start == skip_chars]
        if at:
            return whole_split[at[0] :]
        lead = len(text[skip_chars:]) - len(text[skip_chars:].lstrip())
        rest = split_message(index, {"role": role, "content": text[skip_chars:]}, count, limit)
        return [replace(p, start=p.start + skip_chars + lead) for p in rest]
    whole = Piece(index, role, text)
    if _fits(count, whole, limit):
        return [whole]
    # Header with the widest possible part marker, so every part fits once numbered.
    header = count(Piece(index, role, "", 99, 99).render())
    budget = limit - header - 1
    if budget < 8:
        raise ValueError(f"chunk size {limit} is too small to hold any message text")
    parts: list[tuple[int, str]] = []
    pos = 0
    while pos < len(text):
        rest = text[pos:]
        if count(rest) <= budget:
            parts.append((pos, rest))
            break
        # Longest prefix under budget ...
        lo = max(1, len(longest_prefix(rest, count, budget)))
        # ... then back off to the best natural boundary in its last half.
        cut = lo
        for kind in (r"\n\s*\n", r"[.!?][\"')\]]?\s+", r"\s+"):
            ends = [m.end() for m in re.finditer(kind, rest[: lo + 1]) if m.end() <= lo]
            ends = [e for e in ends if e >= lo // 2]
            if ends:
                cut = ends[-1]
                break
        parts.append((pos, rest[:cut].rstrip()))
        pos += cut
        while pos < len(text) and text[pos].isspace():
            pos += 1
    parts = [(at, p) for at, p in parts if p]
    n = len(parts)
    pieces = [Piece(index, role, p, k + 1, n, at) for k, (at, p) in enumerate(parts)]
    for p in pieces:  # exactness check: never hand back an oversize piece
        assert _fits(count, p, limit), "split produced an oversize piece"
    return pieces


def chunk_messages(
    messages: Sequence[Message],
    count: Callable[[str], int],
    chunk_tokens: int = 5000,
    *,
    start: int = 0,
    include_system: bool = False,
    first_number: int = 0,
    skip_chars: int = 0,
) -> list[Chunk]:
    """Greedy chunking: add whole messages while the rendered chunk stays within ``chunk_tokens``.

    ``count`` is the model's exact token counter; ``start`` is the history index of
    ``messages[0]``; chunks are numbered from ``first_number``; the first ``skip_chars``
    characters of ``messages[0]`` were already read (see :func:`split_message`). System messages are skipped unless
    ``include_system``. Greedy chunking is prefix-stable: every chunk but the last is the same
    whatever messages follow, so a store can read a history as it arrives.
    """
    if chunk_tokens < 16:
        raise ValueError("chunk_tokens must be at least 16")
    pieces: list[Piece] = []
    for i, m in enumerate(messages):
        if m["role"] == "system" and not include_system:
            continue
        if not m["content"].strip():
            continue
        skip = skip_chars if i == 0 else 0
        pieces.extend(split_message(start + i, m, count, chunk_tokens, skip_chars=skip))
    chunks: list[Chunk] = []
    current: list[Piece] = []
    current_tokens = 0
    for p in pieces:
        if current:
            candidate = count(SEP.join(x.render() for x in [*current, p]))
            if candidate <= chunk_tokens:
                current.append(p)
                current_tokens = candidate
                continue
            chunks.append(Chunk(first_number + len(chunks), current, current_tokens))
        current = [p]
        current_tokens = count(p.render())
    if current:
        chunks.append(Chunk(first_number + len(chunks), current, current_tokens))
    return chunks
