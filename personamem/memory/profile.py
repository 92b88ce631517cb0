"""The ``profile`` writer's prompt: one thing the user wrote in, one inferred profile line out.

The ``select`` strategy keeps notes faithful by rejecting any note whose words the user did not
say; an implicit preference is by definition in other words ("leggings and a zip-up jacket" ->
"Dresses for comfort in athleisure"). The profile writer may infer, one user message at a time,
and the same prompt is what ``personamem train sft`` trains a writer on (the release's
``related_conversation_snippet`` user turns in, its ground-truth ``preference`` out).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .chunking import Piece
from .merge import content_words, forget_request
from .select import is_exercise, split_sentences
from .state import MemoryState

if TYPE_CHECKING:
    from .agent import ChunkReport, MemoryAgent

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


# --- the strategy ---------------------------------------------------------------------------
_NONE_REPLIES = frozenset({"none", "nothing", "n/a", "no", "unknown", "null"})
MAX_WORDS = 20


def parse_profile(text: str) -> str | None:
    """The profile line of a reply, ``""`` for "nothing about the user", None when broken."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    line = data.get("profile") if isinstance(data, dict) else None
    if not isinstance(line, str):
        return None
    line = " ".join(line.split()).strip(" .;,")
    if line.lower().strip("\"'") in _NONE_REPLIES or not line:
        return ""
    return line[0].upper() + line[1:]


async def profile_update(
    agent: MemoryAgent, new: MemoryState, pieces: list[Piece], report: ChunkReport
) -> None:
    """One profile line per user message of the chunk (or none), merged into the memory.

    The writer sees one message at a time (the user's own words, at most ``profile_tokens``
    tokens), never the memory, a later chunk or a query. A model error propagates (the update
    fails and keeps the previous memory); a broken reply skips that message with a warning."""
    cfg = agent.config
    for p in pieces:
        if p.role != "user":
            continue
        asked = [forget_request(p.content)] + [
            forget_request(x) for x in split_sentences(p.content)
        ]
        forgets = list(dict.fromkeys(w for w in asked if w))
        for what in forgets:
            report.removed += await agent._forget(new, what)
        if forgets or is_exercise(p.content) or not content_words(p.content):
            continue
        text = agent.model.truncate_to_tokens(p.content.strip(), cfg.profile_tokens)
        g = await agent.model.generate(
            profile_messages(text),  # type: ignore[arg-type]
            max_tokens=48,
            temperature=0.0,
            json_schema=profile_schema(),
        )
        line = parse_profile(g.text)
        if line is None:
            report.warnings.append(f"message {p.index}: the writer's reply was not usable")
            continue
        if not line or line in PROFILE_EXAMPLES or len(line.split()) > MAX_WORDS:
            continue
        if cfg.privacy.clean(line)[1]:
            continue  # a secret must not come back through the writer
        await agent._merge_fact(
            new,
            line,
            [p.index],
            report,
            score=2.0,
            evidence=p.content.strip()[:300],
            said=p.content,
        )
