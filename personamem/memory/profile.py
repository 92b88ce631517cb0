"""The ``profile`` writer's prompt: one thing the user wrote in, an inferred profile line out.

The ``select`` strategy keeps notes faithful by rejecting any note whose words the user did not
say; an implicit preference is by definition in other words ("leggings and a zip-up jacket" ->
"Dresses for comfort in athleisure"). The profile writer may infer, one user message at a time,
and the same prompt is what ``personamem train sft`` trains a writer on (the release's
``related_conversation_snippet`` user turns in, its ground-truth ``preference`` out).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from .chunking import Piece
from .merge import content_words, cut_at_phrase, forget_request
from .ownership import written_by_others
from .select import is_exercise, split_sentences
from .state import MemoryState

if TYPE_CHECKING:
    from .agent import ChunkReport, MemoryAgent

PROFILE_VERSIONS = {"v3": "profile-v3", "v4": "profile-v4"}
PROFILE_VERSION = PROFILE_VERSIONS["v3"]  # the default prompt

# v2 (measured on the sample's full history with v1): the writer dropped the detail that makes a
# preference specific ("doing yoga just occasionally" became "Prefers yoga", "sticking to just
# one streaming platform" became "Prefers streaming platforms"), and the questions test exactly
# that detail. The system prompt and two shots now keep how often, how many and which.
# v3 (the default): a line the schema's length limit closed mid-phrase ("..., uses paleography
# and comparative analysis, is") is cut back to its last whole phrase.
PROFILE_SYSTEM_V3 = """You keep a profile of a chatbot's user. Read what the user wrote and state the one thing it reveals about the user: a preference, habit, interest, routine, health condition or background, in at most 12 words, as a profile line (for example "Enjoys homemade pizza nights" or "Prefers quiet cafes to crowded bars"). Say what is implied, not only what is said, and keep the user's specific details: how often, how many, which kind, and whether they do it or avoid it. It must be about the user, not about people they write to, for or about. Reply none if it reveals nothing about the user."""

PROFILE_SHOTS_V3: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Can you make this text to my sister sound nicer? 'Running late again, grabbing my "
        "leggings and zip-up after yoga, see you at brunch.'",
        ("Dresses for comfort in athleisure; does yoga",),
    ),
    ("Would Tuesday at 10 work for a quick call about the budget?", ()),
    (
        "Is there any real benefit to going to pilates only once in a while?",
        ("Does pilates only occasionally, not regularly",),
    ),
    (
        "Please polish this note for my colleague: 'Dana, I know you love jazz brunches, so I "
        "booked one for your birthday.'",
        (),
    ),
    (
        "How does buying all my groceries at just one store affect the deals I get?",
        ("Shops at a single grocery store",),
    ),
    (
        "Why does my lower back ache after long days at my desk?",
        ("Has lower back pain from long desk work",),
    ),
)

# v4 (a variant, `MemoryConfig(profile_prompt="v4")`; read off 38 dev memories with
# benchmarks/writer_probe.py): v3 answered "none" for texts the user asked to polish (the
# colleague-note shot taught "polish -> none") although the user's own first-person writing is
# full of them ("stopped by a small gallery downtown"), wrote one line where a message reveals
# two, and read a skeptical question ("does this really have a lasting impact?") as liking. Up
# to three lines per message; shots for both cases. It raised recall on the dev snippets and
# tied retrieval there, but fell to 16.7% on the sample's full history (generic lines such as
# "Is open to new ideas"), so it is not the default (benchmarks/memory_quality.md).
PROFILE_SYSTEM_V4 = """You keep a profile of a chatbot's user. Read what the user wrote and list what it reveals about the user: preferences, habits, interests, routines, health conditions, background. Write at most three profile lines of at most 12 words each (for example "Enjoys homemade pizza nights"). Say what is implied, not only what is said: a text the user wrote and asks you to polish tells what they did and like; a skeptical or critical question about something suggests they are not keen on it. Keep the user's specific details: how often, how many, which kind, and whether they do it or avoid it. Only the user: not people they write to, for or about. Reply with an empty list if it reveals nothing about the user."""

PROFILE_SHOTS_V4: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Can you make this text to my sister sound nicer? 'Running late again, grabbing my "
        "leggings and zip-up after yoga, see you at brunch.'",
        ("Dresses for comfort in athleisure", "Does yoga"),
    ),
    ("Would Tuesday at 10 work for a quick call about the budget?", ()),
    (
        "Is there any real benefit to going to pilates only once in a while?",
        ("Does pilates only occasionally, not regularly",),
    ),
    (
        "Please polish this note for my colleague: 'Dana, I know you love jazz brunches, so I "
        "booked one for your birthday.'",
        (),
    ),
    (
        "Could you tidy up my blog post? 'Spent Sunday at the flea market again and came home "
        "with two more vinyl records. My shelf is already full, but the hunt is half the fun.'",
        ("Collects vinyl records", "Goes to flea markets on weekends"),
    ),
    (
        "Why do people rave about cruises when you're stuck on a crowded ship eating the same "
        "buffet every day?",
        ("Is not keen on cruise vacations or crowded buffets",),
    ),
    (
        "How does buying all my groceries at just one store affect the deals I get?",
        ("Shops at a single grocery store",),
    ),
    (
        "Why does my lower back ache after long days at my desk?",
        ("Has lower back pain from long desk work",),
    ),
)


class ProfilePrompt(NamedTuple):
    system: str
    shots: tuple[tuple[str, tuple[str, ...]], ...]
    max_lines: int
    """Lines the writer may give per message (1: the reply is one string, else a list)."""


PROMPTS = {
    "v3": ProfilePrompt(PROFILE_SYSTEM_V3, PROFILE_SHOTS_V3, 1),
    "v4": ProfilePrompt(PROFILE_SYSTEM_V4, PROFILE_SHOTS_V4, 3),
}
PROFILE_SYSTEM, PROFILE_SHOTS, _ = PROMPTS["v3"]

#: The shots' own lines: a reply equal to one of them was copied, not inferred.
PROFILE_EXAMPLES = frozenset(
    line for prompt in PROMPTS.values() for _, lines in prompt.shots for line in lines
)

NONE = "none"
#: The cap's keep score of a message's first, second and third line: the writer lists the most
#: telling thing first, so over the cap an old message's later lines go before first lines
#: (a whole point of score outweighs a third of the history's recency; cap.drop_weakest).
LINE_SCORES = (2.0, 1.5, 1.0)


def profile_messages(text: str, prompt: str = "v3") -> list[dict[str, str]]:
    """The writer's chat for one user message (same prefix every time: KV-cache reuse)."""
    p = PROMPTS[prompt]
    turns: list[dict[str, str]] = [{"role": "system", "content": p.system}]
    for said, lines in p.shots:
        one = lines[0] if lines else None
        turns.append({"role": "user", "content": said})
        turns.append(
            {"role": "assistant", "content": profile_reply(lines if p.max_lines > 1 else one)}
        )
    turns.append({"role": "user", "content": text.strip()})
    return turns


def profile_reply(lines: str | Sequence[str] | None) -> str:
    """The reply the writer is asked for (and trained on): ``{"profile": line}`` (v3: one line
    or ``none``) or ``{"profile": [lines]}`` (v4: a list, empty for nothing)."""
    if lines is None or isinstance(lines, str):
        return json.dumps({"profile": lines or NONE})
    return json.dumps({"profile": list(lines)})


PROFILE_MAX_CHARS = 100


def profile_schema(max_chars: int = PROFILE_MAX_CHARS, max_lines: int = 1) -> dict:
    """JSON schema of the reply: one string (v3) or a list of up to ``max_lines`` (v4)."""
    line = {"type": "string", "minLength": 1, "maxLength": max_chars}
    if max_lines > 1:
        line = {"type": "array", "items": line, "maxItems": max_lines}
    return {"type": "object", "properties": {"profile": line}, "required": ["profile"]}


# --- the strategy ---------------------------------------------------------------------------
_NONE_REPLIES = frozenset({"none", "nothing", "n/a", "no", "unknown", "null"})
MAX_WORDS = 20


def _clean_line(line: str, max_chars: int | None) -> str:
    line = cut_at_phrase(" ".join(line.split()), max_chars).strip(" .;,")
    if line.lower().strip("\"'") in _NONE_REPLIES or not line:
        return ""
    return line[0].upper() + line[1:]


def parse_profile(text: str, max_chars: int | None = None) -> list[str] | None:
    """The profile lines of a reply (``[]`` for "nothing about the user"), None when broken.
    A line that ran to the schema's ``max_chars`` is cut back to its last whole phrase; a single
    string (an older reply format) counts as one line."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    got = data.get("profile") if isinstance(data, dict) else None
    if isinstance(got, str):
        got = [got]
    if not isinstance(got, list) or not all(isinstance(x, str) for x in got):
        return None
    lines = [_clean_line(x, max_chars) for x in got]
    return list(dict.fromkeys(x for x in lines if x))


async def profile_update(
    agent: MemoryAgent, new: MemoryState, pieces: list[Piece], report: ChunkReport
) -> None:
    """One profile line per user message of the chunk (up to three with the v4 prompt), merged
    into the memory.

    The writer sees one message at a time (the user's own words, at most ``profile_tokens``
    tokens), never the memory, a later chunk or a query. A model error propagates (the update
    fails and keeps the previous memory); an unusable reply is asked again and, if it stays
    unusable, fails the update too, unless the model gives the very same reply every time (its
    settled answer): then that message is skipped with a warning (:meth:`MemoryAgent.ask`)."""
    cfg = agent.config
    lines_max = PROMPTS[cfg.profile_prompt].max_lines
    chat = "\n".join(p.content for p in pieces)
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
        # A text someone else wrote that the user pasted to have it polished ("an email I'm
        # writing for my friend Marco ... Best, Marco") is not the user's life: the writer,
        # told to read polished texts as the user's own, never sees it.
        pasted = written_by_others(p.content, chat)
        own = p.content.replace(pasted, " ") if pasted else p.content
        if not content_words(own):
            continue
        text = agent.model.truncate_to_tokens(own.strip(), cfg.profile_tokens)
        lines = await agent.ask(
            profile_messages(text, cfg.profile_prompt),  # type: ignore[arg-type]
            lambda reply: parse_profile(reply, PROFILE_MAX_CHARS),
            what=f"message {p.index}",
            report=report,
            settled=[],
            max_tokens=40 * lines_max + 8,
            temperature=0.0,
            json_schema=profile_schema(max_lines=lines_max),
        )
        for rank, line in enumerate(lines[:lines_max]):
            if line in PROFILE_EXAMPLES or len(line.split()) > MAX_WORDS:
                continue
            if cfg.privacy.clean(line)[1]:
                continue  # a secret must not come back through the writer
            await agent._merge_fact(
                new,
                line,
                [p.index],
                report,
                score=LINE_SCORES[rank],
                evidence=p.content.strip()[:300],
                said=p.content,
            )
