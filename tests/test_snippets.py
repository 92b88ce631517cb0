"""Snippet mode: a history per question from its related conversation snippet."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench_fixtures import make_release, oracle_model

from personamem.bench import RunConfig, Runner, RunStore
from personamem.bench.embed import HashingEmbedder
from personamem.bench.runner import per_persona_subset
from personamem.data import load_release
from personamem.data.snippets import attach_snippet_histories


def test_each_question_gets_its_own_snippet_history(tmp_path: Path) -> None:
    rel = load_release(make_release(tmp_path / "r"))
    assert attach_snippet_histories(rel) == len(rel.items)
    for q in rel.items:
        h = rel.history(q.history_link("snippet"))
        assert [m["content"] for m in h.messages] == [m["content"] for m in q.related_snippet]


def test_distractors_come_from_the_same_persona_and_are_seeded(tmp_path: Path) -> None:
    rel = load_release(make_release(tmp_path / "r"))
    attach_snippet_histories(rel, distractors=2, seed=1)
    q = rel.items[0]
    h = rel.history(q.history_link("snippet"))
    assert len(h.messages) == 6  # own snippet + 2 others, 2 messages each
    persona = {
        m["content"] for x in rel.items if x.persona_id == q.persona_id for m in x.related_snippet
    }
    assert {m["content"] for m in h.messages} <= persona
    first = [m["content"] for m in h.messages]
    rel2 = load_release(make_release(tmp_path / "r2"))
    attach_snippet_histories(rel2, distractors=2, seed=1)
    assert [
        m["content"] for m in rel2.history(rel2.items[0].history_link("snippet")).messages
    ] == first
    rel3 = load_release(make_release(tmp_path / "r3"))
    attach_snippet_histories(rel3, distractors=2, seed=2)
    orders = {
        tuple(m["content"] for m in rel3.history(x.history_link("snippet")).messages)
        for x in rel3.items
    }
    assert orders != {tuple(first)}


def test_per_persona_subset_is_balanced_and_stable(tmp_path: Path) -> None:
    rel = load_release(make_release(tmp_path / "r", personas=3))
    sub = per_persona_subset(rel.items, 2, seed=0)
    assert len(sub) == 6
    assert {q.persona_id for q in sub} == {"1", "2", "3"}
    assert sub == per_persona_subset(rel.items, 2, seed=0)
    assert per_persona_subset(rel.items, 0) == []


def test_bench_runs_in_snippet_mode(tmp_path: Path) -> None:
    data = make_release(tmp_path / "r")
    cfg = RunConfig(
        data_dir=str(data),
        model="scripted",
        cache_dir=str(tmp_path / "cache"),
        context="snippet",
        systems=["memory", "no-history", "long-context"],
        chunk_tokens=400,
        memory_tokens=300,
        strategy="extract",
    )
    out = tmp_path / "run"
    runner = Runner(cfg, out, model=oracle_model(), embedder_factory=HashingEmbedder)
    summary = asyncio.run(runner.run())
    rows = list(RunStore(out).results().values())
    assert summary.errors == 0 and len(rows) == 8 * 3
    assert {r["history"] for r in rows if r["system"] == "memory"} == {
        f"snippet:{q.id}" for q in load_release(data).items
    }
    mem = [r for r in rows if r["system"] == "memory"]
    assert sum(r["correct"] for r in mem) == len(mem)  # each memory holds its own preference
