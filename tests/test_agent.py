"""The memory update loop M_i = f(C_i, M_{i-1}) with a scripted model (control flow only)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from conftest import all_prompt_text, facts_json, notes_json, prompt_kind

from personamem.memory import (
    EMPTY,
    MemoryAgent,
    MemoryLine,
    MemoryState,
    MemoryUpdateError,
)
from personamem.models import ModelError, ScriptedModel
from personamem.models.base import Message

Handler = str | Exception | Callable[[list[Message]], "str | Exception"] | None


def scripted(
    extract: Handler = None,
    compress: Handler = None,
    yesno: Handler = None,
    rewrite: Handler = None,
) -> ScriptedModel:
    """A scripted model answering each kind of memory prompt with its own handler."""
    defaults = {
        "extract": '{"facts": []}',
        "compress": '{"notes": []}',
        "yesno": "no",
        "rewrite": "",
        "other": "I don't know.",
    }
    handlers = {"extract": extract, "compress": compress, "yesno": yesno, "rewrite": rewrite}

    def reply(msgs: list[Message]) -> str | Exception:
        kind = prompt_kind(msgs)
        h = handlers.get(kind)
        if h is None:
            return defaults[kind]
        return h(msgs) if callable(h) and not isinstance(h, Exception) else h

    return ScriptedModel(default=reply)


def chat_of(msgs: list[Message]) -> str:
    """The user turn of a prompt (the chat text the model was shown)."""
    return msgs[-1]["content"]


def user_turns(msgs: list[Message]) -> list[tuple[int, str]]:
    """(index, text) of the user messages rendered in a prompt."""
    return [
        (int(m.group(1)), m.group(2).strip())
        for m in re.finditer(r"\[(\d+)\] user(?: \(part \d+/\d+\))?: ([^\n]*)", chat_of(msgs))
    ]


def kinds(model: ScriptedModel) -> list[str]:
    return [prompt_kind(c) for c in model.calls]


def history(*user_texts: str, assistant: str = "Okay, noted.") -> list[Message]:
    msgs: list[Message] = [{"role": "system", "content": "PERSONA: Jane Roe, 41, Lisbon."}]
    for t in user_texts:
        msgs += [{"role": "user", "content": t}, {"role": "assistant", "content": assistant}]
    return msgs


def state_of(*lines: str) -> MemoryState:
    return MemoryState(lines=[MemoryLine(text=t, sources=[1]) for t in lines])


def snapshot(state: MemoryState) -> dict:
    return json.loads(state.model_dump_json())


# --- causality ----------------------------------------------------------------------------------


# distinct words (the merge compares words, not digits)
MARKERS = [f"MARK{a}{b}" for a in "QXZ" for b in "FJKV"]


def echo_markers(msgs: list[Message]) -> str:
    """Extraction: one fact per marker the chat shows, citing the message it came from."""
    facts = [
        (f"Practises {m} regularly", "user", [i])
        for i, text in user_turns(msgs)
        for m in re.findall(r"MARK[A-Z]{2}", text)
    ]
    return facts_json(*facts)


async def test_prompts_never_see_later_chunks():
    texts = [f"I spent the weekend on hobby {m} with friends and family." for m in MARKERS]
    msgs = history(*texts)
    model = scripted(extract=echo_markers)
    agent = MemoryAgent(model, chunk_tokens=60, memory_tokens=2000, strategy="extract")
    chunks = agent.chunk(msgs)
    assert len(chunks) >= 4
    seen: list[tuple[int, int, str]] = []  # (chunk, calls so far, memory after)
    result = await agent.build(
        msgs, on_chunk=lambda r, s: seen.append((r.chunk, len(model.calls), s.text))
    )
    assert [s[0] for s in seen] == [c.number for c in chunks]
    start = 0
    for (number, end, memory), chunk in zip(seen, chunks, strict=True):
        last = max(chunk.message_ids)
        later = {MARKERS[(i - 1) // 2] for c in chunks[number + 1 :] for i in c.message_ids}
        calls = model.calls[start:end]
        assert calls, f"chunk {number} made no model call"
        for call in calls:
            text = "\n".join(m["content"] for m in call)
            assert not any(re.search(rf"\b{m}\b", text) for m in later)
            assert all(int(i) <= last for i in re.findall(r"\[(\d+)\] (?:user|assistant)", text))
        # the memory after chunk i holds nothing from later chunks
        assert not any(re.search(rf"\b{m}\b", memory) for m in later)
        start = end
    # and the final memory holds every fact the model returned
    for m in MARKERS:
        assert f"Practises {m} regularly" in result.memory
    assert result.chunks == len(chunks) and result.state.chunks_done == len(chunks)


async def test_causality_on_the_real_history(sample_root, sample_history):
    from personamem.data import load_release

    queries = [q.query for q in load_release(sample_root).items]
    model = scripted(extract=lambda m: facts_json(("Writes emails for work often", "user")))
    agent = MemoryAgent(model, chunk_tokens=3000, memory_tokens=2048, strategy="extract")
    chunks = agent.chunk(sample_history)
    bounds: list[int] = []
    await agent.build(sample_history, on_chunk=lambda r, s: bounds.append(len(model.calls)))
    assert len(bounds) == len(chunks) > 3
    start = 0
    for chunk, end in zip(chunks, bounds, strict=True):
        for call in model.calls[start:end]:
            text = "\n".join(m["content"] for m in call)
            ids = [int(i) for i in re.findall(r"\[(\d+)\] (?:user|assistant)", text)]
            assert all(i <= max(chunk.message_ids) for i in ids)
        start = end
    prompts = all_prompt_text(model.calls)
    for q in queries:
        assert q not in prompts
    # the check can fail: a query written into the history as its last message reaches the
    # model with the last chunk, and only then
    probe = queries[0]
    history = [*sample_history, {"role": "user", "content": probe}]
    model = scripted(extract=lambda m: facts_json(("Writes emails for work often", "user")))
    agent = MemoryAgent(model, chunk_tokens=3000, memory_tokens=2048, strategy="extract")
    bounds = []
    await agent.build(history, on_chunk=lambda r, s: bounds.append(len(model.calls)))
    seen = [
        probe in all_prompt_text(model.calls[a:b])
        for a, b in zip([0, *bounds[:-1]], bounds, strict=True)
    ]
    assert seen == [False] * (len(bounds) - 1) + [True]


async def test_update_never_modifies_its_input_state():
    model = scripted(extract=facts_json("Enjoys long hikes in the mountains"))
    agent = MemoryAgent(model, chunk_tokens=200, memory_tokens=500, strategy="extract")
    (chunk,) = agent.chunk(history("I went hiking in the mountains again."))
    state = state_of("Drinks black coffee every morning")
    before = snapshot(state)
    new, report = await agent.update(state, chunk)
    assert snapshot(state) == before
    assert [ln.text for ln in new.lines] == [
        "Drinks black coffee every morning",
        "Enjoys long hikes in the mountains",
    ]
    assert new.lines[1].sources == [1]
    assert report.added == 1 and not report.kept_previous
    assert new.chunks_done == 1 and new.next_message == 3
    assert new.tokens == model.count_tokens(new.text)


# --- what is stored -------------------------------------------------------------------------------


async def test_facts_returned_are_stored_with_citations():
    msgs = history("I bake sourdough bread every Sunday.", "My job is nursing at a hospital.")
    model = scripted(
        extract=lambda m: facts_json(
            *[
                ("Bakes sourdough bread every Sunday", "user", [i])
                if "sourdough" in t
                else ("Works as a nurse in a hospital", "user", [i, 99])
                for i, t in user_turns(m)
            ]
        )
    )
    result = await MemoryAgent(
        model, chunk_tokens=200, memory_tokens=500, strategy="extract"
    ).build(msgs)
    assert result.memory.splitlines() == [
        "- Bakes sourdough bread every Sunday [msg 1]",
        "- Works as a nurse in a hospital [msg 3]",  # 99 is not in the chunk: dropped
    ]
    assert result.state.context().splitlines()[0] == "- Bakes sourdough bread every Sunday"
    assert result.memory_tokens == model.count_tokens(result.memory)
    assert result.tokens_in > 0 and result.tokens_out > 0
    assert result.tokens_in == sum(r.tokens_in for r in result.reports)


async def test_third_party_facts_are_not_stored():
    msgs = history("My sister adores opera and I like jazz.")
    model = scripted(
        extract=facts_json(
            ("Adores opera performances", "other", [1]),
            ("Likes listening to jazz", "user", [1]),
            ("Sister lives in Porto city", "other", [1]),
        )
    )
    result = await MemoryAgent(
        model, chunk_tokens=200, memory_tokens=500, strategy="extract"
    ).build(msgs)
    assert "jazz" in result.memory
    assert "opera" not in result.memory and "Porto" not in result.memory


async def test_same_fact_twice_is_one_line():
    msgs = history("I love jazz.", "Jazz again tonight!")
    model = scripted(
        extract=lambda m: facts_json(
            *[("Loves listening to jazz music", "user", [i]) for i, _ in user_turns(m)]
        )
    )
    result = await MemoryAgent(model, chunk_tokens=30, memory_tokens=500, strategy="extract").build(
        msgs
    )
    assert result.chunks == 2
    assert result.state.lines == [MemoryLine(text="Loves listening to jazz music", sources=[1, 3])]


OUTDOORS = "Prefers running outdoors in the morning"
TREADMILL = "Prefers running on a treadmill in the morning"


@pytest.mark.parametrize("answer, expected", [("yes", 1), ("no", 2)])
async def test_updated_preference_replaces_old_line_when_model_says_so(answer, expected):
    msgs = history("These days I run on a treadmill in the morning.")
    model = scripted(extract=facts_json(TREADMILL), yesno=answer)
    agent = MemoryAgent(model, chunk_tokens=200, memory_tokens=500, strategy="extract")
    (chunk,) = agent.chunk(msgs)
    new, report = await agent.update(state_of(OUTDOORS), chunk)
    assert "yesno" in kinds(model)
    yes_no = next(c for c in model.calls if prompt_kind(c) == "yesno")
    assert OUTDOORS in chat_of(yes_no) and TREADMILL in chat_of(yes_no)
    assert len(new.lines) == expected
    assert new.lines[-1].text == TREADMILL
    assert report.removed == (1 if answer == "yes" else 0)


# --- the cap --------------------------------------------------------------------------------------

LONG_FACTS = [
    "Enjoys hiking in the Cascade mountains on weekends",
    "Drinks pour-over coffee from local Seattle roasters",
    "Works as a product manager for cloud software",
    "Practices yoga three times a week before work",
    "Reads science fiction novels before going to sleep",
]


async def test_over_cap_memory_is_compressed():
    compressed = ["Likes hiking and coffee [msg 1]", "Product manager who does yoga [msg 1, 77]"]
    model = scripted(extract=facts_json(*LONG_FACTS), compress=notes_json(*compressed))
    agent = MemoryAgent(model, chunk_tokens=200, memory_tokens=30, strategy="extract")
    (chunk,) = agent.chunk(history("I hiked, had coffee, then yoga before work."))
    new, report = await agent.update(MemoryState(), chunk)
    assert kinds(model).count("compress") == 1
    compress_call = next(c for c in model.calls if prompt_kind(c) == "compress")
    assert all(f in chat_of(compress_call) for f in LONG_FACTS)  # it saw the merged memory
    assert "30" in chat_of(compress_call)  # and the limit
    assert [ln.text for ln in new.lines] == [
        "Likes hiking and coffee",
        "Product manager who does yoga",
    ]
    assert new.lines[1].sources == [1]  # 77 was never a source: dropped
    assert new.tokens <= 30 and new.tokens == model.count_tokens(new.text)
    assert any("compressed" in w for w in report.warnings)
    assert not report.kept_previous


@pytest.mark.parametrize(
    "reply",
    [
        notes_json(*LONG_FACTS),  # not shorter
        "Here is a shorter version: hiking, coffee, yoga.",  # not JSON
        notes_json(),  # nothing
        ModelError("server down"),  # (this one raises, see below)
    ],
    ids=["too-long", "not-json", "empty", "error"],
)
async def test_failed_compression_keeps_previous_memory(reply):
    previous = state_of("Enjoys hiking on weekends", "Drinks black coffee")
    model = scripted(extract=facts_json(*LONG_FACTS), compress=reply)
    agent = MemoryAgent(model, chunk_tokens=200, memory_tokens=40, strategy="extract")
    assert model.count_tokens(previous.text) <= 40
    (chunk,) = agent.chunk(history("I hiked, had coffee, then yoga before work."))
    before = snapshot(previous)
    if isinstance(reply, Exception):
        with pytest.raises(MemoryUpdateError):
            await agent.update(previous, chunk)
        assert snapshot(previous) == before
        return
    new, report = await agent.update(previous, chunk)
    assert "compress" in kinds(model)
    assert [ln.text for ln in new.lines] == [ln.text for ln in previous.lines]
    assert report.kept_previous
    assert any("cap" in w for w in report.warnings)
    assert any("cap" in w for w in new.warnings)
    assert new.tokens <= 40
    assert snapshot(previous) == before


async def test_kept_previous_report_adds_nothing():
    """When the cap forces the previous memory to be kept, the report must not claim additions."""
    model = scripted(extract=facts_json(*LONG_FACTS), compress=notes_json(*LONG_FACTS))
    agent = MemoryAgent(model, chunk_tokens=200, memory_tokens=40, strategy="extract")
    (chunk,) = agent.chunk(history("I hiked, had coffee, then yoga before work."))
    new, report = await agent.update(state_of("Enjoys hiking on weekends"), chunk)
    assert report.kept_previous
    assert [ln.text for ln in new.lines] == ["Enjoys hiking on weekends"]
    assert report.added == 0


async def test_cap_holds_over_many_chunks_and_lines_are_whole():
    hobbies = [
        "kayaking",
        "pottery",
        "chess",
        "salsa",
        "archery",
        "fencing",
        "rowing",
        "knitting",
        "surfing",
        "origami",
    ]
    texts = [f"Today I tried {h} and loved it a lot." for h in hobbies]

    def extract(m: list[Message]) -> str:
        return facts_json(
            *[(f"Loved trying {t.split()[3]} recently", "user", [i]) for i, t in user_turns(m)]
        )

    def compress(m: list[Message]) -> str:
        # a sloppy compressor: returns far too much, then is cut by max_tokens mid-note
        notes = [ln.lstrip("- ") for ln in chat_of(m).splitlines() if ln.startswith("- ")]
        return notes_json(*(notes * 20))

    facts = {f"Loved trying {h} recently" for h in hobbies}
    model = scripted(extract=extract, compress=compress)
    agent = MemoryAgent(model, chunk_tokens=40, memory_tokens=45, strategy="extract")
    memories: list[MemoryState] = []
    result = await agent.build(history(*texts), on_chunk=lambda r, s: memories.append(s))
    assert result.chunks >= 5
    assert "compress" in kinds(model)
    for s in memories:
        assert s.tokens <= 45
        assert model.count_tokens(s.text) <= 45
        for ln in s.lines:  # every line is a whole fact, never cut mid-sentence
            assert ln.text in facts
    assert result.memory_tokens <= 45
    assert result.warnings  # the cap was hit and said so


async def test_rewrite_output_cut_by_max_tokens_leaves_no_half_sentence():
    """A rewrite reply cut off by max_tokens must not leave a truncated line in the memory."""
    full = [f"- Enjoys cooking Italian dish number {i} for friends [msg 1]" for i in range(14)]

    def compress(m: list[Message]) -> str:
        lines = [ln.lstrip("- ") for ln in chat_of(m).splitlines() if ln.startswith("- ")]
        return notes_json(lines[0], lines[-1])

    model = scripted(rewrite="\n".join(full), compress=compress)
    agent = MemoryAgent(model, chunk_tokens=200, memory_tokens=60, strategy="rewrite")
    (chunk,) = agent.chunk(history("I cooked Italian food for friends again."))
    new, _ = await agent.update(MemoryState(), chunk)
    assert model.count_tokens("\n".join(full)) > 60 + 64  # the reply really was cut
    whole = {ln.removeprefix("- ").removesuffix(" [msg 1]") for ln in full}
    assert new.lines, "the memory should hold the complete lines"
    for ln in new.lines:
        assert ln.text in whole, f"truncated line kept in memory: {ln.text!r}"


# --- failures -------------------------------------------------------------------------------------


async def test_model_error_raises_and_keeps_input():
    model = scripted(extract=ModelError("connection refused"))
    agent = MemoryAgent(model, chunk_tokens=200, memory_tokens=500, strategy="extract")
    (chunk,) = agent.chunk(history("I like tea."))
    state = state_of("Drinks black coffee every morning")
    before = snapshot(state)
    with pytest.raises(MemoryUpdateError, match="connection refused"):
        await agent.update(state, chunk)
    assert snapshot(state) == before


async def test_model_error_in_yes_no_step_raises():
    model = scripted(extract=facts_json(TREADMILL), yesno=ModelError("timeout"))
    agent = MemoryAgent(model, chunk_tokens=200, memory_tokens=500, strategy="extract")
    (chunk,) = agent.chunk(history("Treadmill runs now."))
    state = state_of(OUTDOORS)
    with pytest.raises(MemoryUpdateError, match="timeout"):
        await agent.update(state, chunk)
    assert [ln.text for ln in state.lines] == [OUTDOORS]


async def test_build_records_failure_and_goes_on():
    msgs = history("I like tea a lot.", "I play chess on Fridays.", "I grow tomatoes.")
    replies = iter(
        [
            facts_json(("Drinks tea every day", "user", [1])),
            ModelError("HTTP 503"),
            facts_json(("Grows tomatoes at home", "user", [5])),
        ]
    )
    model = scripted(extract=lambda m: next(replies))
    agent = MemoryAgent(model, chunk_tokens=20, memory_tokens=500, strategy="extract")
    assert len(agent.chunk(msgs)) == 3
    result = await agent.build(msgs)
    assert result.chunks == 3
    assert [ln.text for ln in result.state.lines] == [
        "Drinks tea every day",
        "Grows tomatoes at home",
    ]
    assert result.reports[1].kept_previous and not result.reports[0].kept_previous
    assert any("chunk 1" in w and "HTTP 503" in w for w in result.warnings)
    assert "HTTP 503" in result.reports[1].warnings[0]


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "Sure! The user seems to like hiking.",
        '{"facts": "likes hiking"}',
        '{"notes": []}',
        "null",
    ],
    ids=["empty", "prose", "not-a-list", "wrong-key", "null"],
)
async def test_malformed_output_keeps_previous_memory(reply):
    model = scripted(extract=reply)
    agent = MemoryAgent(model, chunk_tokens=200, memory_tokens=500, strategy="extract")
    (chunk,) = agent.chunk(history("I like hiking in the hills."))
    previous = state_of("Drinks black coffee every morning", "Works as a nurse")
    new, report = await agent.update(previous, chunk)
    assert [ln.model_dump() for ln in new.lines] == [ln.model_dump() for ln in previous.lines]
    assert report.added == 0
    assert report.warnings, "malformed output should be reported"


async def test_truncated_json_keeps_complete_facts():
    cut = (
        '{"facts": [{"fact": "Enjoys hiking in the hills", "about": "user", "messages": [1]}, {"fa'
    )
    model = scripted(extract=cut)
    agent = MemoryAgent(model, chunk_tokens=200, memory_tokens=500, strategy="extract")
    (chunk,) = agent.chunk(history("I like hiking in the hills."))
    new, _ = await agent.update(MemoryState(), chunk)
    assert [ln.text for ln in new.lines] == ["Enjoys hiking in the hills"]


async def test_bad_fact_items_are_ignored():
    reply = json.dumps(
        {
            "facts": [
                "just a string",
                {"fact": 12, "about": "user", "messages": [1]},
                {"fact": "short", "about": "user", "messages": [1]},
                {"fact": "Collects vintage vinyl records", "about": "user", "messages": ["1"]},
            ]
        }
    )
    model = scripted(extract=reply)
    agent = MemoryAgent(model, chunk_tokens=200, memory_tokens=500, strategy="extract")
    (chunk,) = agent.chunk(history("I collect vinyl."))
    new, _ = await agent.update(MemoryState(), chunk)
    assert new.lines == [MemoryLine(text="Collects vintage vinyl records", sources=[])]


# --- forgetting -------------------------------------------------------------------------------


def yes_if_forgetting(msgs: list[Message]) -> str:
    return "yes" if "forget" in chat_of(msgs).lower() else "no"


async def test_forget_request_removes_matching_line():
    model = scripted(yesno=yes_if_forgetting)
    agent = MemoryAgent(model, chunk_tokens=200, memory_tokens=500, strategy="extract")
    msgs = [{"role": "user", "content": "Please forget that I practice woodworking"}]
    (chunk,) = agent.chunk(msgs, start=40)
    previous = state_of("Practices woodworking as a hobby", "Drinks black coffee every morning")
    new, report = await agent.update(previous, chunk)
    assert [ln.text for ln in new.lines] == ["Drinks black coffee every morning"]
    assert report.removed == 1
    assert new.forgotten and "woodworking" in new.forgotten[0]
    # the forget request itself is not a fact to extract: the chunk has no other user text
    assert len(previous.lines) == 2


@pytest.mark.parametrize(
    "later_fact",
    [
        "Enjoys woodworking",
        "Practices woodworking as a hobby",
        "Practices woodworking in a home workshop",
    ],
)
async def test_forgotten_fact_is_not_re_added(later_fact):
    msgs = [
        {"role": "user", "content": "Please forget that I practice woodworking"},
        {"role": "user", "content": "I finished a new oak bookshelf this weekend."},
        {"role": "assistant", "content": "Congratulations!"},
    ]
    model = scripted(
        yesno=yes_if_forgetting,
        extract=lambda m: (
            facts_json((later_fact, "user", [1]))
            if any(i == 1 for i, _ in user_turns(m))
            else facts_json()
        ),
    )
    agent = MemoryAgent(model, chunk_tokens=24, memory_tokens=500, strategy="extract")
    assert [c.message_ids for c in agent.chunk(msgs)] == [[0], [1, 2]]
    result = await agent.build(msgs, state=state_of("Practices woodworking as a hobby"))
    assert "woodworking" not in result.memory.lower(), result.memory


async def test_public_forget_and_non_requests():
    model = scripted(yesno="no")
    agent = MemoryAgent(model, chunk_tokens=200, memory_tokens=500, strategy="extract")
    state = state_of("Enjoys wine tasting events", "Drinks black coffee every morning")
    new, removed = await agent.forget(state, "I enjoy wine tasting events")
    assert removed == 1 and [ln.text for ln in new.lines] == ["Drinks black coffee every morning"]
    assert len(state.lines) == 2  # input untouched
    # "I forget my keys" is not a request to forget anything
    model2 = scripted(extract=facts_json("Often forgets keys at home"))
    agent2 = MemoryAgent(model2, chunk_tokens=200, memory_tokens=500, strategy="extract")
    (chunk,) = agent2.chunk(history("I forget my keys a lot, it drives me crazy."))
    new2, report = await agent2.update(state, chunk)
    assert report.removed == 0 and len(new2.lines) == 3


# --- privacy --------------------------------------------------------------------------------------

EMAIL = "jane.roe@example.com"
CARD = "4111 1111 1111 1111"


def copy_user_text(msgs: list[Message]) -> str:
    """A leaky extractor: copies every user turn it sees into the memory."""
    return facts_json(*[(f"Said: {t}", "user", [i]) for i, t in user_turns(msgs)])


@pytest.mark.parametrize("strategy", ["extract", "rewrite"])
async def test_secrets_never_reach_model_or_memory(strategy):
    msgs = history(
        f"Send the invoice to {EMAIL} and charge my card {CARD}, thanks.",
        "I prefer paper invoices for my bakery.",
    )

    def rewrite(m: list[Message]) -> str:
        return "\n".join(f"- Said: {t} [msg {i}]" for i, t in user_turns(m))

    model = scripted(extract=copy_user_text, rewrite=rewrite)
    agent = MemoryAgent(model, chunk_tokens=300, memory_tokens=500, strategy=strategy)
    result = await agent.build(msgs)
    prompts = all_prompt_text(model.calls)
    assert model.calls
    assert EMAIL not in prompts and "4111" not in prompts
    assert "[REDACTED email]" in prompts and "[REDACTED card]" in prompts
    assert EMAIL not in result.memory and "4111" not in result.memory
    assert "paper invoices" in result.memory  # ordinary text still goes through
    kinds_found = {r["kind"] for rep in result.reports for r in rep.redactions}
    assert {"email", "card"} <= kinds_found
    assert all(EMAIL not in json.dumps(rep.redactions) for rep in result.reports)


async def test_secret_written_by_the_model_is_removed_from_memory():
    model = scripted(
        extract=facts_json(f"Uses the address {EMAIL} for invoices", "Runs a small bakery shop")
    )
    agent = MemoryAgent(model, chunk_tokens=200, memory_tokens=500, strategy="extract")
    (chunk,) = agent.chunk(history("I run a bakery."))
    new, report = await agent.update(MemoryState(), chunk)
    assert EMAIL not in new.text
    assert "Runs a small bakery shop" in new.text
    assert any(r["kind"] == "email" for r in report.redactions)


async def test_line_that_was_only_a_secret_is_dropped():
    model = scripted(extract=facts_json(EMAIL, "Runs a small bakery shop"))
    agent = MemoryAgent(model, chunk_tokens=200, memory_tokens=500, strategy="extract")
    (chunk,) = agent.chunk(history("I run a bakery."))
    new, _ = await agent.update(MemoryState(), chunk)
    assert [ln.text for ln in new.lines] == ["Runs a small bakery shop"]


async def test_system_persona_never_reaches_the_model(sample_history):
    system = sample_history[0]
    assert system["role"] == "system"
    others = "\n".join(m["content"] for m in sample_history[1:])
    persona_lines = [
        ln.strip()
        for ln in system["content"].splitlines()
        if len(ln.strip()) > 30 and ln.strip() not in others
    ]
    assert len(persona_lines) > 5
    for strategy in ("extract", "rewrite"):
        model = scripted(extract=facts_json("Writes many work emails"), rewrite="- Writes emails")
        agent = MemoryAgent(model, chunk_tokens=2000, memory_tokens=1000, strategy=strategy)
        await agent.build(sample_history[:60])
        prompts = all_prompt_text(model.calls)
        assert model.calls
        for ln in persona_lines:
            assert ln not in prompts


# --- the rewrite strategy ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        "Sure! Here is a warmer version of your email:\n\nDear team, I hope you are well.",
        "",
        "The user likes hiking. They also like coffee.\nThey work in tech.\n- Likes hiking",
    ],
    ids=["continues-chat", "empty", "mostly-prose"],
)
async def test_rewrite_non_memory_output_keeps_previous(reply):
    model = scripted(rewrite=reply)
    agent = MemoryAgent(model, chunk_tokens=200, memory_tokens=500, strategy="rewrite")
    (chunk,) = agent.chunk(history("Can you make this email warmer?"))
    previous = state_of("Drinks black coffee every morning")
    new, report = await agent.update(previous, chunk)
    assert [ln.text for ln in new.lines] == ["Drinks black coffee every morning"]
    assert report.kept_previous and report.warnings


async def test_rewrite_replaces_memory_and_checks_citations():
    model = scripted(
        rewrite="- Drinks black coffee every morning [msg 1]\n- Likes warm emails [msg 3, 500]\n"
    )
    agent = MemoryAgent(model, chunk_tokens=200, memory_tokens=500, strategy="rewrite")
    (chunk,) = agent.chunk(history("Hello.", "Can you make this email warmer?"))
    previous = state_of("Drinks black coffee every morning")
    new, report = await agent.update(previous, chunk)
    call = model.calls[0]
    assert prompt_kind(call) == "rewrite"
    assert "Drinks black coffee every morning" in chat_of(call)  # previous memory is shown
    assert "[3] user: Can you make this email warmer?" in chat_of(call)
    assert new.lines == [
        MemoryLine(text="Drinks black coffee every morning", sources=[1]),
        MemoryLine(text="Likes warm emails", sources=[3]),
    ]
    assert report.added == 1 and report.removed == 0
    assert agent.prompt_version == "rewrite-v1"


# --- the memory text ----------------------------------------------------------------------------


def test_memory_text_round_trip():
    s = MemoryState.from_text(
        "- Likes jazz [msg 3, 7]\n* Drinks tea\n1. Works nights [12]\n\nNo previous memory.\n"
    )
    assert s.lines == [
        MemoryLine(text="Likes jazz", sources=[3, 7]),
        MemoryLine(text="Drinks tea"),
        MemoryLine(text="Works nights", sources=[12]),
    ]
    assert MemoryState.from_text(s.text).lines == s.lines
    assert s.context() == "- Likes jazz\n- Drinks tea\n- Works nights"
    assert MemoryState().text == EMPTY


def test_memory_text_skips_comment_lines():
    # A bench run folder's memory file starts with the history it came from.
    s = MemoryState.from_text("<!-- data/chat_history_32k/u.json -->\n- Likes jazz [msg 3]\n")
    assert s.lines == [MemoryLine(text="Likes jazz", sources=[3])]


def test_unknown_option_rejected():
    with pytest.raises(TypeError):
        MemoryAgent(ScriptedModel(), bogus=1)
