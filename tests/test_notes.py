"""The select strategy's notes step: each selected statement becomes a short profile note."""

from __future__ import annotations

import json

import pytest

from personamem.memory import MemoryAgent, MemoryState, prompts
from personamem.models import Message, ScriptedModel


def history(*user_turns: str) -> list[Message]:
    msgs: list[Message] = [{"role": "system", "content": "You are a helpful assistant."}]
    for t in user_turns:
        msgs.append({"role": "user", "content": t})
        msgs.append({"role": "assistant", "content": "Sure."})
    return msgs


def notes_model(
    notes: dict[str, str | Exception],
    yes_no: str = "no",
    topics: dict[str, str | Exception] | None = None,
) -> ScriptedModel:
    """Replies to note prompts from ``notes`` and to topic prompts from ``topics`` (each keyed
    by a word of what the user said); yes/no questions get ``yes_no``."""

    def reply(msgs: list[Message]) -> str:
        system = msgs[0]["content"]
        if system not in (prompts.NOTE_SYSTEM, prompts.TOPIC_SYSTEM):
            return yes_no
        field, table = ("note", notes) if system == prompts.NOTE_SYSTEM else ("topic", topics or {})
        said = msgs[-1]["content"]
        for key, note in table.items():
            if key in said:
                if isinstance(note, Exception):
                    raise note
                return note if note.startswith(("{", "<")) else json.dumps({field: note})
        return json.dumps({field: "none"})

    return ScriptedModel(default=reply)


def agent_for(model: ScriptedModel, **kw) -> MemoryAgent:
    kw.setdefault("strategy", "select")
    agent = MemoryAgent(model, chunk_tokens=2000, memory_tokens=2000, **kw)
    assert agent.config.strategy == "select" and agent.config.notes
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
    msgs = history(
        "I hope my week goes well, I have lots of meetings.", "I swim in the lake every summer."
    )
    model = notes_model({"meetings": "none", "swim": "Swims in summer"})
    result = await agent_for(model).build(msgs)
    assert [ln.text for ln in result.state.lines] == ["Swims in summer"]


@pytest.mark.parametrize(
    "bad",
    [
        "{not json",  # broken JSON
        '{"other": "x"}',  # wrong shape
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
    model = notes_model(
        {"bake sourdough bread every": "Bakes sourdough bread", "rye": "Bakes rye sourdough bread"}
    )
    result = await agent_for(model).build(msgs)
    assert "sourdough" not in result.memory.lower()
    assert result.state.forgotten


async def test_notes_off_keeps_statements_and_asks_nothing():
    msgs = history("I bake sourdough bread every Sunday morning for my neighbours.")
    model = notes_model({"sourdough": "Bakes sourdough bread"})
    result = await MemoryAgent(model, 2000, 2000, strategy="select", notes=False).build(msgs)
    assert [ln.text for ln in result.state.lines] == [msgs[1]["content"]]
    assert model.calls == []
    assert MemoryState.from_text(result.memory).lines[0].text == msgs[1]["content"]


async def test_questions_become_what_the_user_asked_about():
    msgs = history(
        "Why do some limited-release IPAs lose their flavor so fast?",  # 1
        "Why does my knee hurt after my long Sunday bike rides?",  # 3
    )
    model = notes_model(
        {"IPAs": "Limited-release IPAs lose flavor due to oxidation"},  # an answer, not a note
        topics={"IPAs": "flavor loss in limited-release IPAs", "knee": "Asked about knee pain"},
    )
    result = await agent_for(model).build(msgs)
    assert [(ln.text, ln.sources, ln.evidence) for ln in result.state.lines] == [
        ("Asked about flavor loss in limited-release IPAs", [1], msgs[1]["content"]),
        ("Asked about knee pain", [3], msgs[3]["content"]),  # no "Asked about Asked about"
    ]
    # Questions go to the topic prompt only, one question per prompt.
    asked = [c[-1]["content"] for c in model.calls if c[0]["content"] == prompts.TOPIC_SYSTEM]
    assert asked == [msgs[1]["content"], msgs[3]["content"]]
    assert not [c for c in model.calls if c[0]["content"] == prompts.NOTE_SYSTEM]


@pytest.mark.parametrize(
    "bad",
    [
        "{not json",
        prompts.TOPIC_SHOTS[0][1],  # copied the prompt's example
        "vintage stamp collecting",  # shares no word with the question
        "why my espresso tastes sour and what grind size and water temperature would fix it",
    ],
)
async def test_a_question_without_a_usable_topic_is_left_out(bad):
    msgs = history("Why does my espresso taste sour?", "I drink espresso every morning.")
    model = notes_model({"every morning": "Drinks espresso every morning"}, topics={"sour": bad})
    result = await agent_for(model).build(msgs)
    # The question is not kept verbatim; the statement's note is unaffected.
    assert [ln.text for ln in result.state.lines] == ["Drinks espresso every morning"]


@pytest.mark.parametrize(
    "world",
    ["Time zone differences", "Workshops and meetups are held on Saturdays", "Eggs, toast, yogurt"],
)
async def test_a_note_that_is_not_about_the_user_keeps_the_statement(world):
    said = "I keep thinking about time zone differences and weekend workshops with eggs and toast."
    result = await agent_for(notes_model({"time zone": world})).build(history(said))
    assert [(ln.text, ln.evidence) for ln in result.state.lines] == [(said, None)]


async def test_only_a_statement_of_change_can_replace_a_note():
    """The model's replacement question is asked only when the user says something changed; a
    model that says yes to everything then cannot drop a related but different habit."""
    msgs = history(
        "I use Ubuntu and open-source tools for my data pipeline.",  # 1
        "I use cloud-based tools to run my team's planning.",  # 3: same topic, no change
        "Why do open-source tools for data pipelines break so often?",  # 5: a question
        "I switched from Ubuntu to Fedora for my data pipeline.",  # 7: a change
    )
    model = notes_model(
        {
            "Ubuntu and": "Uses Ubuntu and open-source tools",
            "cloud-based": "Uses cloud-based tools for planning",
            "switched": "Uses Fedora instead of Ubuntu",
        },
        yes_no="yes",
        topics={"break": "open-source tools breaking"},
    )
    result = await agent_for(model).build(msgs)
    assert [ln.text for ln in result.state.lines] == [
        "Uses cloud-based tools for planning",
        "Asked about open-source tools breaking",
        "Uses Fedora instead of Ubuntu",
    ]
    replace_questions = [c[-1]["content"] for c in model.calls if "out of date" in c[-1]["content"]]
    assert len(replace_questions) == 1 and "Fedora" in replace_questions[0]


async def test_forgetting_one_topic_keeps_notes_that_only_share_a_verb():
    """Measured on the real sample: "forget that I take martial arts classes" used to drop every
    "Takes ..." note, because a yes-biased model confirmed any word overlap."""
    msgs = history(
        "I take long mountain hikes in the Cascades most weekends.",
        "I take martial arts classes twice a week.",
        "Please forget that I take martial arts classes.",
    )
    model = notes_model(
        {"mountain": "Takes mountain hikes in the Cascades", "twice": "Takes martial arts classes"},
        yes_no="yes",
    )
    result = await agent_for(model).build(msgs)
    assert [ln.text for ln in result.state.lines] == ["Takes mountain hikes in the Cascades"]


async def test_questions_that_mean_nothing_alone_are_not_asked_about():
    msgs = history(
        "Could we meet at 10 a.m. on Tuesday? or Wednesday work for you?",
        "I read about journaling. Is there a theory behind that?",
    )
    model = notes_model({}, topics={"Wednesday": "Wednesday work", "theory": "a theory"})
    result = await agent_for(model).build(msgs)
    topic_prompts = [c for c in model.calls if c[0]["content"] == prompts.TOPIC_SYSTEM]
    assert not [ln for ln in result.state.lines if ln.text.startswith(prompts.ASKED)]
    assert all(
        not c[-1]["content"].startswith("or") and "behind that" not in c[-1]["content"]
        for c in topic_prompts
    )


async def test_a_reply_cut_at_the_length_limit_is_cut_back_to_a_whole_phrase():
    """The schema's maxLength closes the string mid-phrase; the line must not end mid-phrase."""
    cut_note = (
        "Organized offsite meeting for cloud product group, aligned with festival weekend, with a 2"
    )
    cut_topic = "fun and effective ways to build strength, flexibility, and coordinati"
    assert len(cut_note) == 90 and len(cut_topic) == 69  # at or one under each limit
    msgs = history(
        "As part of this quarter's plan, I organized our cloud product group's offsite meeting to "
        "align with a notable local festival weekend, with a mix of workshops and networking.",
        "What are some fun and effective ways to build strength, flexibility, and coordination "
        "that I can fit into my weekly routine?",
    )
    model = notes_model({"offsite": cut_note}, topics={"strength": cut_topic})
    result = await agent_for(model).build(msgs)
    assert [ln.text for ln in result.state.lines] == [
        "Organized offsite meeting for cloud product group, aligned with festival weekend",
        "Asked about fun and effective ways to build strength, flexibility",
    ]
