"""ScoreCache: continuation scores computed once, kept on disk across runs of one folder."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench_fixtures import kv_model

from personamem.bench.modelcache import ScoreCache

MSGS = [{"role": "user", "content": "Pick a gift built around jazz records (p1)"}]
OPTS = ["A gift built around jazz records (p1)", "A generic gift (p1)"]


def test_scores_survive_a_restart_and_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "scores.jsonl"
    inner = kv_model()
    first = asyncio.run(ScoreCache(inner, path).score_continuations(MSGS, OPTS))  # type: ignore[arg-type]
    assert len(inner.scored) == 1 and path.is_file()
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"key": "torn')  # a kill mid-write
    again = kv_model()
    cache = ScoreCache(again, path)
    second = asyncio.run(cache.score_continuations(MSGS, OPTS))  # type: ignore[arg-type]
    assert second == first and again.scored == [] and cache.hits == 1
    # another model never reuses them
    other = kv_model()
    other.name = "another-model"
    asyncio.run(ScoreCache(other, path).score_continuations(MSGS, OPTS))  # type: ignore[arg-type]
    assert len(other.scored) == 1


def test_without_a_path_nothing_is_written(tmp_path: Path) -> None:
    inner = kv_model()
    cache = ScoreCache(inner)
    asyncio.run(cache.score_continuations(MSGS, OPTS))  # type: ignore[arg-type]
    asyncio.run(cache.score_continuations(MSGS, OPTS))  # type: ignore[arg-type]
    assert len(inner.scored) == 1 and cache.hits == 1
    assert list(tmp_path.iterdir()) == []
