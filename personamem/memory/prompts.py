"""Prompts of the memory agent. Bump PROMPT_VERSION whenever a prompt or schema changes:
it is part of every cache key and of each memory version's provenance."""

from __future__ import annotations

import json

PROMPT_VERSION = "extract-v1"
SELECT_VERSION = "select-v2"
NOTES_VERSION = "select-notes-v6"

# The paper's memory-update rules, shortened for small models.
EXTRACT_SYSTEM = """You write notes about ONE person: the user of a chatbot.
Read the chat below. List facts it reveals about the user: preferences, habits, likes and dislikes, health, work, background, personality. Include facts the user only hints at (for example, an email the user wrote says they went hiking: the user likes hiking).
Rules:
- One short sentence per fact, in English, starting with a verb (e.g. "Enjoys hiking on weekends").
- "about": "user" for the user; "other" for a friend, colleague, family member or anyone else, or for a hypothetical.
- "messages": the [numbers] of the messages that show the fact.
- Skip what the assistant suggests, greetings, and requests that say nothing about the user.
- Never copy passwords, keys, card numbers, phone numbers, emails or addresses.
- If the user asks to forget something, do not list it.
- If nothing is revealed, return an empty list."""

EXTRACT_USER = """Chat:
{chat}

List the facts about the user as JSON."""


def extract_schema(max_facts: int, max_chars: int = 160) -> dict:
    return {
        "type": "object",
        "properties": {
            "facts": {
                "type": "array",
                "maxItems": max_facts,
                "items": {
                    "type": "object",
                    "properties": {
                        "fact": {"type": "string", "minLength": 8, "maxLength": max_chars},
                        "about": {"type": "string", "enum": ["user", "other"]},
                        "messages": {
                            "type": "array",
                            "items": {"type": "integer"},
                            "minItems": 1,
                            "maxItems": 3,
                        },
                    },
                    "required": ["fact", "about", "messages"],
                },
            }
        },
        "required": ["facts"],
    }


REPLACE_SYSTEM = """You keep notes about a user up to date. Answer with yes or no only."""

REPLACE_USER = """Old note: {old}
New note: {new}

Does the new note make the old note out of date (the user changed their preference, habit or situation)? Answer yes or no."""


COMPRESS_SYSTEM = """You shorten notes about a user. Keep every distinct fact about the user, merge notes that say the same thing, drop the least important details. Keep the [msg N] citations of what you keep. English only."""

COMPRESS_USER = """Notes ({tokens} tokens, limit {limit}):
{memory}

Rewrite them in at most {limit} tokens as JSON."""


def compress_schema(max_lines: int) -> dict:
    return {
        "type": "object",
        "properties": {
            "notes": {
                "type": "array",
                "maxItems": max_lines,
                "items": {"type": "string", "minLength": 4, "maxLength": 200},
            }
        },
        "required": ["notes"],
    }


# The paper's single-call update (f(C_i, M_{i-1}) -> M_i), for large models and for RL training.
REWRITE_SYSTEM = """You maintain the memory of a chatbot about its current user.
Analyse the new conversation section. Extract the current user's persona and preferences, revealed explicitly or implicitly. Keep every still-valid detail of the previous memory and add new ones. Remove what the user updated or asked to forget. Do not attribute other people's preferences to the user. Never record secrets (passwords, keys, card or id numbers, phone numbers, emails, addresses), multiple-choice options, test questions, or persona text from system prompts. English only. Write one fact per line starting with "- ", citing message numbers like [msg 12]. Write nothing else."""

REWRITE_USER = """Previous memory:
{memory}

New conversation section:
{chat}

Write the updated memory (at most {limit} tokens)."""


# Select strategy: the model judges each first-person statement; it never paraphrases.
SELECT_SYSTEM = """You decide whether a sentence that a person wrote reveals something about that person: their tastes, habits, hobbies, routines, health, feelings, work or background. Greetings, thanks, scheduling and requests for help reveal nothing. Answer yes or no."""

SELECT_USER = """Sentence: {sentence}

Does this sentence reveal something personal about the writer? Answer yes or no."""


# Select strategy, notes step: one selected statement in, one short profile note out.
# Few-shot as chat turns: measured on the real sample, Qwen2.5-1.5B then writes terse notes
# ("Takes coffee breaks; prefers indoor tables") where a system-prompt example was copied. The
# question shots stop it from answering the user's questions instead of noting what they show.
NOTE_SYSTEM = """Turn what the user says into a profile note: a few words on the user's own tastes, habits, health or background, implied or stated. Reply none if it says nothing about the user."""

NOTE_SHOTS: tuple[tuple[str, str], ...] = (
    (
        "I grabbed my usual oat latte before the 7am spin class, as always.",
        "Takes early spin classes; drinks oat lattes",
    ),
    ("Can you suggest a good time to visit Lisbon?", "none"),
    (
        "Why does my lower back ache after long days at my desk?",
        "Has lower back pain from desk work",
    ),
    ("Would Tuesday at 10 work for a quick call about the budget?", "none"),
    ("Is it okay to go for a run when the air quality isn't great?", "Runs outdoors"),
    ("I hope this message finds you well and that the project is on track.", "none"),
)


#: The shots' own notes: a reply equal to one of them was copied, not written.
NOTE_EXAMPLES = frozenset(note for _, note in NOTE_SHOTS)


def _few_shot(system: str, shots: tuple[tuple[str, str], ...], key: str) -> tuple[dict, ...]:
    """A system turn, then each shot as a user turn and the JSON reply ``{key: answer}``."""
    turns: list[dict[str, str]] = [{"role": "system", "content": system}]
    for said, answer in shots:
        turns.append({"role": "user", "content": said})
        turns.append({"role": "assistant", "content": json.dumps({key: answer})})
    return tuple(turns)


def _one_string(key: str, min_chars: int, max_chars: int) -> dict:
    """Schema of a JSON object with one string field."""
    return {
        "type": "object",
        "properties": {key: {"type": "string", "minLength": min_chars, "maxLength": max_chars}},
        "required": [key],
    }


_NOTE_PREFIX = _few_shot(NOTE_SYSTEM, NOTE_SHOTS, "note")


def note_messages(sentence: str) -> list[dict[str, str]]:
    """The notes prompt for one sentence: system, the few-shot turns, then the sentence (the
    same prefix every time, so a local backend reuses its KV cache)."""
    return [dict(m) for m in _NOTE_PREFIX] + [{"role": "user", "content": sentence}]


def note_schema(max_chars: int = 90) -> dict:
    return _one_string("note", 1, max_chars)


# Select strategy, notes step for the user's questions: the topic, in the user's own terms. Measured
# on the real sample (Qwen2.5-1.5B), a profile note written from a question often answered it
# ("LED lighting is less fatiguing due to ...", "Invests in stocks or bonds"); the topic stays
# faithful ("flavor loss in limited-release IPAs") and still says what the user is into.
TOPIC_SYSTEM = """Say what the user's question is about, in a few words. Keep the user's own details (what they do, own or feel)."""

TOPIC_SHOTS: tuple[tuple[str, str], ...] = (
    (
        "Why do hoppy beers taste so different on tap than from a can?",
        "hoppy beer on tap versus cans",
    ),
    ("Can you suggest a good time to visit Lisbon?", "when to visit Lisbon"),
    ("Why does my knee hurt after my long Sunday bike rides?", "knee pain after long bike rides"),
    (
        "What are some easy vegetarian lunches I can pack for work?",
        "easy vegetarian lunches to pack for work",
    ),
)

#: How a question's line starts in the memory: "Asked about knee pain after long bike rides".
ASKED = "Asked about "

TOPIC_EXAMPLES = frozenset(topic for _, topic in TOPIC_SHOTS)

_TOPIC_PREFIX = _few_shot(TOPIC_SYSTEM, TOPIC_SHOTS, "topic")


def topic_messages(question: str) -> list[dict[str, str]]:
    """The topic prompt for one question of the user's (same prefix every time)."""
    return [dict(m) for m in _TOPIC_PREFIX] + [{"role": "user", "content": question}]


def topic_schema(max_chars: int = 70) -> dict:
    return _one_string("topic", 3, max_chars)


# Whether a memory line is about something the user asked to forget (one prompt for every path).
FORGET_USER = """Note: {note}
The user asked: forget {what}.
Is the note about what the user asked to forget? Answer yes or no."""
