"""Chunking a history into chunks of at most N tokens, with a real and a scripted tokenizer."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personamem.memory import chunk_messages, split_message
from personamem.memory.chunking import SEP, Piece
from personamem.models import ScriptedModel

Count = Callable[[str], int]

SCRIPTED_COUNT: Count = ScriptedModel().count_tokens


@pytest.fixture(scope="module", params=["qwen", "scripted"])
def count(request, local_model) -> Count:
    return local_model.count_tokens if request.param == "qwen" else SCRIPTED_COUNT


def check_chunks(chunks, messages, count: Count, limit: int, start: int = 0) -> None:
    """Every invariant of chunk_messages, asserted."""
    assert [c.number for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c.pieces, "empty chunk"
        assert c.tokens == count(c.render())
        assert c.tokens <= limit
        assert c.message_ids == sorted({p.index for p in c.pieces})
    pieces = [p for c in chunks for p in c.pieces]
    # in history order, each message once (or its parts in order)
    keys = [(p.index, p.part) for p in pieces]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    expected = [
        start + i for i, m in enumerate(messages) if m["role"] != "system" and m["content"].strip()
    ]
    assert sorted({p.index for p in pieces}) == expected
    for i in expected:
        m = messages[i - start]
        parts = [p for p in pieces if p.index == i]
        assert all(p.role == m["role"] for p in parts)
        assert [p.part for p in parts] == list(range(1, len(parts) + 1))
        assert all(p.parts == len(parts) for p in parts)
        whole = Piece(i, m["role"], m["content"].strip())
        if len(parts) == 1:
            # never split a message that fits
            assert parts[0].content == m["content"].strip()
            assert count(whole.render()) <= limit
        else:
            # split only when the message alone exceeds the limit; text kept, in order (a cut
            # falls mid-word only when no space is near, so compare without whitespace)
            assert count(whole.render()) > limit
            assert "".join("".join(p.content for p in parts).split()) == "".join(
                m["content"].split()
            )
    # a split message's parts are never interleaved with other messages
    for c in chunks:
        for a, b in zip(c.pieces, c.pieces[1:], strict=False):
            assert b.index > a.index or (b.index == a.index and b.part == a.part + 1)
    # greedy: the first piece of the next chunk would not have fitted in this one
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert count(SEP.join(p.render() for p in [*a.pieces, b.pieces[0]])) > limit


# --- the real sample ----------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [700, 2500])
def test_sample_history_chunks(sample_history, count, limit):
    chunks = chunk_messages(sample_history, count, limit)
    check_chunks(chunks, sample_history, count, limit)
    assert len(chunks) > 1
    # the system message (index 0, the persona) is never in a chunk
    assert 0 not in {i for c in chunks for i in c.message_ids}
    assert "short_persona" not in "".join(c.render() for c in chunks)


def test_real_tokenizer_counts_differ_from_scripted(sample_history, local_model):
    text = sample_history[1]["content"]
    assert local_model.count_tokens(text) != SCRIPTED_COUNT(text)
    a = chunk_messages(sample_history[:80], local_model.count_tokens, 1000)
    b = chunk_messages(sample_history[:80], SCRIPTED_COUNT, 1000)
    assert [c.message_ids for c in a] != [c.message_ids for c in b]


def test_chunk_render_format(count):
    msgs = [
        {"role": "system", "content": "persona"},
        {"role": "user", "content": "  Hello there.  "},
        {"role": "assistant", "content": "Hi!"},
    ]
    (chunk,) = chunk_messages(msgs, count, 100)
    assert chunk.render() == "[1] user: Hello there.\n\n[2] assistant: Hi!"
    assert chunk.message_ids == [1, 2]


# --- splitting an overlong message -------------------------------------------------------------


def long_text(n_sentences: int = 120) -> str:
    paras = []
    for p in range(n_sentences // 10):
        sents = [
            f"Sentence {p}-{s} talks about hiking, coffee and the weather in Seattle today."
            for s in range(10)
        ]
        paras.append(" ".join(sents))
    return "\n\n".join(paras)


@pytest.mark.parametrize("limit", [40, 120, 400])
def test_overlong_message_is_split(count, limit):
    text = long_text()
    msg = {"role": "user", "content": text}
    assert count(Piece(7, "user", text).render()) > limit
    parts = split_message(7, msg, count, limit)
    assert len(parts) > 1
    for k, p in enumerate(parts, start=1):
        assert (p.index, p.role, p.part, p.parts) == (7, "user", k, len(parts))
        assert count(p.render()) <= limit
        assert p.render().startswith(f"[7] user (part {k}/{len(parts)}): ")
    assert " ".join(p.content for p in parts).split() == text.split()
    # parts prefer natural boundaries: most parts end at a sentence end
    ends = [p.content.rstrip()[-1] for p in parts[:-1]]
    assert sum(e == "." for e in ends) >= len(ends) / 2


def test_message_that_fits_is_not_split(count):
    msg = {"role": "assistant", "content": "A short reply about coffee."}
    (p,) = split_message(3, msg, count, 50)
    assert (p.part, p.parts, p.content) == (1, 1, msg["content"])
    assert p.render() == "[3] assistant: A short reply about coffee."


def test_word_without_spaces_is_cut_anywhere(count):
    word = "hiking-coffee-" * 200
    assert count(word) > 60
    parts = split_message(0, {"role": "user", "content": word}, count, 60)
    assert len(parts) > 1
    assert "".join(p.content for p in parts) == word.strip()
    assert all(count(p.render()) <= 60 for p in parts)


def test_chunks_with_an_overlong_message(count):
    msgs = [
        {"role": "user", "content": "I like tea."},
        {"role": "assistant", "content": "Tea is nice."},
        {"role": "user", "content": long_text(60)},
        {"role": "assistant", "content": "Thanks for sharing."},
        {"role": "user", "content": "Also, I run marathons."},
    ]
    limit = 150
    chunks = chunk_messages(msgs, count, limit, start=10)
    check_chunks(chunks, msgs, count, limit, start=10)
    assert any(p.parts > 1 for c in chunks for p in c.pieces)
    # the short messages before the long one are packed together, not split
    assert chunks[0].message_ids[:2] == [10, 11]


def test_too_small_limits_raise(count):
    with pytest.raises(ValueError):
        chunk_messages([{"role": "user", "content": "hi"}], count, 10)
    with pytest.raises(ValueError):
        split_message(123456, {"role": "assistant", "content": "word " * 50}, count, 12)


def test_system_and_empty_messages_skipped(count):
    msgs = [
        {"role": "system", "content": "SECRET PERSONA TEXT"},
        {"role": "user", "content": "Hi, I like hiking."},
        {"role": "assistant", "content": "   "},
        {"role": "system", "content": "ANOTHER SYSTEM PROMPT"},
        {"role": "user", "content": "And cycling."},
    ]
    chunks = chunk_messages(msgs, count, 100)
    text = "".join(c.render() for c in chunks)
    assert "PERSONA" not in text and "SYSTEM PROMPT" not in text
    assert [i for c in chunks for i in c.message_ids] == [1, 4]
    with_system = chunk_messages(msgs, count, 100, include_system=True)
    assert [i for c in with_system for i in c.message_ids] == [0, 1, 3, 4]


def test_greedy_packing_exact(count):
    """Messages are packed until the next one would not fit, then a new chunk starts."""
    msgs = [{"role": "user", "content": f"Message {i} is about topic {i}."} for i in range(30)]
    one = count(Piece(0, "user", msgs[0]["content"]).render())
    limit = one * 4 + 10
    chunks = chunk_messages(msgs, count, limit)
    check_chunks(chunks, msgs, count, limit)
    assert len(chunks) < len(msgs)
    assert all(len(c.pieces) >= 2 for c in chunks[:-1])


# --- random histories ---------------------------------------------------------------------------

WORD = st.text(
    alphabet=st.characters(
        whitelist_categories=("Ll", "Lu", "Nd", "Po"), whitelist_characters="éß漢字🙂'-"
    ),
    min_size=1,
    max_size=14,
)
CONTENT = st.lists(WORD, min_size=0, max_size=120).map(" ".join) | st.lists(
    st.lists(WORD, min_size=1, max_size=30).map(" ".join), min_size=1, max_size=4
).map("\n\n".join)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "user", "system"]), "content": CONTENT}
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    msgs=st.lists(MESSAGE, min_size=1, max_size=12),
    limit=st.integers(min_value=40, max_value=400),
    start=st.integers(min_value=0, max_value=500),
)
def test_random_histories_qwen(local_model, msgs, limit, start):
    count = local_model.count_tokens
    check_chunks(chunk_messages(msgs, count, limit, start=start), msgs, count, limit, start)


@settings(max_examples=150, deadline=None)
@given(
    msgs=st.lists(MESSAGE, min_size=1, max_size=25),
    limit=st.integers(min_value=30, max_value=400),
    start=st.integers(min_value=0, max_value=500),
)
def test_random_histories_scripted(msgs, limit, start):
    count = SCRIPTED_COUNT
    check_chunks(chunk_messages(msgs, count, limit, start=start), msgs, count, limit, start)
