"""The select strategy's notes step: each selected statement becomes a short profile note."""

from __future__ import annotations

import json

import pytest

from personamem.memory import MemoryAgent, MemoryState, prompts
from personamem.models import Message, ModelError, ScriptedModel


def history(*user_turns: str) -> list[Message]:
    msgs: list[Message] = [{"role": "system", "content": "You are a helpful assistant."}]
    for t in user_turns:
        msgs.append({"role": "user", "content": t})
        msgs.append({"role": "assistant", "content": "Sure."})
    return msgs


def notes_model(notes: dict[str, str | Exception], yes_no: str = "no") -> ScriptedModel:
    """Replies to note prompts from ``notes`` (keyed by a word of the statement); yes/no
    questions get ``yes_no``."""

    def reply(msgs: list[Message]) -> str:
        if msgs[0]["content"] != prompts.NOTE_SYSTEM:
            return yes_no
        said = msgs[-1]["content"]
        for key, note in notes.items():
            if key in said:
                if isinstance(note, Exception):
                    raise note
                return note if note.startswith(("{", "<")) else json.dumps({"note": note})
        return json.dumps({"note": "none"})

    return ScriptedModel(default=reply)


def agent_for(model: ScriptedModel, **kw) -> MemoryAgent:
    agent = MemoryAgent(model, chunk_tokens=2000, memory_tokens=2000, **kw)
    assert agent.config.strategy == "select" and agent.config.notes  # the defaults
    return agent


async def test_statements_become_notes_that_keep_the_users_words_and_citation():
    msgs = history(
        "I bake sourdough bread every Sunday morning for my neighbours.",  # 1
        "I was back from my morning walk, which explains the leggings and zip-up jacket.",  # 3
    )
    model = notes_model(
        {"sourdough": "Bakes sourdough bread on Sundays", "leggings": "Wears leggings on walks."}
    )
    result = await agent_for(model).build(msgs)
    assert [(ln.text, ln.sources) for ln in result.state.lines] == [
        ("Bakes sourdough bread on Sundays", [1]),
        ("Wears leggings on walks", [3]),
    ]
    assert result.state.lines[0].evidence == msgs[1]["content"]
    assert result.memory.splitlines() == [
        "- Bakes sourdough bread on Sundays [msg 1]",
        "- Wears leggings on walks [msg 3]",
    ]
    assert result.prompt_version == prompts.NOTES_VERSION != prompts.SELECT_VERSION
    # Each note prompt holds one statement of the user's and nothing else of the history.
    note_prompts = [c for c in model.calls if c[0]["content"] == prompts.NOTE_SYSTEM]
    assert [c[-1]["content"] for c in note_prompts] == [msgs[1]["content"], msgs[3]["content"]]


async def test_a_statement_the_model_calls_empty_is_left_out():
    msgs = history("I hope my week goes well, I have lots of meetings.", "I swim in the lake every summer.")
    model = notes_model({"meetings": "none", "swim": "Swims in summer"})
    result = await agent_for(model).build(msgs)
    assert [ln.text for ln in result.state.lines] == ["Swims in summer"]


@pytest.mark.parametrize(
    "bad",
    [
        "{not json",  # broken JSON
        '{"other": "x"}',  # wrong shape
        ModelError("timeout"),  # the call failed
        prompts.NOTE_SHOTS[0][1],  # copied the prompt's example
        "Collects vintage stamps",  # shares no word with the statement: made up
        "Always cycles to the office, even when it rains, and likes cycling",  # not shorter
    ],
)
async def test_an_unusable_note_keeps_the_statement_verbatim(bad):
    msgs = history("I always cycle to the office, even when it rains.")
    result = await agent_for(notes_model({"cycle": bad})).build(msgs)
    assert [(ln.text, ln.evidence) for ln in result.state.lines] == [
        ("I always cycle to the office, even when it rains.", None)
    ]


async def test_a_note_cannot_bring_back_a_secret():
    msgs = history("My card is 4111 1111 1111 1111 and I always pay by card at the cafe.")
    # A model that "remembers" the number the redaction removed from its prompt.
    model = notes_model({"cafe": "Pays at the cafe with card 4111 1111 1111 1111"})
    result = await agent_for(model).build(msgs)
    assert "4111" not in result.memory
    assert all("4111" not in m["content"] for c in model.calls for m in c)
    assert result.state.lines and "[REDACTED" in result.state.lines[0].text


async def test_notes_of_the_same_fact_merge_into_one_line():
    msgs = history("I bake sourdough bread every Sunday.", "Sunday again: I bake sourdough bread.")
    model = notes_model({"sourdough": "Bakes sourdough bread on Sundays"})
    result = await agent_for(model).build(msgs)
    assert [(ln.text, ln.sources) for ln in result.state.lines] == [
        ("Bakes sourdough bread on Sundays", [1, 3])
    ]


async def test_a_forgotten_topic_stays_out_of_notes():
    msgs = history(
        "I bake sourdough bread every Sunday.",
        "Please forget that I bake sourdough bread.",
        "I bake sourdough bread with rye flour now.",
    )
    model = notes_model({"bake sourdough bread every": "Bakes sourdough bread", "rye": "Bakes rye sourdough bread"})
    result = await agent_for(model).build(msgs)
    assert "sourdough" not in result.memory.lower()
    assert result.state.forgotten


async def test_notes_off_keeps_statements_and_asks_nothing():
    msgs = history("I bake sourdough bread every Sunday morning for my neighbours.")
    model = notes_model({"sourdough": "Bakes sourdough bread"})
    result = await MemoryAgent(model, 2000, 2000, notes=False).build(msgs)
    assert [ln.text for ln in result.state.lines] == [msgs[1]["content"]]
    assert model.calls == []
    assert MemoryState.from_text(result.memory).lines[0].text == msgs[1]["content"]
