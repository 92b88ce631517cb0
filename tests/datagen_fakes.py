"""A deterministic fake writer/judge for the datagen tests: it reads each prompt (recognised by
its system prompt) and replies with JSON shaped like a real model's, so the pipeline's control
flow can be tested without a model. It is never a model: tests assert on control flow only."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from personamem.datagen import prompts
from personamem.models import ScriptedModel
from personamem.models.base import Message

HOBBIES = [
    "sourdough baking",
    "trail running",
    "ballet classes",
    "chess puzzles",
    "jazz vinyl",
    "kayak trips",
    "bonsai pruning",
    "sci-fi audiobooks",
    "street photography",
    "pottery wheels",
    "salsa dancing",
    "birdwatching walks",
    "board game nights",
    "mechanical keyboards",
    "thrift shopping",
    "rock climbing",
    "origami folding",
    "podcast editing",
    "spicy ramen",
    "vintage cameras",
    "gardening herbs",
    "karaoke evenings",
    "crossword solving",
    "film noir",
    "yoga mornings",
    "craft beer",
    "lego sets",
    "opera tickets",
    "surfing lessons",
    "tea tasting",
]


def persona_json(seed_line: str) -> dict:
    return {
        "name": "Alex Morgan",
        "age": 34,
        "gender": "Woman",
        "sexual_orientation": "Heterosexual",
        "race": "White",
        "nationality": "Canadian",
        "location": {
            "city": "Halifax",
            "state": "Nova Scotia",
            "country": "Canada",
            "urbanicity": "Urban",
        },
        "personality": {
            "traits": ["curious", "calm"],
            "values": ["honesty"],
            "interests": ["music", "hiking"],
        },
        "education": {
            "highest_degree": "BSc",
            "field": "Biology",
            "university": "Dalhousie",
            "graduation_year": 2012,
        },
        "employment": {
            "job_title": "Lab technician",
            "company": "Maritime Labs",
            "industry": "Health",
            "years_of_experience": 9,
            "work_location": "On-site",
        },
        "technology_profile": {
            "comfort_with_technology": "High",
            "devices_used": ["laptop"],
            "platforms_engaged": ["Reddit"],
        },
        "speaking_style": {
            "tone": "warm",
            "formality": "casual",
            "vocabulary": "plain",
            "sentence_structure": "short",
        },
        "other_demographics": {
            "marital_status": "Single",
            "living_arrangement": "Alone",
            "income_bracket": "Middle",
            "religion": "None",
            "political_views": "Moderate",
            "languages_spoken": ["English"],
        },
        "health_and_therapy_background": {
            "mental_health": "Mild anxiety",
            "physical_health": "Good",
        },
    }


def _user(messages: list[Message]) -> str:
    return messages[1]["content"] if len(messages) > 1 else ""


def reply(messages: list[Message]) -> str:
    system = messages[0]["content"]
    user = _user(messages)
    if system == prompts.PERSONA_SYSTEM:
        return json.dumps(persona_json(user))
    if system == prompts.PREFS_SYSTEM:
        n = int(re.search(r"List (\d+) ", user).group(1))
        k = next(i for i, t in enumerate(prompts.KIND_TEXT.values()) if t in user)
        return json.dumps(
            {"preferences": [f"Enjoys {HOBBIES[(k * 5 + i) % len(HOBBIES)]}" for i in range(n)]}
        )
    if system == prompts.CONFLICT_SYSTEM:
        return json.dumps({"conflicts": []})
    if system == prompts.STEREO_SYSTEM:
        verdict = "atypical" if "ballet" in user else "typical"
        return json.dumps({"inferred_persona": "someone", "verdict": verdict})
    if system == prompts.UPDATE_SYSTEM:
        old = re.search(r'used to have this preference: "([^"]+)"', user).group(1)
        return json.dumps({"updated": f"No longer {old.lower()}"})
    if system == prompts.CONVO_SYSTEM:
        m = re.search(r"so the conversation has (\d+)", user) or re.search(
            r"conversation of (\d+) messages", user
        )
        n = int(m.group(1))
        pref = re.search(r'Hidden preference to reveal IMPLICITLY: "([^"]+)"', user).group(1)
        sens = re.search(r"contains their [^:]+: (.+?) \(copy it exactly\)", user)
        msgs = []
        for i in range(n):
            role = "user" if i % 2 == 0 else "assistant"
            text = f"Message {i} hinting at {pref.lower()} through small details."
            if i == 0 and sens:
                text += f" Pasted: {sens.group(1)}"
            msgs.append({"role": role, "content": text})
        if "Please forget that I" in user:
            msgs[-1] = {"role": "user", "content": f"Please forget that I {pref.lower()}."}
        return json.dumps({"topic": "Hobbies", "messages": msgs})
    if system == prompts.FILLER_SYSTEM:
        return json.dumps(
            {
                "messages": [
                    {"role": r, "content": f"Filler {r} text about loops and sums number {i}."}
                    for i, r in enumerate(["user", "assistant", "user", "assistant"])
                ]
            }
        )
    if system == prompts.QA_SYSTEM:
        m = re.search(
            r'CURRENT preference \(learned earlier from their chat history\): "([^"]+)"', user
        )
        if m:
            p = m.group(1).lower()
            return json.dumps(
                {
                    "user_query": "What should I do this weekend to relax?",
                    "topic_query": "Leisure",
                    "correct_answer": f"Since you {p}, plan a relaxed day around it with friends.",
                    "stereotype_trap": "Since people like you love brunch, book a table at a busy cafe downtown.",
                    "wrong_preference": "Since you enjoy long museum visits, spend the afternoon in the gallery.",
                    "generic_answer": "Take some time off, rest well, and do something you find restful.",
                }
            )
        p = re.search(r'must NOT be assumed for this user: "([^"]+)"', user).group(1).lower()
        return json.dumps(
            {
                "user_query": "What should I do this weekend to relax?",
                "topic_query": "Leisure",
                "neutral_answer": "Take some time off, rest well, and do something you find restful.",
                "uses_that_preference": f"Since you {p}, plan a relaxed day around it with friends.",
                "stereotype_trap": "Since people like you love brunch, book a table at a busy cafe downtown.",
                "other_preference": "Since you enjoy long museum visits, spend the afternoon in the gallery.",
            }
        )
    if system == prompts.LEAK_SYSTEM:
        return json.dumps({"answer": "A"})
    if system == prompts.PICK_SYSTEM:
        pref = re.search(r'Preference: "([^"]+)"', user) or re.search(
            r"user ([^\n?]+?)(?:\.\n|\?)", user
        )
        key = pref.group(1).lower().removeprefix("enjoys ").strip()
        opts = re.findall(r"^([A-D])\. (.*)$", user, re.M)
        hit = next((x for x, o in opts if key in o.lower()), opts[-1][0])
        return json.dumps({"answer": hit})
    if system == prompts.FORMAT_SYSTEM:
        return json.dumps({"answer": "YES"})
    raise AssertionError(f"unexpected prompt: {system[:80]}")


class Kill(BaseException):
    """Stands for the process being killed mid-run (not an Exception: nothing catches it)."""


def fake_model(
    wrap: Callable[[list[Message], str], str] | None = None, kill_after: int | None = None
) -> ScriptedModel:
    """The fake as a ScriptedModel; ``wrap`` may corrupt replies, ``kill_after`` stops the run."""
    calls = {"n": 0}

    def f(messages: list[Message]) -> str:
        calls["n"] += 1
        if kill_after is not None and calls["n"] > kill_after:
            raise Kill()
        text = reply(messages)
        return wrap(messages, text) if wrap else text

    return ScriptedModel(default=f)
