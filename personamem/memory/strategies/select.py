"""``select`` (default, built for small local models): the user's own first-person statements and
questions are candidates (deterministic, :mod:`personamem.memory.select`); with ``notes`` the
model turns each statement into a short profile note and each question into what the user asked
about, one at a time under a JSON schema. A note that is not about the user, copies an example
or shares no content word with its statement is rejected and the statement kept verbatim; an
unusable topic drops the question. A model *error* is not an unusable reply: it propagates, so
the update fails and the previous memory stays."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from ...models.base import Message
from .. import prompts
from ..chunking import Piece
from ..merge import content_words, cut_at_phrase, forget_request
from ..select import candidates, is_question, reads_as_profile_note, signal, split_sentences
from ..state import MemoryState

if TYPE_CHECKING:
    from ..agent import ChunkReport, MemoryAgent

# A question that means nothing on its own: a piece of a split sentence, or a short follow-up
# about something said before ("... behind that?").
_FRAGMENT = re.compile(r"^[a-z]|^(?:\S+\s+){0,7}\S*\s+(?:[Tt]hat|this|it|them|those|there)\W*$")


async def update(
    agent: MemoryAgent,
    new: MemoryState,
    previous: MemoryState,
    pieces: list[Piece],
    report: ChunkReport,
) -> None:
    config = agent.config
    for p in pieces:
        if p.role != "user":
            continue
        asked = [forget_request(p.content)] + [
            forget_request(x) for x in split_sentences(p.content)
        ]
        for what in dict.fromkeys(w for w in asked if w):
            report.removed += await agent._forget(new, what)
        for sentence in candidates(p.content):
            if forget_request(sentence) or await agent._is_forgotten(new, sentence):
                continue
            if config.judge_statements:
                question = prompts.SELECT_USER.format(sentence=sentence)
                score = await agent._p_yes(question, prompts.SELECT_SYSTEM)
                if score <= config.select_threshold:
                    continue
            else:
                score = signal(sentence)
            text, evidence = sentence, None
            if config.notes and is_question(sentence):
                topic = await _topic(agent, sentence)
                if topic is None:  # a question is no fact to keep in the user's words
                    continue
                text, evidence = topic, sentence
            elif config.notes:
                note = await _note(agent, sentence)
                if note == "":  # the model says the statement reveals nothing about the user
                    continue
                if note is not None:
                    text, evidence = note, sentence
            await agent._merge_fact(
                new, text, [p.index], report, score=round(score, 4), evidence=evidence
            )


async def _short_reply(
    agent: MemoryAgent, msgs: list[Message], schema: dict, key: str, max_tokens: int
) -> str | None:
    """The one string field of a schema-constrained reply, whitespace collapsed and, when it
    ran to the schema's length limit, cut back to its last whole phrase; None when the reply is
    broken or nothing is left. A model error (:class:`ModelError`) propagates."""
    g = await agent.model.generate(msgs, max_tokens=max_tokens, temperature=0.0, json_schema=schema)
    try:
        data = json.loads(g.text)
    except json.JSONDecodeError:
        return None
    text = data.get(key) if isinstance(data, dict) else None
    if not isinstance(text, str):
        return None
    text = cut_at_phrase(" ".join(text.split()), schema["properties"][key].get("maxLength"))
    return text.strip(" .;,?") or None


def _faithful(agent: MemoryAgent, text: str, said: str, examples: frozenset[str]) -> bool:
    """Shorter than what the user said, about it (a shared content word), not a prompt
    example, and free of secrets (the input was redacted; one must not come back)."""
    return (
        text not in examples
        and bool(content_words(text) & content_words(said))
        and len(text) < len(said)
        and not agent.config.privacy.clean(text)[1]
    )


async def _note(agent: MemoryAgent, sentence: str) -> str | None:
    """A short profile note for one statement of the user's: ``""`` when the model says it
    reveals nothing, None when its reply is unusable (the caller keeps the statement)."""
    msgs: list[Message] = prompts.note_messages(sentence)  # type: ignore[assignment]
    note = await _short_reply(agent, msgs, prompts.note_schema(), "note", 48)
    if note is None:
        return None
    if note.lower() in ("none", "nothing", "n/a", "no"):
        return ""
    if not _faithful(agent, note, sentence, prompts.NOTE_EXAMPLES):
        return None
    if not reads_as_profile_note(note):
        return None  # "Time zone differences", "Cloud computing is ...": not about the user
    return note[0].upper() + note[1:]


async def _topic(agent: MemoryAgent, question: str) -> str | None:
    """ "Asked about <topic>" for one question of the user's, or None when the reply is
    unusable (broken, copied from the prompt, or not about what the user asked)."""
    if _FRAGMENT.search(question):
        return None  # "on Tuesday or Wednesday work for you?", "Is there a theory behind that?"
    msgs: list[Message] = prompts.topic_messages(question)  # type: ignore[assignment]
    topic = await _short_reply(agent, msgs, prompts.topic_schema(), "topic", 40)
    if topic is None:
        return None
    if topic.lower().startswith(prompts.ASKED.lower()):
        topic = topic[len(prompts.ASKED) :]
    if not _faithful(agent, topic, question, prompts.TOPIC_EXAMPLES):
        return None
    return prompts.ASKED + topic
