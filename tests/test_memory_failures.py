"""A failing model never degrades the memory silently, whatever the strategy: the update raises,
the previous version stays and the messages stay pending."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from memory_fakes import extract_reply

from personamem.memory import MemoryAgent, MemoryState, MemoryUpdateError, chunk_messages
from personamem.memory.profile import PROFILE_SYSTEM, profile_reply
from personamem.models import ModelError, ScriptedModel
from personamem.models.base import Generation, Message
from personamem.store import Memory, UpdateFailed

STRATEGIES = [("select", True), ("extract", True), ("rewrite", True), ("profile", True)]


def switchable() -> tuple[ScriptedModel, dict[str, bool]]:
    """A model that answers like the echo extractor (notes: a short JSON note) until
    ``state["fail"]`` is set, then raises on every call."""
    state = {"fail": False}

    def reply(messages: list[Message]) -> str | Exception:
        if state["fail"]:
            return ModelError("backend down")
        prompt = messages[-1]["content"]
        if messages[0]["content"] == PROFILE_SYSTEM:
            return profile_reply("Hikes in the Alps")
        if "Chat:" in prompt or "The user asked: forget" in prompt:
            return extract_reply(messages)
        if messages[0]["content"].startswith("Say what"):
            return '{"topic": "stuff"}'
        if "conversation section" in prompt or "memory" in messages[0]["content"].lower():
            return "- Likes hiking in the Alps [msg 0]"
        return '{"note": "Hikes in the Alps"}'

    return ScriptedModel(default=reply), state


HISTORY: list[Message] = [
    {"role": "user", "content": "I love hiking in the Alps every summer with friends."},
    {"role": "assistant", "content": "Great."},
    {"role": "user", "content": "Why do my knees hurt after long descents on gravel?"},
]


@pytest.mark.parametrize(("strategy", "notes"), STRATEGIES)
def test_update_raises_when_the_model_fails(strategy: str, notes: bool) -> None:
    model, state = switchable()
    state["fail"] = True
    agent = MemoryAgent(model, 200, 500, strategy=strategy, notes=notes)
    chunk = chunk_messages(HISTORY, model.count_tokens, 200)[0]
    before = MemoryState()
    with pytest.raises(MemoryUpdateError, match="backend down"):
        asyncio.run(agent.update(before, chunk))
    assert before == MemoryState()


@pytest.mark.parametrize(("strategy", "notes"), STRATEGIES)
def test_store_keeps_version_and_pending_when_the_model_fails(
    tmp_path: Path, strategy: str, notes: bool
) -> None:
    model, state = switchable()
    with Memory(
        f"sqlite:///{tmp_path / 'm.db'}", model, 200, 500, strategy=strategy, notes=notes
    ) as mem:
        mem.add(HISTORY, user_id="u", update=False)
        mem.flush("u")
        good = mem.get("u")
        assert good.version == 1 and good.pending_messages == 0
        state["fail"] = True
        new = [
            {"role": "user", "content": f"I switched to trail running in the Dolomites, day {i}."}
            for i in range(40)
        ]
        with pytest.raises(UpdateFailed) as failed:  # more than a chunk: add updates, and fails
            mem.add(new, user_id="u")
        assert len(failed.value.result.stored) == 40
        with pytest.raises(MemoryUpdateError):
            mem.flush("u")
        after = mem.get("u")
        assert after.version == good.version and after.text == good.text
        assert after.pending_messages == 40
        assert [v.version for v in mem.history("u")] == [1]
        state["fail"] = False
        mem.flush("u")
        assert mem.get("u").pending_messages == 0
        assert mem.store.check() == []


def test_add_says_its_messages_are_stored_whatever_breaks_the_update(tmp_path: Path) -> None:
    """A backend that breaks the Model contract (a raw ConnectionResetError, not ModelError):
    ``add`` still raises UpdateFailed with what it stored, so a caller never adds them again."""
    model, state = switchable()
    raw = {"on": True}
    real = model.generate

    async def generate(messages: list[Message], **kw: object) -> Generation:
        if raw["on"]:
            raise ConnectionResetError("connection reset by peer")
        return await real(messages, **kw)  # type: ignore[arg-type]

    model.generate = generate  # type: ignore[method-assign]
    new = [
        {"role": "user", "content": f"I hike in the Alps, day {i}.", "id": f"m{i}"}
        for i in range(40)
    ]
    with Memory(f"sqlite:///{tmp_path / 'm.db'}", model, 200, 500) as mem:
        with pytest.raises(UpdateFailed, match="ConnectionResetError") as failed:
            mem.add(new, user_id="u")
        assert failed.value.result.stored == list(range(40))
        assert isinstance(failed.value.__cause__, ConnectionResetError)
        assert mem.get("u").pending_messages == 40 and mem.get("u").version == 0
        raw["on"] = False
        mem.flush("u")
        assert mem.get("u").pending_messages == 0
        assert mem.store.check() == []
