"""The profile strategy: up to three inferred lines per user message, with the agent's shared
rules."""

from __future__ import annotations

import asyncio
import json

import pytest

from personamem.memory import MemoryAgent, MemoryState, MemoryUpdateError
from personamem.memory.profile import (
    PROFILE_SYSTEM,
    parse_profile,
    profile_messages,
    profile_reply,
)
from personamem.models import ModelError, ScriptedModel
from personamem.models.base import Generation, Message

LINES = {
    "leggings": "Wears athleisure for comfort",
    "farmers market": "Shops at farmers markets",
    "budget call": "none",
}


def writer(msgs: list[Message]) -> str:
    said = msgs[-1]["content"].lower()
    for key, line in LINES.items():
        if key in said:
            return profile_reply(None if line == "none" else line)
    return profile_reply(None)


def history(*user: str) -> list[Message]:
    out: list[Message] = []
    for u in user:
        out += [{"role": "user", "content": u}, {"role": "assistant", "content": "Sure thing."}]
    return out


def test_prompt_ends_with_the_message_and_never_sees_the_memory() -> None:
    msgs = profile_messages("  I wore leggings to brunch.  ")
    assert msgs[0] == {"role": "system", "content": PROFILE_SYSTEM}
    assert msgs[-1] == {"role": "user", "content": "I wore leggings to brunch."}
    # the same prefix every time (KV-cache reuse)
    assert profile_messages("other")[:-1] == msgs[:-1]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            '{"profile": ["enjoys jazz.", "Runs 5k twice a week"]}',
            ["Enjoys jazz", "Runs 5k twice a week"],
        ),
        ('{"profile": ["Enjoys jazz", "enjoys jazz."]}', ["Enjoys jazz"]),
        ('{"profile": []}', []),
        ('{"profile": ["none", " "]}', []),
        ('{"profile": "enjoys jazz."}', ["Enjoys jazz"]),  # one string: an older reply format
        ('{"profile": " None. "}', []),
        ('{"profile": 3}', None),
        ('{"profile": ["Enjoys jazz", 3]}', None),
        ("not json", None),
        ("[]", None),
    ],
)
def test_parse_profile(reply: str, expected: list[str] | None) -> None:
    assert parse_profile(reply) == expected


def test_a_line_closed_by_the_length_limit_is_cut_to_a_whole_phrase() -> None:
    cut = "Specializes in diasporic family histories, uses paleography and comparative analysis, is"
    reply = json.dumps({"profile": cut})
    assert parse_profile(reply, len(cut)) == [
        "Specializes in diasporic family histories, uses paleography and comparative analysis"
    ]
    assert parse_profile(reply, None) == [cut]  # under the limit: kept as written


def test_reply_format_round_trips() -> None:
    assert json.loads(profile_reply(None)) == {"profile": "none"}  # v3: one line or none
    assert json.loads(profile_reply("Likes tea")) == {"profile": "Likes tea"}
    assert json.loads(profile_reply([])) == {"profile": []}  # v4: a list
    assert parse_profile(profile_reply(None)) == []
    assert parse_profile(profile_reply("Likes tea")) == ["Likes tea"]
    two = ["Likes tea", "Walks daily"]
    assert parse_profile(profile_reply(two)) == two


def test_the_v4_prompt_asks_for_a_list_and_v3_for_one_line() -> None:
    from personamem.memory.profile import PROFILE_SYSTEM_V4, profile_schema

    v4 = profile_messages("I like tea.", "v4")
    assert v4[0]["content"] == PROFILE_SYSTEM_V4 != PROFILE_SYSTEM
    assert all(isinstance(json.loads(t["content"])["profile"], list) for t in v4[2:-1:2])
    v3 = profile_messages("I like tea.")
    assert all(isinstance(json.loads(t["content"])["profile"], str) for t in v3[2:-1:2])
    assert profile_schema()["properties"]["profile"]["type"] == "string"
    assert profile_schema(max_lines=3)["properties"]["profile"]["maxItems"] == 3
    with pytest.raises(ValueError, match="profile_prompt"):
        MemoryAgent(ScriptedModel(default="{}"), strategy="profile", profile_prompt="v9")


def test_a_message_that_reveals_several_things_gives_several_lines_with_v4() -> None:
    said = ["Collects stamps", "Goes to antique fairs", "Owns a cat", "Walks daily"]
    replies = [profile_reply(["Collects vinyl records", *said])]
    model = ScriptedModel(replies=replies)
    agent = MemoryAgent(
        model, chunk_tokens=400, memory_tokens=300, strategy="profile", profile_prompt="v4"
    )
    result = asyncio.run(agent.build(history("Polish my post: a fair, stamps, my cat.")))
    assert result.prompt_version == "profile-v4"
    # at most three lines per message, each cited to it; the shots' own lines are never stored
    assert result.memory.splitlines() == [
        "- Collects stamps [msg 0]",
        "- Goes to antique fairs [msg 0]",
    ]
    # the default (v3) keeps one line per message
    one = MemoryAgent(ScriptedModel(replies=[profile_reply(said)]), chunk_tokens=400)
    first = asyncio.run(one.build(history("Polish my post: a fair, stamps, my cat.")))
    assert first.memory == "- Collects stamps [msg 0]" and first.prompt_version == "profile-v3"


def test_build_writes_inferred_lines_with_citations() -> None:
    model = ScriptedModel(default=writer)
    agent = MemoryAgent(model, chunk_tokens=400, memory_tokens=300, strategy="profile")
    msgs = history(
        "Running late, grabbing my leggings and zip-up after class.",
        "Would the budget call on Tuesday work?",
        "How do I keep farmers market kale fresh?",
    )
    result = asyncio.run(agent.build(msgs))
    assert result.memory.splitlines() == [
        "- Wears athleisure for comfort [msg 0]",
        "- Shops at farmers markets [msg 4]",
    ]
    assert result.prompt_version.startswith("profile-")
    # assistant turns are never sent to the writer
    assert all(c[-1]["content"] != "Sure thing." for c in model.calls)


def test_a_repeated_preference_is_merged() -> None:
    model = ScriptedModel(default=writer)
    agent = MemoryAgent(model, chunk_tokens=400, memory_tokens=300, strategy="profile")
    msgs = history("My leggings are the best.", "Leggings again today, obviously.")
    result = asyncio.run(agent.build(msgs))
    assert result.memory == "- Wears athleisure for comfort [msg 0, 2]"


def test_forget_request_removes_the_line_and_keeps_it_out() -> None:
    model = ScriptedModel(default=writer)
    agent = MemoryAgent(model, chunk_tokens=60, memory_tokens=300, strategy="profile")
    msgs = history(
        "Shopping at the farmers market is my Saturday ritual.",
        "Please forget that I shop at farmers markets.",
        "The farmers market had great kale again.",
    )
    result = asyncio.run(agent.build(msgs))
    assert "farmers" not in result.memory.lower()


def test_copied_example_and_secret_are_not_stored_and_a_broken_reply_is_asked_again() -> None:
    replies = [
        profile_reply(["Dresses for comfort in athleisure", "Does yoga"]),  # prompt examples
        profile_reply("Card 4111 1111 1111 1111 on file"),
        "{broken",  # a transient bad reply: asked again, not a lost message
        profile_reply("Reads mystery novels"),
        profile_reply("Plays chess on weekends"),
    ]
    model = ScriptedModel(replies=list(replies))
    agent = MemoryAgent(model, chunk_tokens=400, memory_tokens=300, strategy="profile")
    msgs = history("one thing I said", "another thing", "a third thing", "I play chess a lot")
    result = asyncio.run(agent.build(msgs))
    assert result.memory == "- Reads mystery novels [msg 4]\n- Plays chess on weekends [msg 6]"
    assert [m[-1]["content"] for m in model.calls[2:4]] == ["a third thing"] * 2
    assert any("message 4: unusable reply" in w for r in result.reports for w in r.warnings)


BAD = ["", "{broken", profile_reply("Plays chess and more" + " and more" * 200)]


@pytest.mark.parametrize("bad", BAD, ids=["empty", "cut off", "valid JSON over max_tokens"])
def test_a_reply_that_stays_unusable_fails_the_update(
    bad: str, caplog: pytest.LogCaptureFixture
) -> None:
    # unusable every time, but not the same reply every time: not a settled answer
    others = iter([b + " " for b in BAD if b != bad])
    model = ScriptedModel(default=lambda msgs: bad if len(model.calls) == 1 else next(others))
    model.count_tokens = lambda text: len(text.split())  # type: ignore[method-assign]
    model.generate = _ignoring_max_tokens(model)  # type: ignore[method-assign]
    agent = MemoryAgent(model, chunk_tokens=400, memory_tokens=300, strategy="profile")
    chunk = agent.chunk(history("I play chess a lot"))[0]
    with pytest.raises(MemoryUpdateError, match="no usable reply in 3 attempts"):
        asyncio.run(agent.update(MemoryState(), chunk))
    assert len(model.calls) == 3  # reply_retries=2
    assert len([r for r in caplog.records if "unusable reply" in r.getMessage()]) == 3


def test_the_same_unusable_reply_every_time_skips_that_message_visibly() -> None:
    def model_reply(msgs: list[Message]) -> str:
        said = msgs[-1]["content"]
        return "{broken" if "chess" in said else profile_reply("Reads mystery novels")

    model = ScriptedModel(default=model_reply)
    agent = MemoryAgent(model, chunk_tokens=400, memory_tokens=300, strategy="profile")
    result = asyncio.run(agent.build(history("I play chess a lot", "Mysteries are my thing")))
    # a deterministic model's settled answer: retrying the update could never get past it
    assert result.memory == "- Reads mystery novels [msg 2]"
    assert not any(r.kept_previous for r in result.reports)
    assert sum(m[-1]["content"] == "I play chess a lot" for m in model.calls) == 3
    assert any("settled answer" in w for r in result.reports for w in r.warnings)


def _ignoring_max_tokens(model: ScriptedModel):  # noqa: ANN202 - generate's signature
    """A backend that returns its whole reply whatever ``max_tokens`` says."""
    real = model.generate

    async def generate(messages: list[Message], **kw: object) -> Generation:
        g = await real(messages, **{**kw, "max_tokens": 10**6})
        g.tokens_out = model.count_tokens(g.text)
        return g

    return generate


def test_an_unusable_yes_no_reply_is_asked_again_not_taken_for_no() -> None:
    replies = iter(["", "Maybe", "Yes"])  # the replacement question: two bad replies, then yes

    def model_reply(msgs: list[Message]) -> str:
        if msgs[0]["content"] == PROFILE_SYSTEM:
            said = msgs[-1]["content"]
            old, new = "Drinks strong black coffee", "Drinks decaf coffee"
            return profile_reply(new if "decaf" in said else old)
        return next(replies)

    model = ScriptedModel(default=model_reply)
    agent = MemoryAgent(model, chunk_tokens=400, memory_tokens=300, strategy="profile")
    msgs = history("I drink coffee every day.", "I switched to decaf coffee.")
    result = asyncio.run(agent.build(msgs))
    assert result.memory == "- Drinks decaf coffee [msg 2]"  # the old line was replaced


def test_model_error_fails_the_update_and_keeps_the_previous_memory() -> None:
    model = ScriptedModel(default=writer)
    agent = MemoryAgent(model, chunk_tokens=400, memory_tokens=300, strategy="profile")
    first = asyncio.run(agent.build(history("My leggings are the best.")))
    broken = MemoryAgent(
        ScriptedModel(default=ModelError("server down")),
        chunk_tokens=400,
        memory_tokens=300,
        strategy="profile",
    )
    chunk = broken.chunk(history("How do I keep farmers market kale fresh?"))[0]
    with pytest.raises(MemoryUpdateError):
        asyncio.run(broken.update(first.state, chunk))
    assert first.state.text == "- Wears athleisure for comfort [msg 0]"


def test_the_cap_drops_whole_lines() -> None:
    things = (
        "stamps coins maps clocks lamps kites shells fossils vinyl comics posters cameras".split()
    )
    n = len(things)
    replies = [profile_reply(f"Collects antique {t} every weekend") for t in things]
    model = ScriptedModel(replies=replies)
    agent = MemoryAgent(model, chunk_tokens=2000, memory_tokens=60, strategy="profile")
    result = asyncio.run(agent.build(history(*[f"message {i} here" for i in range(n)])))
    assert 0 < result.memory_tokens <= 60
    lines = result.memory.splitlines()
    assert 1 < len(lines) < n
    assert all(line.startswith("- Collects antique ") for line in lines)
    # the newest lines survive the cap, the oldest go first
    assert "cameras" in result.memory and "stamps" not in result.memory


def test_agent_takes_a_config_positionally_or_by_name_but_not_both() -> None:
    from personamem.memory import MemoryConfig

    cfg = MemoryConfig(strategy="select", memory_tokens=300)
    model = ScriptedModel(default=writer)
    assert MemoryAgent(model, cfg).config == cfg
    assert MemoryAgent(model, config=cfg, memory_tokens=200).config.memory_tokens == 200
    with pytest.raises(TypeError, match="once"):
        MemoryAgent(model, cfg, config=cfg)
    with pytest.raises(TypeError, match="unknown memory option"):
        MemoryAgent(model, colour="blue")


def test_over_the_cap_a_messages_later_lines_go_before_first_lines() -> None:
    things = (
        "stamps coins maps clocks lamps kites shells fossils comics posters cameras pens".split()
    )
    replies = [profile_reply([f"Collects old {t}", f"Trades {t} at fairs"]) for t in things]
    model = ScriptedModel(replies=replies)
    agent = MemoryAgent(
        model, chunk_tokens=4000, memory_tokens=150, strategy="profile", profile_prompt="v4"
    )
    result = asyncio.run(agent.build(history(*[f"message {i} here" for i in range(12)])))
    kept_first = [t for t in things if f"Collects old {t}" in result.memory]
    kept_second = [t for t in things if f"Trades {t} at fairs" in result.memory]
    assert 0 < result.memory_tokens <= 150 and len(kept_first) + len(kept_second) < 24
    # every kept second line's message also kept its first line, and more first lines survive
    assert set(kept_second) <= set(kept_first) and len(kept_first) > len(kept_second)


def test_a_pasted_text_someone_else_wrote_never_reaches_the_writer() -> None:
    model = ScriptedModel(default=lambda msgs: profile_reply("Loves heavy metal"))
    agent = MemoryAgent(model, chunk_tokens=800, memory_tokens=300, strategy="profile")
    msgs = history(
        "Can you polish this email I'm writing for my friend Marco? He asked me to fix his "
        "grammar.\n\nHi team,\nI am a huge fan of heavy metal and go to every metal concert."
        "\nBest, Marco",
        "Polish my own post: 'I stopped by a small gallery downtown and loved it.'",
    )
    asyncio.run(agent.build(msgs))
    seen = [c[-1]["content"] for c in model.calls]
    assert (
        seen[0]
        == "Can you polish this email I'm writing for my friend Marco? He asked me to fix his grammar."
    )
    assert "gallery" in seen[1]  # the user's own writing is read as theirs
