"""Defects of the memory path, each once reproduced on main: silent skips, the cap, forget."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from memory_fakes import echo_model, extract_reply, word

from personamem.memory import MemoryAgent, MemoryState, chunk_messages, prompts
from personamem.models import ScriptedModel
from personamem.models.base import Message
from personamem.store import Memory, OverCap

SENTENCES = [f"I enjoy {word(i)} {word(i + 100)} {word(i + 200)}." for i in range(16)]
LONG = " ".join(SENTENCES)
LAST = f"I enjoy {word(500)} {word(600)} {word(700)}."


def store(tmp_path: Path, chunk_tokens: int, **kw: object) -> Memory:
    return Memory(
        f"sqlite:///{tmp_path / 'm.db'}",
        echo_model(),
        chunk_tokens,
        5000,
        strategy="select",
        notes=False,
        **kw,
    )


@pytest.mark.parametrize(("first", "then"), [(40, 25), (25, 60), (40, 40)])
def test_changing_chunk_size_mid_message_skips_nothing(
    tmp_path: Path, first: int, then: int
) -> None:
    with store(tmp_path, first) as mem:
        mem.add([{"role": "user", "content": LONG}], user_id="u")
        info = mem.store.user("u")
        assert info is not None and info.cursor == 0 and info.cursor_part > 0  # inside LONG
    with store(tmp_path, then) as mem:
        mem.add([{"role": "user", "content": LAST}], user_id="u", update=False)
        mem.flush("u")
        text = mem.get("u").text
        assert mem.store.check() == []
    for sentence in SENTENCES:
        assert sentence.rstrip(".") in text, f"skipped: {sentence}"
    assert LAST.rstrip(".") in text


# --- the cap and "never mid-word" ----------------------------------------------------------------
def test_edit_over_the_cap_is_refused(tmp_path: Path) -> None:
    with Memory(f"sqlite:///{tmp_path / 'm.db'}", echo_model(), 200, 50) as mem:
        mem.add("I like tea.", user_id="u", update=False)
        mem.edit("u", "- Likes tea")
        long = "\n".join(f"- Likes {word(i)} and {word(i + 500)} very much" for i in range(100))
        with pytest.raises(OverCap, match="over the cap of 50"):
            mem.edit("u", long)
        assert mem.get("u").text == "- Likes tea"
        assert len(mem.history("u")) == 1


FACT = (
    "Restores old wooden sailboats at the lake near the family cabin every summer, together "
    "with two neighbours, and keeps a very detailed logbook of each trip's weather and coordinates"
)


def fact_model(fact: str) -> ScriptedModel:
    def reply(messages: list[Message]) -> str:
        return json.dumps({"facts": [{"fact": fact, "about": "user", "messages": [0]}]})

    return ScriptedModel(default=reply)


@pytest.mark.parametrize("cut", [160, 159])
def test_extract_never_stores_a_fact_cut_mid_word(cut: int) -> None:
    limit = prompts.extract_schema(6)["properties"]["facts"]["items"]["properties"]["fact"]
    assert limit["maxLength"] == 160
    fact = FACT[:cut]  # what a grammar-constrained reply holds when maxLength closed the string
    assert FACT[cut - 1] != " " and FACT[cut] != " "  # it ends mid-word
    model = fact_model(fact)
    agent = MemoryAgent(model, 500, 500, strategy="extract")
    chunk = chunk_messages([{"role": "user", "content": FACT}], model.count_tokens, 500)[0]
    state, _ = asyncio.run(agent.update(MemoryState(), chunk))
    (line,) = state.lines
    assert FACT.startswith(line.text)
    assert FACT[len(line.text)] in " ,", f"cut mid-word: {line.text!r}"


def test_compress_never_stores_a_note_cut_mid_word() -> None:
    long_note = ("Rides a vintage steel road bicycle to the office every weekday " * 4)[:200]
    assert long_note[-1] != " "

    def reply(messages: list[Message]) -> str:
        if messages[0]["content"] == prompts.COMPRESS_SYSTEM:
            return json.dumps({"notes": [long_note]})
        return "\n".join(f"- Likes {word(i)} {word(i + 300)} [msg 0]" for i in range(30))

    model = ScriptedModel(default=reply)
    agent = MemoryAgent(model, 500, 60, strategy="rewrite")
    chunk = chunk_messages([{"role": "user", "content": "I ride."}], model.count_tokens, 500)[0]
    state, report = asyncio.run(agent.update(MemoryState(), chunk))
    assert any("compressed" in w for w in report.warnings)
    (line,) = state.lines
    assert line.text != long_note, "stored as cut by maxLength"
    assert long_note.startswith(line.text) and long_note[len(line.text)] == " "


def test_redaction_after_the_cap_cannot_push_the_memory_over_it() -> None:
    # A card number is one token here and its redaction "[REDACTED card]" four: a memory that
    # fits before redaction does not after it.
    lines = [f"- Pays {word(i)} with card 4111111111111111 [msg 0]" for i in range(8)]
    model = ScriptedModel(default=lambda messages: "\n".join(lines))
    cap = model.count_tokens("\n".join(lines))
    agent = MemoryAgent(model, 500, cap, strategy="rewrite")
    chunk = chunk_messages([{"role": "user", "content": "I pay."}], model.count_tokens, 500)[0]
    state, report = asyncio.run(agent.update(MemoryState(), chunk))
    assert "4111111111111111" not in state.text and "[REDACTED" in state.text
    assert state.tokens == model.count_tokens(state.text) <= cap
    assert any("over the cap" in w for w in report.warnings)


# --- forget holds everywhere ------------------------------------------------------------------
def recording_model() -> tuple[ScriptedModel, list[str]]:
    """The echo extractor that also records every prompt it is given."""
    seen: list[str] = []

    def reply(messages: list[Message]) -> str:
        seen.append("\n".join(m["content"] for m in messages))
        if "Chat:" in messages[-1]["content"] or "forget" in messages[-1]["content"]:
            return extract_reply(messages)
        return "A"

    return ScriptedModel(default=reply), seen


def test_a_forgotten_preference_does_not_come_back_through_any_read_path(tmp_path: Path) -> None:
    model, prompts_seen = recording_model()
    with Memory(f"sqlite:///{tmp_path / 'm.db'}", model, 200, 500, strategy="extract") as mem:
        mem.add(
            [
                {"role": "user", "content": "I play jazz piano at a small bar. I also hike."},
                {"role": "assistant", "content": "Jazz piano and hiking, lovely."},
                {"role": "user", "content": "I love hiking in the Alps every summer."},
            ],
            user_id="u",
        )
        mem.flush("u")
        assert "jazz piano" in mem.get("u").text.lower()
        mem.forget("u", "that I play jazz piano")
        prompts_seen.clear()
        context = mem.context("u")
        mem.answer("u", "What music should I play tonight?", options=["Jazz", "Rock"])
        reads = {
            "memory": mem.get("u").text,
            "context": context,
            "sources": json.dumps([s.model_dump() for s in mem.sources("u")]),
            "history": json.dumps(
                [v.model_dump(exclude={"note"}) for v in mem.history("u")], default=str
            ),
            "export": json.dumps(_without(mem.export("u"), {"forgotten", "note"}), default=str),
            "answer prompts": "\n".join(p for p in prompts_seen if "What music" in p),
        }
    for where, text in reads.items():
        assert "jazz piano" not in text.lower(), f"the forgotten preference is back in {where}"
    assert "hik" in reads["export"].lower()  # the rest is still there
    assert "[forgotten]" in reads["export"]


def _without(obj: object, keys: set[str]) -> object:
    if isinstance(obj, dict):
        return {k: _without(v, keys) for k, v in obj.items() if k not in keys}
    if isinstance(obj, list):
        return [_without(x, keys) for x in obj]
    return obj
