"""Memory quality metrics: verbatim copies, paired differences, recall and precision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personamem.bench.embed import HashingEmbedder
from personamem.bench.quality import (
    Matcher,
    is_verbatim,
    memory_quality,
    paired,
    share,
    validate_matcher,
)
from personamem.data import QAItem


def item(qid: str, persona: str, pref: str, ptype: str = "neutral_preferences") -> QAItem:
    return QAItem(
        id=qid,
        split="train",
        row=1,
        persona_id=persona,
        query="q?",
        correct_answer="a",
        incorrect_answers=["b", "c", "d"],
        preference=pref,
        pref_type=ptype,
    )


def test_verbatim_needs_eight_consecutive_words() -> None:
    said = ["Yesterday I baked two loaves of sourdough bread for the neighbours, again."]
    assert is_verbatim("- baked two loaves of sourdough bread for the neighbours", said)
    assert not is_verbatim("Bakes sourdough bread for neighbours", said)
    assert not is_verbatim("baked two loaves of sourdough bread for", said)  # 7 words
    assert not is_verbatim("baked two loaves of sourdough bread for the neighbours", [])


def test_paired_interval() -> None:
    d = paired([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    assert d.value == pytest.approx(4 / 6)
    assert d.lo is not None and d.hi is not None and d.lo < d.value < d.hi
    assert paired([]).value is None
    same = paired([0.0] * 10)
    assert same.lo == same.hi == 0.0


def test_share_is_a_wilson_interval() -> None:
    s = share(5, 10)
    assert s.value == 0.5 and s.lo is not None and 0.2 < s.lo < 0.5 < (s.hi or 0) < 0.8
    assert share(0, 0).value is None


def test_matcher_validation_separates_own_from_others() -> None:
    items = [
        item("a1", "1", "Loves homemade pizza nights"),
        item("a2", "1", "Plays chess in the park"),
        item("b1", "2", "Collects vintage vinyl records"),
        item("b2", "2", "Swims in cold lakes"),
        item("a3", "1", "Do not remember pizza", "ask_to_forget"),
    ]
    v = validate_matcher(Matcher(HashingEmbedder(), 0.6), items)
    assert v.oracle.value == 1.0 and v.oracle.n == 4
    assert v.leave_one_out.value == 0.0 and v.other_persona.value == 0.0


def test_memory_quality_from_a_run(tmp_path: Path) -> None:
    items = {
        q.id: q
        for q in [
            item("a1", "1", "Loves homemade pizza nights"),
            item("a2", "1", "Plays chess in the park"),
            item("a3", "1", "Do not remember pizza", "ask_to_forget"),
        ]
    }
    mems = tmp_path / "memories"
    mems.mkdir()
    (mems / "h1.md").write_text("<!-- snippet:a1 -->\n- Loves homemade pizza nights [msg 0]\n")
    (mems / "h2.md").write_text(
        "- Owns a red bicycle\n- I said I play chess in the park every day\n"
    )
    (mems / "h3.md").write_text("- Loves homemade pizza nights\n")
    rows = [
        {"qid": "a1", "system": "memory", "mode": "mcq", "correct": True, "history_hash": "h1"},
        {"qid": "a2", "system": "memory", "mode": "mcq", "correct": False, "history_hash": "h2"},
        {"qid": "a3", "system": "memory", "mode": "mcq", "correct": True, "history_hash": "h3"},
        {"qid": "a1", "system": "retrieval", "mode": "mcq", "correct": False},
        {"qid": "a2", "system": "retrieval", "mode": "mcq", "correct": False},
        {"qid": "a3", "system": "retrieval", "mode": "mcq", "correct": True},
    ]
    texts = {"h2": ["I said I play chess in the park every day, rain or shine."]}
    rep = memory_quality(rows, items, mems, texts, Matcher(HashingEmbedder(), 0.6))
    assert rep.memories == 3
    assert rep.recall.n == 2 and rep.recall.value == 0.5  # a1 found; a2's line is not a match
    assert rep.precision.n == 4
    assert rep.verbatim.value == pytest.approx(1 / 4)
    assert rep.accuracy["memory"].value == pytest.approx(2 / 3)
    assert rep.paired_vs["retrieval"].value == pytest.approx(1 / 3)
    assert json.loads(rep.model_dump_json())["threshold"] == 0.6
    assert rep.recall_shuffled is not None and rep.recall_shuffled.value == 0.0


def test_shuffled_recall_credits_another_questions_memory(tmp_path: Path) -> None:
    items = {
        q.id: q
        for q in [
            item("a1", "1", "Loves homemade pizza nights"),
            item("a2", "1", "Plays chess in the park"),
            item("b1", "2", "Plays chess in the park"),
        ]
    }
    mems = tmp_path / "memories"
    mems.mkdir()
    # each of persona 1's memories holds the *other* question's preference
    (mems / "h1.md").write_text("- Plays chess in the park\n")
    (mems / "h2.md").write_text("- Loves homemade pizza nights\n")
    (mems / "h3.md").write_text("- Loves homemade pizza nights\n")
    rows = [
        {"qid": q, "system": "memory", "mode": "mcq", "correct": True, "history_hash": h}
        for q, h in (("a1", "h1"), ("a2", "h2"), ("b1", "h3"))
    ]
    rep = memory_quality(rows, items, mems, {}, Matcher(HashingEmbedder(), 0.6))
    assert rep.recall.value == 0.0 and rep.recall.n == 3
    # persona 2 has one memory: no other memory to shuffle with
    assert rep.recall_shuffled is not None
    assert (rep.recall_shuffled.value, rep.recall_shuffled.n) == (1.0, 2)
