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
from .merge import content_words, cut_at_phrase, forget_request
from .select import is_exercise, split_sentences
from .state import MemoryState

if TYPE_CHECKING:
    from .agent import ChunkReport, MemoryAgent

PROFILE_VERSION = "profile-v3"

# v2 (measured on the sample's full history with v1): the writer dropped the detail that makes a
# preference specific ("doing yoga just occasionally" became "Prefers yoga", "sticking to just
# one streaming platform" became "Prefers streaming platforms"), and the questions test exactly
# that detail. The system prompt and two shots now keep how often, how many and which.
# v3: a line the schema's length limit closed mid-phrase ("..., uses paleography and
# comparative analysis, is") is cut back to its last whole phrase.
PROFILE_SYSTEM = """You keep a profile of a chatbot's user. Read what the user wrote and state the one thing it reveals about the user: a preference, habit, interest, routine, health condition or background, in at most 12 words, as a profile line (for example "Enjoys homemade pizza nights" or "Prefers quiet cafes to crowded bars"). Say what is implied, not only what is said, and keep the user's specific details: how often, how many, which kind, and whether they do it or avoid it. It must be about the user, not about people they write to, for or about. Reply none if it reveals nothing about the user."""

PROFILE_SHOTS: tuple[tuple[str, str], ...] = (
    (
        "Can you make this text to my sister sound nicer? 'Running late again, grabbing my "
        "leggings and zip-up after yoga, see you at brunch.'",
        "Dresses for comfort in athleisure; does yoga",
    ),
    ("Would Tuesday at 10 work for a quick call about the budget?", "none"),
    (
        "Is there any real benefit to going to pilates only once in a while?",
        "Does pilates only occasionally, not regularly",
    ),
    (
        "Please polish this note for my colleague: 'Dana, I know you love jazz brunches, so I "
        "booked one for your birthday.'",
        "none",
    ),
    (
        "How does buying all my groceries at just one store affect the deals I get?",
        "Shops at a single grocery store",
    ),
    (
        "Why does my lower back ache after long days at my desk?",
        "Has lower back pain from long desk work",
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


PROFILE_MAX_CHARS = 100


def profile_schema(max_chars: int = PROFILE_MAX_CHARS) -> dict:
    """JSON schema of the reply."""
    return {
        "type": "object",
        "properties": {"profile": {"type": "string", "minLength": 1, "maxLength": max_chars}},
        "required": ["profile"],
    }


# --- the strategy ---------------------------------------------------------------------------
_NONE_REPLIES = frozenset({"none", "nothing", "n/a", "no", "unknown", "null"})
MAX_WORDS = 20


def parse_profile(text: str, max_chars: int | None = None) -> str | None:
    """The profile line of a reply, ``""`` for "nothing about the user", None when broken. A
    line that ran to the schema's ``max_chars`` is cut back to its last whole phrase."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    line = data.get("profile") if isinstance(data, dict) else None
    if not isinstance(line, str):
        return None
    line = cut_at_phrase(" ".join(line.split()), max_chars).strip(" .;,")
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
        line = parse_profile(g.text, PROFILE_MAX_CHARS)
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
