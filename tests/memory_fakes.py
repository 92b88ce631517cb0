"""Scripted models for control-flow tests of the memory store (never a stand-in for quality).

``echo_model`` plays the extractor deterministically: every user message in the prompt becomes
one fact citing it (its first eight words), a message containing "FRIEND:" yields a fact about
someone else; "is this note what the user asked to forget?" is answered "yes" when they share a
content word, every other yes/no question "no". ``slow`` adds a delay per call, ``fail``
makes calls raise, ``signal_file`` is touched when a call starts (for kill tests).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from personamem.memory.merge import content_words
from personamem.models import ModelError, ScriptedModel
from personamem.models.base import Message

_LINE = re.compile(r"^\[(\d+)\] (user|assistant)(?: \(part \d+/\d+\))?: (.*)$", re.M)


def extract_reply(messages: list[Message]) -> str:
    prompt = messages[-1]["content"]
    if "The user asked: forget" in prompt:  # is this note what the user asked to forget?
        note = prompt.split("\n")[0].removeprefix("Note: ")
        what = prompt.split("The user asked: forget", 1)[1].split("\n")[0]
        return "yes" if content_words(note) & content_words(what) else "no"
    if "Chat:" not in prompt:
        return "no"
    facts = []
    for m in _LINE.finditer(prompt):
        idx, role, text = int(m.group(1)), m.group(2), m.group(3)
        if role != "user":
            continue
        words = re.findall(r"[A-Za-z][A-Za-z'\-]+", text)[:8]
        if len(words) < 2:
            continue
        about = "other" if "FRIEND:" in text else "user"
        facts.append({"fact": " ".join(words), "about": about, "messages": [idx]})
    return json.dumps({"facts": facts[:6]})


def echo_model(
    *, slow: float = 0.0, fail: bool = False, signal_file: str | Path | None = None
) -> ScriptedModel:
    def reply(messages: list[Message]) -> str | Exception:
        if signal_file is not None:
            Path(signal_file).write_text("started")
        if slow:
            time.sleep(slow)
        if fail:
            return ModelError("scripted failure")
        return extract_reply(messages)

    return ScriptedModel(default=reply)


def word(i: int) -> str:
    """A distinct alphabetic token per integer (so echoed facts never overlap)."""
    letters = ""
    i += 26 * 27
    while i:
        i, r = divmod(i, 26)
        letters = chr(97 + r) + letters
    return "zq" + letters


def chat(n: int, start: int = 0, *, prefix: str = "m") -> list[dict[str, str]]:
    """``n`` user/assistant messages with ids; each user turn states one distinct fact."""
    out = []
    for i in range(start, start + n):
        if i % 2 == 0:
            content = f"I enjoy {word(i)} with {word(i + 1000)}"
            out.append({"role": "user", "content": content, "id": f"{prefix}{i}"})
        else:
            out.append(
                {"role": "assistant", "content": "That sounds lovely.", "id": f"{prefix}{i}"}
            )
    return out
