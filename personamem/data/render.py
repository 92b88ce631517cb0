"""The one way chat messages are shown to a model, used by every part of personamem.

Format (documented in the README):

    [12] user: Can you help improve the tone of this email ...
    [13] assistant: Sure, here is a warmer version ...

``[n]`` is the message's index in the user's history (0-based, counting every message,
system messages included), so a memory line can cite the messages that support it and the
citation can be checked. System messages are never rendered for memory writing: they can
carry persona text that must not leak into the memory (the paper's rule).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..models.base import Message


def render_message(index: int, message: Message, part: int = 1, parts: int = 1) -> str:
    """One message as ``[index] role: content``; part ``part`` of a message split in ``parts``
    as ``[index] role (part k/n): content``."""
    role = message["role"] if parts == 1 else f"{message['role']} (part {part}/{parts})"
    return f"[{index}] {role}: {message['content'].strip()}"


def render_messages(
    messages: Sequence[Message], start: int = 0, *, include_system: bool = False
) -> str:
    """Messages as numbered lines, ``start`` being the index of ``messages[0]`` in the history."""
    return "\n\n".join(
        render_message(start + i, m)
        for i, m in enumerate(messages)
        if include_system or m["role"] != "system"
    )


def render_indexed(items: Iterable[tuple[int, Message]]) -> str:
    """Render (index, message) pairs, e.g. a chunk's messages with their history indices."""
    return "\n\n".join(render_message(i, m) for i, m in items if m["role"] != "system")
