"""The ``profile`` writer's prompt: one thing the user wrote in, one inferred profile line out.

The ``select`` strategy keeps notes faithful by rejecting any note whose words the user did not
say; an implicit preference is by definition in other words ("leggings and a zip-up jacket" ->
"Dresses for comfort in athleisure"). The profile writer may infer, one user message at a time,
and the same prompt is what ``personamem train sft`` trains a writer on (the release's
``related_conversation_snippet`` user turns in, its ground-truth ``preference`` out).
"""

from __future__ import annotations

import json

PROFILE_VERSION = "profile-v1"

PROFILE_SYSTEM = """You keep a profile of a chatbot's user. Read what the user wrote and state the one thing it reveals about the user: a preference, habit, interest, routine, health condition or background, in at most 12 words, as a profile line (for example "Enjoys homemade pizza nights" or "Prefers quiet cafes to crowded bars"). Say what is implied, not only what is said. It must be about the user, not about people they write to, for or about. Reply none if it reveals nothing about the user."""

PROFILE_SHOTS: tuple[tuple[str, str], ...] = (
    (
        "Can you make this text to my sister sound nicer? 'Running late again, grabbing my "
        "leggings and zip-up after yoga, see you at brunch.'",
        "Dresses for comfort in athleisure; does yoga",
    ),
    ("Would Tuesday at 10 work for a quick call about the budget?", "none"),
    (
        "Why does my lower back ache after long days at my desk?",
        "Has lower back pain from long desk work",
    ),
    (
        "Please polish this note for my colleague: 'Dana, I know you love jazz brunches, so I "
        "booked one for your birthday.'",
        "none",
    ),
    (
        "What are some ways to keep farmers-market vegetables fresh until the weekend?",
        "Shops at farmers markets for fresh vegetables",
    ),
)

#: The shots' own lines: a reply equal to one of them was copied, not inferred.
PROFILE_EXAMPLES = frozenset(line for _, line in PROFILE_SHOTS)

NONE = "none"


def profile_messages(text: str) -> list[dict[str, str]]:
    """The writer's chat for one user message (same prefix every time: KV-cache reuse)."""
    turns: list[dict[str, str]] = [{"role": "system", "content": PROFILE_SYSTEM}]
    for said, line in PROFILE_SHOTS:
        turns.append({"role": "user", "content": said})
        turns.append({"role": "assistant", "content": profile_reply(line)})
    turns.append({"role": "user", "content": text.strip()})
    return turns


def profile_reply(line: str | None) -> str:
    """The reply the writer is asked for (and trained on): ``{"profile": line}``."""
    return json.dumps({"profile": line or NONE})


def profile_schema(max_chars: int = 100) -> dict:
    """JSON schema of the reply."""
    return {
        "type": "object",
        "properties": {"profile": {"type": "string", "minLength": 1, "maxLength": max_chars}},
        "required": ["profile"],
    }
