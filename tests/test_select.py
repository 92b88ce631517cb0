"""The ``select`` memory strategy: the user's own statements, verbatim, cited.

Everything here runs on :class:`ScriptedModel`: the select strategy makes no model call except the
yes/no questions (does a new statement replace an old one, is a note about what the user asked to
forget), which the scripted model answers with a handler of the question.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable

import pytest

from personamem.memory import MemoryAgent, MemoryLine, MemoryState, prompts
from personamem.memory.select import (
    candidates,
    is_exercise,
    is_question,
    reads_as_profile_note,
    signal,
    split_sentences,
)
from personamem.models import ScriptedModel
from personamem.models.base import Message

SYSTEM = "PERSONA: Jane Roe, 41, Lisbon. I adore opera and I collect antique stamps every weekend."


def history(
    *user_texts: str, assistant: str = "Okay, noted.", system: str = SYSTEM
) -> list[Message]:
    """A system message at index 0, then user/assistant turns: user turn k is at index 2k + 1."""
    msgs: list[Message] = [{"role": "system", "content": system}]
    for t in user_texts:
        msgs += [{"role": "user", "content": t}, {"role": "assistant", "content": assistant}]
    return msgs


def yes_no(answer: Callable[[str], bool] | str = "no") -> ScriptedModel:
    """A scripted model for the yes/no questions; anything else is answered "no" too."""

    def reply(msgs: list[Message]) -> str:
        if callable(answer):
            return "yes" if answer(msgs[-1]["content"]) else "no"
        return answer

    return ScriptedModel(default=reply)


def agent_for(
    model: ScriptedModel, chunk_tokens: int = 2000, memory_tokens: int = 2000, **kw
) -> MemoryAgent:
    kw.setdefault("notes", False)  # verbatim statements; the notes step is tested in test_notes.py
    kw.setdefault("strategy", "select")
    agent = MemoryAgent(model, chunk_tokens=chunk_tokens, memory_tokens=memory_tokens, **kw)
    assert agent.config.strategy == "select"
    return agent


def texts(state: MemoryState) -> list[str]:
    return [ln.text for ln in state.lines]


def snapshot(state: MemoryState) -> dict:
    return json.loads(state.model_dump_json())


def user_sentences(msgs: list[Message]) -> set[str]:
    """Every candidate sentence of every user turn (what a stored line may be, verbatim)."""
    return {s for m in msgs if m["role"] == "user" for s in candidates(m["content"])}


def asked(model: ScriptedModel) -> str:
    return "\n".join(m["content"] for call in model.calls for m in call)


# --- 1. candidates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "turn, expected",
    [
        (
            "I love hiking in the mountains on weekends. Can you help me polish this email?",
            ["I love hiking in the mountains on weekends."],
        ),
        (
            "I've been drinking green tea instead of coffee lately, it helps with my anxiety.",
            ["I've been drinking green tea instead of coffee lately, it helps with my anxiety."],
        ),
        (
            "Honestly, I prefer quiet restaurants where I can actually hear my friends talk.",
            ["Honestly, I prefer quiet restaurants where I can actually hear my friends talk."],
        ),
        (
            "Hi! I hope your week is going well. I love baking sourdough on Sunday mornings. "
            "If I were rich I would buy a yacht. My sister loves jazz and hates crowds. "
            "Can you help me polish this email? Thanks, that sounds great.",
            ["I love baking sourdough on Sunday mornings."],
        ),
        (
            "I usually go running before work.\nMy partner thinks I should try swimming instead.",
            ["I usually go running before work."],
        ),
    ],
    ids=["statement-then-request", "habit", "preference", "mixed-turn", "self-then-partner"],
)
def test_first_person_statements_are_kept_verbatim(turn, expected):
    got = candidates(turn)
    assert got == expected
    for s in got:
        assert s in turn  # verbatim, never paraphrased


@pytest.mark.parametrize(
    "turn",
    [
        "Can you help me polish this email?",
        "Could you rewrite this paragraph so my tone sounds friendlier?",
        "Thanks, that sounds great.",
        "I hope your week is going well.",
        "If I were rich I would buy a yacht.",
        "Imagine I moved to Tokyo next year, what would I miss most?",
        "My sister loves jazz and hates crowds.",
        "My friend loves jazz and goes to every concert in town.",
        "She goes running every morning before work.",
        "They always ask me to host the holiday dinner at my place.",
        "Our neighbour plays loud music every night until midnight.",
        "Can you explain that again in simpler words?",
        "What about the second option you mentioned?",
    ],
)
def test_requests_greetings_hypotheticals_and_other_people_are_dropped(turn):
    assert candidates(turn) == []


@pytest.mark.parametrize(
    "turn, expected",
    [
        (
            "Could you translate this message from my colleague: I adore sushi and go every Friday.",
            [],
        ),
        (
            "Could you translate this message from my colleague? I adore sushi and go every Friday.",
            [],
        ),
        (
            "Could you translate this message from my colleague:\n"
            "I adore sushi and go every Friday. I also love karaoke nights with the team.",
            [],
        ),
        (  # the pasted text in the same sentence, too long to pass as a short editing request
            "Could you translate this message from my colleague: I adore sushi and go every Friday "
            "with my whole team after work because it is the only time all week that we get to "
            "relax together and talk about anything other than the quarterly numbers.",
            [],
        ),
        (
            "My colleague wrote this and asked me to proofread it. I adore sushi and go every "
            "Friday. I love my weekends too.",
            [],
        ),
        (
            "Translate this for me: I adore sushi and go every Friday. It was written by my colleague.",
            [],
        ),
        (  # the user writes on someone else's behalf and the email is signed by them
            "Can you polish this email I'm writing for my friend Marco? He asked me to fix his "
            "grammar.\n\nHi team,\nI adore sushi and go every Friday.\nBest, Marco",
            [],
        ),
        (
            "My neighbour needs help. She asked me to proofread this: I adore sushi and go every "
            "Friday with my book club.",
            [],
        ),
        (
            "Please fix his grammar in this email: I adore sushi and go every Friday with friends.",
            [],
        ),
        (  # the user's own framing sentence still counts
            "I'm a nurse, and my colleague wrote this note for our ward, can you translate it? "
            "I adore sushi and go every Friday.",
            ["I'm a nurse, and my colleague wrote this note for our ward, can you translate it?"],
        ),
    ],
    ids=[
        "colon",
        "question",
        "newline",
        "long-sentence",
        "colleague-wrote",
        "said-after",
        "writing-for",
        "asked-me-to",
        "his-grammar",
        "framing",
    ],
)
def test_text_written_by_someone_else_is_not_the_users(turn, expected):
    got = candidates(turn)
    assert got == expected
    assert not any("sushi" in s or "karaoke" in s for s in got)


def test_writing_to_someone_is_still_the_users_own_text():
    got = candidates("I'm writing to my friend about our trip. I adore sushi and go every Friday.")
    assert got == ["I'm writing to my friend about our trip.", "I adore sushi and go every Friday."]


def test_pasted_texts_lines_to_their_reader_are_not_the_users_profile():
    turn = (
        "Can you help me improve the language in this professional email?\n\n"
        "Hi Jordan,\n\nIt was great connecting at the summit last week. "
        "I appreciated our discussion on scalable API integrations, and I think there is real "
        "potential for collaboration between our teams. "
        "Alternatively, I can accommodate a virtual meeting if that works better for your schedule. "
        "I know you love hiking as much as I do, so a trail walk could work too."
    )
    got = candidates(turn)
    assert not any("accommodate" in s for s in got)  # logistics addressed to the reader
    assert any("hiking" in s for s in got)  # a preference cue keeps the sentence
    assert any("API integrations" in s for s in got)  # no second person: kept
    # The same sentence outside a pasted text is the user talking to the assistant: kept.
    own = "I can accommodate a virtual meeting if that works better for your schedule."
    assert candidates(own) == [own]


def test_the_users_own_questions_are_kept():
    q = "Why do some people find it harder to enjoy browsing bookstores now?"
    assert candidates(q) == [q]
    turn = f"I used to spend hours in bookshops. {q} Can you explain that again?"
    assert candidates(turn) == ["I used to spend hours in bookshops.", q]


def test_candidates_are_whole_sentences_of_the_turn():
    turn = (
        "I moved to Lisbon last spring and I walk to work every day. "
        "I prefer the early tram when it rains! Do you think I should buy a bike?"
    )
    got = candidates(turn)
    assert got == split_sentences(turn)
    assert len(got) == 3


EXERCISES = [
    # word problems (the release pads 128k histories with code and math dialogues)
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
    "May. How many clips did Natalia sell altogether in April and May?",
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast and sells the rest for $2 "
    "each. How much does she make every day at the farmers' market?",
    "A rectangle has a perimeter of 30 cm and a length of 9 cm. What is its width?",
    # formulas
    "What is the value of $x$ if $2x + 3 = 11$?",
    "Find all real solutions of x^2 - 5x + 6 = 0. Why does the quadratic formula work?",
    "Let f(x) = 3x + 2. Why is f(f(1)) so large?",
    # code
    "def add(a, b):\n    return a + b\n\nWhy does this function return None sometimes?",
    "I'm getting this error when I run my script:\n```\nTraceback (most recent call last):\n"
    '  File "main.py", line 3\nTypeError: unsupported operand\n```\nWhat am I doing wrong?',
    "Why does my loop never end?\nfor (let i = 0; i < n; i--) {\n  total += i;\n}",
]


@pytest.mark.parametrize("turn", EXERCISES)
def test_code_and_math_exercises_are_not_about_the_user(turn):
    assert is_exercise(turn)
    assert candidates(turn) == []


@pytest.mark.parametrize(
    "turn",
    [
        "I run 5k three times a week and sleep 7 hours. How can I recover faster?",
        "Why do some limited-release IPAs lose their flavor faster than others?",
        "How many cups of coffee a day is too many?",
        "My commute is 45 minutes each way, so I listen to 2 podcasts a day.",
        "I moved here in 2019 with my 2 cats; which neighborhoods suit pets best?",
        "Is it true that walking 10,000 steps a day matters more than how fast I walk?",
    ],
)
def test_talk_with_numbers_is_not_an_exercise(turn):
    assert not is_exercise(turn)
    assert candidates(turn)


async def test_exercise_padding_leaves_the_memory_unchanged():
    persona = [
        "I love hiking in the mountains on weekends.",
        "I bake sourdough bread every Sunday morning for my neighbours.",
        "Why do some people find it harder to enjoy browsing bookstores now?",
    ]
    padded = [t for pair in zip(persona, EXERCISES, strict=False) for t in pair] + EXERCISES[3:]
    plain = await agent_for(yes_no(), chunk_tokens=60).build(history(*persona))
    noisy = await agent_for(yes_no(), chunk_tokens=60).build(history(*padded))
    assert [ln.text for ln in noisy.state.lines] == [ln.text for ln in plain.state.lines]
    assert len(noisy.state.lines) == 3


# --- 2. a build: verbatim statements, cited ------------------------------------------------------


async def test_build_stores_user_statements_verbatim_with_citations():
    msgs = history(
        "I love hiking in the mountains on weekends. Can you help me polish this email?",  # 1
        "Thanks, that sounds great.",  # 3
        "I bake sourdough bread every Sunday morning for my neighbours.",  # 5
        "My sister loves jazz and hates crowds.",  # 7
        "Why do some people find it harder to enjoy browsing bookstores now?",  # 9
        assistant="I love that too! I also go hiking every weekend myself.",
    )
    model = yes_no()
    agent = agent_for(model, chunk_tokens=60)
    assert len(agent.chunk(msgs)) > 1
    result = await agent.build(msgs)
    assert [(ln.text, ln.sources) for ln in result.state.lines] == [
        ("I love hiking in the mountains on weekends.", [1]),
        ("I bake sourdough bread every Sunday morning for my neighbours.", [5]),
        ("Why do some people find it harder to enjoy browsing bookstores now?", [9]),
    ]
    assert [ln.score for ln in result.state.lines] == [signal(ln.text) for ln in result.state.lines]
    assert result.memory.splitlines() == [
        "- I love hiking in the mountains on weekends. [msg 1]",
        "- I bake sourdough bread every Sunday morning for my neighbours. [msg 5]",
        "- Why do some people find it harder to enjoy browsing bookstores now? [msg 9]",
    ]
    for ln in result.state.lines:  # each citation points at the user message holding the line
        for i in ln.sources:
            assert msgs[i]["role"] == "user" and ln.text in msgs[i]["content"]
    assert "I also go hiking" not in result.memory  # the assistant is not the user
    assert model.calls == []  # nothing needed the model
    assert result.strategy == "select" and result.prompt_version == prompts.SELECT_VERSION
    assert result.memory_tokens == agent.count(result.memory)
    assert sum(r.added for r in result.reports) == 3


async def test_citations_use_the_history_index_of_the_chunk():
    agent = agent_for(yes_no())
    msgs: list[Message] = [
        {"role": "assistant", "content": "How was your trip?"},
        {"role": "user", "content": "I always take the night train when I travel to Porto."},
    ]
    (chunk,) = agent.chunk(msgs, start=40)
    new, report = await agent.update(MemoryState(), chunk)
    assert [(ln.text, ln.sources) for ln in new.lines] == [
        ("I always take the night train when I travel to Porto.", [41])
    ]
    assert new.next_message == 42 and new.chunks_done == 1 and report.added == 1


async def test_replacement_is_asked_and_obeyed():
    old = "I prefer running outdoors in the morning."
    new_text = "These days I prefer running on a treadmill in the morning."
    for answer, expected in (("yes", [new_text]), ("no", [old, new_text])):
        model = yes_no(answer)
        result = await agent_for(model).build(history(old, new_text))
        assert texts(result.state) == expected
        assert len(model.calls) == 1
        question = model.calls[0][-1]["content"]
        assert old in question and new_text in question


async def test_replacement_uses_choice_scores_when_the_backend_scores():
    old = "I prefer running outdoors in the morning."
    new_text = "These days I prefer running on a treadmill in the morning."
    seen: list[list[str]] = []

    def scores(msgs: list[Message], choices: list[str]) -> list[float]:
        seen.append(choices)
        return [0.0, -1.0, -6.0, -7.0]  # Yes, yes, No, no: "yes" far likelier

    model = ScriptedModel(
        default=AssertionError("no text generation expected"), choice_scores=scores
    )
    result = await agent_for(model).build(history(old, new_text))
    assert seen == [["Yes", "yes", "No", "no"]]
    assert texts(result.state) == [new_text]


async def test_judged_statements_keep_the_models_score():
    def scores(msgs: list[Message], choices: list[str]) -> list[float]:
        personal = "hiking" in msgs[-1]["content"]
        # both spellings of each answer, so P(yes) = sigmoid(3) either way
        return [0.0, 0.0, -3.0, -3.0] if personal else [-3.0, -3.0, 0.0, 0.0]

    model = ScriptedModel(choice_scores=scores)
    agent = agent_for(model, judge_statements=True)
    result = await agent.build(
        history(
            "I love hiking in the mountains on weekends.", "I moved the meeting to room four today."
        )
    )
    assert texts(result.state) == ["I love hiking in the mountains on weekends."]
    assert result.state.lines[0].score == pytest.approx(1 / (1 + math.exp(-3)), abs=1e-4)


# --- 3. causality --------------------------------------------------------------------------------

HOBBIES = ["kayaking", "pottery", "chess", "salsa", "archery", "fencing", "rowing", "knitting"]
HOBBY_TURNS = [f"I practised {h} again this weekend and I really enjoyed it." for h in HOBBIES]


async def test_build_never_uses_later_chunks():
    msgs = history(*HOBBY_TURNS)
    agent = agent_for(yes_no(), chunk_tokens=40)
    chunks = agent.chunk(msgs)
    assert len(chunks) >= 4

    first = await agent.build(msgs, max_chunks=1)
    assert first.chunks == 1
    allowed = set(chunks[0].message_ids)
    assert first.state.lines and all(set(ln.sources) <= allowed for ln in first.state.lines)
    later_hobbies = [h for k, h in enumerate(HOBBIES) if 2 * k + 1 not in allowed]
    assert later_hobbies and not any(h in first.memory for h in later_hobbies)

    seen: list[tuple[list[int], MemoryState]] = []
    full = await agent.build(
        msgs, on_chunk=lambda r, s: seen.append((r.message_ids, s.model_copy(deep=True)))
    )
    assert [ids for ids, _ in seen] == [c.message_ids for c in chunks]
    for n, (ids, state) in enumerate(seen):
        last = max(ids)
        assert all(i <= last for ln in state.lines for i in ln.sources)
        future = [h for k, h in enumerate(HOBBIES) if 2 * k + 1 > last]
        assert not any(h in state.text for h in future), (n, state.text)
    assert seen[0][1].lines == first.state.lines  # the first chunk's memory is the same either way
    assert all(h in full.memory for h in HOBBIES)


async def test_update_never_mutates_its_input_state():
    model = yes_no(lambda q: "woodwork" in q)
    agent = agent_for(model, memory_tokens=40)
    state = MemoryState(
        lines=[
            MemoryLine(text="I love hiking in the mountains on weekends.", sources=[1], score=4.5),
            MemoryLine(text="I practice woodworking in my garage.", sources=[3], score=0.5),
        ],
        forgotten=["my old job"],
        chunks_done=2,
        next_message=4,
    )
    state.tokens = agent.count(state.text)
    before = snapshot(state)
    msgs: list[Message] = [
        {"role": "user", "content": "I love hiking in the mountains on weekends."},  # repeat: merge
        {"role": "user", "content": "Please forget that I practice woodworking."},  # forget
        {"role": "user", "content": "I drink black coffee every morning at my desk."},  # new
        {
            "role": "user",
            "content": "I read science fiction novels before going to sleep.",
        },  # over cap
    ]
    (chunk,) = agent.chunk(msgs, start=4)
    new, report = await agent.update(state, chunk)
    assert snapshot(state) == before
    # the copy did change: a merged citation, a forgotten line, a new line, a drop over the cap
    assert [(ln.text, ln.sources) for ln in new.lines] == [
        ("I love hiking in the mountains on weekends.", [1, 4]),
        ("I drink black coffee every morning at my desk.", [6]),
    ]
    assert state.lines[0].sources == [1] and "woodworking" in state.text
    assert new.forgotten == ["my old job", "I practice woodworking"]
    assert report.removed >= 1 and new.chunks_done == 3 and new.next_message == 8


# --- 4. the cap -----------------------------------------------------------------------------------

STATEMENTS = [
    "I work at a bank near the river downtown.",
    "I moved to Lisbon with two suitcases last year.",
    "I love hiking in the mountains every weekend. I usually bake sourdough bread on Sunday mornings.",
    "I enjoy jazz concerts and I often read novels in the evening.",
    "I prefer green tea over coffee in the morning.",
    "I drive an old blue car to the office downtown.",
    "I started learning the cello this spring and practice daily.",
    "My brother lives in Porto. I visit the coast whenever the weather is warm.",
    "I can't stand crowded beaches, so I swim at the lake instead.",
]


@pytest.mark.parametrize("cap", [25, 40, 70])
async def test_cap_holds_after_every_chunk_with_whole_sentences(cap):
    msgs = history(*STATEMENTS)
    agent = agent_for(yes_no(), chunk_tokens=40, memory_tokens=cap)
    allowed = user_sentences(msgs)
    assert agent.count("\n".join(MemoryLine(text=s).render() for s in allowed)) > cap  # must drop
    after: list[tuple[int, MemoryState]] = []
    result = await agent.build(
        msgs, on_chunk=lambda r, s: after.append((r.memory_tokens, s.model_copy(deep=True)))
    )
    assert len(after) == result.chunks >= 4
    for reported, state in after:
        assert agent.count(state.text) <= cap
        assert reported == state.tokens == (agent.count(state.text) if state.lines else 0)
        for ln in state.lines:
            assert ln.text in allowed, f"not a whole original sentence: {ln.text!r}"
            assert all(
                msgs[i]["role"] == "user" and ln.text in msgs[i]["content"] for i in ln.sources
            )
    assert agent.count(result.memory) <= cap and result.memory_tokens <= cap
    assert result.state.lines  # something survives
    assert any("dropped" in w for w in result.warnings)


async def test_over_the_cap_earlier_low_signal_statements_go_first():
    plain = [  # low signal: one mild cue word in the first, none in the others
        "I enjoy my job at a bank near the river.",
        "I moved to Lisbon with two suitcases last year.",
        "I drive an old blue car to the office downtown.",
        "I started learning the cello this spring.",
        "I walk to the market near my flat on Saturdays.",
    ]
    msgs = history(*plain)
    two = agent_for(yes_no()).count(
        "\n".join(MemoryLine(text=s, sources=[9]).render() for s in plain[-2:])
    )
    agent = agent_for(yes_no(), memory_tokens=two)
    result = await agent.build(msgs)
    assert signal(plain[0]) > max(signal(t) for t in plain[1:])  # recency, not signal, decides
    assert texts(result.state) == plain[-2:]  # the latest kept, the earliest dropped
    assert result.memory_tokens <= two
    # built chunk by chunk, the same statements survive
    chunked = await agent_for(yes_no(), chunk_tokens=30, memory_tokens=two).build(msgs)
    assert chunked.chunks > 1
    assert texts(chunked.state) == plain[-2:]


async def test_over_the_cap_a_strong_preference_outlives_an_earlier_plain_statement():
    msgs = history(
        "I work at a bank near the river downtown.",
        "I love hiking every weekend and I always bring coffee.",
        "I moved to Lisbon with two suitcases last year.",
    )
    agent = agent_for(yes_no(), memory_tokens=30)
    result = await agent.build(msgs)
    assert "I work at a bank near the river downtown." not in texts(result.state)
    assert "I love hiking every weekend and I always bring coffee." in texts(result.state)
    assert agent.count(result.memory) <= 30


async def test_a_statement_longer_than_the_cap_is_dropped_whole():
    long_one = (
        "I have loved sailing small boats along the coast every summer since I was a child, "
        "usually with an old map and a flask of coffee."
    )
    agent = agent_for(yes_no(), memory_tokens=12)
    result = await agent.build(history(long_one))
    assert result.state.lines == []  # never a cut sentence
    assert "sailing" not in result.memory


# --- 5. forgetting -------------------------------------------------------------------------------


def about_woodworking(question: str) -> bool:
    """An honest model: yes to "is this note what the user asked to forget" iff it is."""
    note = question.split("\n", 1)[0]
    return "forget" in question.lower() and "woodwork" in note.lower()


FORGET_REQUESTS = [
    "Please forget that I practice woodworking.",
    "Forget that I practice woodworking.",
    "Could you please forget that I practice woodworking?",
    "Can you forget my preference for woodworking?",
    "Please remove the fact that I practice woodworking from your memory.",
    "Please erase my woodworking hobby from your memory.",
]


@pytest.mark.parametrize("request_text", FORGET_REQUESTS)
@pytest.mark.parametrize("chunk_tokens", [30, 2000], ids=["chunked", "one-chunk"])
async def test_forget_removes_the_statement_and_keeps_it_out(request_text, chunk_tokens):
    msgs = history(
        "I practice woodworking in my garage every Sunday.",  # 1
        "I love hiking in the mountains on weekends.",  # 3
        request_text,  # 5
        "I spent the weekend woodworking in my garage.",  # 7
        "I finished a new oak bookshelf in my woodworking shop.",  # 9
        "I drink green tea every morning before work.",  # 11
    )
    model = yes_no(about_woodworking)
    agent = agent_for(model, chunk_tokens=chunk_tokens)
    forgotten_at: list[int] = []
    result = await agent.build(msgs, on_chunk=lambda r, s: forgotten_at.append(r.removed))
    assert "woodwork" not in result.memory.lower(), result.memory
    assert "forget" not in result.memory.lower() and "memory" not in result.memory.lower()
    assert texts(result.state) == [
        "I love hiking in the mountains on weekends.",
        "I drink green tea every morning before work.",
    ]
    assert sum(forgotten_at) == 1
    assert result.state.forgotten and "woodworking" in result.state.forgotten[0]


async def test_public_forget_keeps_input_and_later_updates_out():
    model = yes_no(about_woodworking)
    agent = agent_for(model)
    built = await agent.build(
        history(
            "I practice woodworking in my garage every Sunday.", "I love hiking in the mountains."
        )
    )
    assert "woodworking" in built.memory
    new, removed = await agent.forget(built.state, "I practice woodworking")
    assert removed == 1 and "woodworking" not in new.text
    assert "woodworking" in built.state.text  # input untouched
    assert new.tokens == agent.count(new.text)
    later = await agent.build(history("I spent the weekend woodworking in my garage."), state=new)
    assert "woodworking" not in later.memory
    assert "hiking" in later.memory


async def test_forget_request_does_not_swallow_the_rest_of_the_turn():
    """agent.py bug: a user turn holding a forget request is skipped whole, so the user's other
    statements in that turn are lost."""
    msgs = history(
        "I practice woodworking in my garage every Sunday.",
        "I love hiking in the mountains on weekends. Please forget that I practice woodworking.",
    )
    result = await agent_for(yes_no(about_woodworking)).build(msgs)
    assert "woodworking" not in result.memory
    assert texts(result.state) == ["I love hiking in the mountains on weekends."]


async def test_forgetting_one_thing_keeps_unrelated_statements():
    """agent.py bug: a new statement sharing one word with a forgotten one ("practice") is
    dropped without asking (overlap >= 0.5 against a two-word request)."""
    msgs = history(
        "I practice woodworking in my garage every Sunday.",
        "Please forget that I practice woodworking.",
        "I practice yoga every morning before work.",
    )
    result = await agent_for(yes_no(about_woodworking)).build(msgs)
    assert texts(result.state) == ["I practice yoga every morning before work."]


@pytest.mark.parametrize(
    "request_text",
    [
        "Please don't remember that I practice woodworking.",
        "Stop remembering that I practice woodworking.",
    ],
)
async def test_dont_remember_requests_are_forget_requests(request_text):
    """merge.py bug: ``_FORGET_CUE`` accepts "don't remember" / "stop remembering" but ``_FORGET``
    cannot extract what to forget, so nothing is forgotten and the request is stored as a fact."""
    msgs = history("I practice woodworking in my garage every Sunday.", request_text)
    result = await agent_for(yes_no(about_woodworking)).build(msgs)
    assert "woodworking" not in result.memory, result.memory
    assert "remember" not in result.memory


# --- 6. secrets -----------------------------------------------------------------------------------

EMAIL = "jane.roe@example.com"
CARD = "4111 1111 1111 1111"


async def test_secrets_never_reach_the_memory_or_the_model():
    msgs = history(
        "I love baking bread for my bakery every morning.",
        f"My email is {EMAIL} and my card is {CARD}, I now love baking bread for my bakery.",
        f"I always pay with my card {CARD} when I order flour online.",
    )
    model = yes_no()
    result = await agent_for(model, chunk_tokens=40).build(msgs)
    assert EMAIL not in result.memory and "example.com" not in result.memory
    assert "4111" not in result.memory and not re.search(r"\b\d{4}\b", result.memory)
    assert "baking bread" in result.memory  # ordinary text still goes through
    assert model.calls, "the similar statements should have been compared by the model"
    assert EMAIL not in asked(model) and "4111" not in asked(model)
    kinds = {r["kind"] for rep in result.reports for r in rep.redactions}
    assert {"email", "card"} <= kinds
    assert all(EMAIL not in json.dumps(rep.redactions) for rep in result.reports)
    assert "4111" not in result.state.model_dump_json()


async def test_secret_in_a_message_split_across_chunks_is_still_redacted():
    """agent.py bug: secrets are redacted per piece after a long message is split, so a card
    number cut at a word boundary ("... my card 4111" | "1111 1111 1111 ...") is not recognised
    and its halves are stored."""
    text = (
        f"I love baking bread and I always pay with my card {CARD} and my email {EMAIL} gets "
        "the receipts for my bakery orders every single week without fail"
    )
    agent = agent_for(yes_no(), chunk_tokens=23)
    assert len(agent.chunk(history(text))) > 1
    result = await agent.build(history(text))
    assert "4111" not in result.memory and not re.search(r"\b1111\b", result.memory)
    assert EMAIL not in result.memory


# --- 7. the system message --------------------------------------------------------------------------


async def test_system_message_never_reaches_memory_or_model():
    msgs = history(
        "I love baking bread for my bakery every morning.",
        "I bake bread for my bakery every single morning.",
    )
    msgs.insert(
        3,
        {
            "role": "system",
            "content": "Reminder: I adore opera and I travel to Vienna every spring.",
        },
    )
    model = yes_no()
    result = await agent_for(model, chunk_tokens=25).build(msgs)
    assert result.state.lines
    for sentence in split_sentences(SYSTEM) + [
        "I adore opera and I travel to Vienna every spring."
    ]:
        assert sentence not in result.memory
    assert "opera" not in result.memory and "stamps" not in result.memory
    assert "opera" not in asked(model) and "stamps" not in asked(model)
    assert all(msgs[i]["role"] == "user" for ln in result.state.lines for i in ln.sources)


async def test_persona_of_the_real_history_never_reaches_memory(sample_history):
    system = sample_history[0]
    assert system["role"] == "system"
    others = "\n".join(m["content"] for m in sample_history[1:])
    persona = [s for s in split_sentences(system["content"]) if len(s) > 30 and s not in others]
    assert len(persona) > 5
    msgs = sample_history[:80]
    agent = agent_for(yes_no(), chunk_tokens=1500, memory_tokens=800)
    result = await agent.build(msgs)
    assert result.state.lines
    for s in persona:
        assert s not in result.memory
    allowed = user_sentences(msgs)
    for ln in result.state.lines:
        assert ln.text in allowed
        assert all(msgs[i]["role"] == "user" for i in ln.sources)
    assert result.memory_tokens <= 800


# --- 8. repeats ------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_tokens", [25, 2000], ids=["two-chunks", "one-chunk"])
async def test_same_sentence_twice_is_one_line_with_both_citations(chunk_tokens):
    s = "I love listening to jazz records on rainy evenings."
    msgs = history(s, "I work at a bank near the river downtown.", s)
    agent = agent_for(yes_no(), chunk_tokens=chunk_tokens)
    result = await agent.build(msgs)
    assert [(ln.text, ln.sources) for ln in result.state.lines] == [
        (s, [1, 5]),
        ("I work at a bank near the river downtown.", [3]),
    ]
    assert result.memory.count("jazz") == 1
    assert f"- {s} [msg 1, 5]" in result.memory.splitlines()


async def test_a_repeat_with_different_case_and_punctuation_merges():
    msgs = history(
        "I love listening to jazz records on rainy evenings.",
        "i love listening to jazz records on rainy evenings!",
        "I love listening to jazz records on rainy evenings. I love listening to jazz records on rainy evenings.",
    )
    result = await agent_for(yes_no()).build(msgs)
    assert [(ln.text, ln.sources) for ln in result.state.lines] == [
        ("I love listening to jazz records on rainy evenings.", [1, 3, 5])
    ]


@pytest.mark.parametrize(
    ("note", "ok"),
    [
        ("Makes soups and bread at home", True),
        ("Has night vision issues", True),
        ("Is training for a marathon", True),
        ("Traded laptop screen for shaded trails", True),
        ("Time zone differences", False),
        ("Workshops and meetups are held on Saturdays", False),
        ("Clouds are on the brink of a new frontier", False),
        ("Eggs, toast, yogurt", False),
        ("Runs, deadlines, friends", False),
        ("Hopeful about industry progress", False),
        ("Various hobbies", False),
        ("", False),
    ],
)
def test_reads_as_profile_note(note: str, ok: bool) -> None:
    assert reads_as_profile_note(note) is ok


def test_is_question() -> None:
    assert is_question("Why do cats sit on laptops?")
    assert is_question('She asked "why?"')
    assert not is_question("I wonder why cats sit on laptops.")
