"""One pipeline: the memory the benchmark measures is the memory a store user gets.

The same history goes through the benchmark's ``memory`` system and through ``Memory.add`` +
``flush`` with the same (deterministic, scripted) model and settings; the memories must be
byte-identical. The history exercises every rule that once ran in the store only: a forget
request, a fact about someone else, a text someone else wrote, a secret, a message longer than a
chunk, system text.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from bench_fixtures import make_release
from memory_fakes import echo_model

from personamem.answer import Answerer
from personamem.bench.config import RunConfig
from personamem.bench.systems.base import Env
from personamem.bench.systems.memory import Memory as BenchMemory
from personamem.data import load_history
from personamem.models.base import Message
from personamem.store import Memory

HISTORY: list[Message] = [
    {"role": "system", "content": "Persona: loves opera and keeps bees (generator text)."},
    {"role": "user", "content": "I love hiking in the Alps every summer with my old boots."},
    {"role": "assistant", "content": "That sounds wonderful."},
    {"role": "user", "content": "My friend Marco loves heavy metal concerts in Berlin clubs."},
    {"role": "assistant", "content": "Nice."},
    {"role": "user", "content": "I play jazz piano at a small bar on Fridays."},
    {"role": "assistant", "content": "Fun!"},
    {"role": "user", "content": "Reach me at emily.rose@example.org about my pottery classes."},
    {"role": "assistant", "content": "Noted."},
    {
        "role": "user",
        "content": " ".join(
            f"I collect vintage stamp number {w} from old letters." for w in "abcdefghijklmnop"
        ),
    },
    {"role": "assistant", "content": "Quite a collection."},
    {"role": "user", "content": "Please forget that I play jazz piano."},
    {"role": "assistant", "content": "Done."},
    {"role": "user", "content": "I still play jazz piano every week at that bar downtown."},
    {"role": "user", "content": "I brew cold coffee with oat milk every single morning."},
]


def bench_memory(tmp_path: Path, strategy: str, notes: bool) -> str:
    root = make_release(tmp_path / "release", personas=1)
    link = "data/chat_history_32k/history_p1.json"
    (root / link).write_text(json.dumps({"metadata": {}, "chat_history": HISTORY}))
    cfg = RunConfig(
        data_dir=str(root),
        model="scripted",
        chunk_tokens=60,
        memory_tokens=90,
        strategy=strategy,
        notes=notes,
        cache_dir=str(tmp_path / "cache"),
    )
    model = echo_model()
    env = Env(
        model=model,
        answerer=Answerer(model),
        config=cfg,
        cache_dir=tmp_path / "cache",
        run_dir=tmp_path / "run",
    )
    history = load_history(root / link)
    prepared = asyncio.run(BenchMemory(env).prepare(history, link))
    return prepared.data["memory"]


def store_memory(tmp_path: Path, strategy: str, notes: bool, batches: int) -> str:
    mem = Memory(
        f"sqlite:///{tmp_path / 'store.db'}",
        echo_model(),
        chunk_tokens=60,
        memory_tokens=90,
        strategy=strategy,
        notes=notes,
    )
    try:
        size = -(-len(HISTORY) // batches)
        for i in range(0, len(HISTORY), size):  # updates run as full chunks arrive
            mem.add(HISTORY[i : i + size], user_id="emily", update=batches > 1)
        mem.flush("emily")
        assert mem.get("emily").pending_messages == 0
        assert mem.store.check() == []
        return mem.get("emily").text
    finally:
        mem.close()


@pytest.mark.parametrize(("strategy", "notes"), [("extract", True), ("select", False)])
@pytest.mark.parametrize("batches", [1, 4])
def test_bench_and_store_give_byte_identical_memories(
    tmp_path: Path, strategy: str, notes: bool, batches: int
) -> None:
    bench = bench_memory(tmp_path, strategy, notes)
    store = store_memory(tmp_path, strategy, notes, batches)
    assert store == bench
    # The rules ran (on both paths): the history is not trivially empty or unfiltered.
    assert "hiking" in bench.lower() or "alps" in bench.lower()
    assert "Marco" not in bench  # about someone else
    assert "emily.rose@example.org" not in bench  # a secret
    assert "jazz" not in bench.lower()  # forgotten, and kept out when said again
    assert "opera" not in bench.lower()  # system text
