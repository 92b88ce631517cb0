"""MCQ accuracy of one answering model from a fixed memory text: a probe that separates the
writer from the answerer.

    # the memory a bench run wrote, answered by the 1.5B model instead of the default 0.5B
    python benchmarks/answer_from_memory.py --model local/qwen2.5-1.5b \
        --memory benchmarks/bench_sample/run/memories/<hash>.md
    # an oracle memory: the ground-truth preferences of the questions, one per line
    python benchmarks/answer_from_memory.py --oracle
    # snippet mode's ceiling: each question answered from its own ground-truth preference alone
    python benchmarks/answer_from_memory.py --own-preference --data ../shared/data/personamem-v2-train \
        --split train --personas 1,8,493,714 --per-persona 10

Answers use the same scorer as ``bench run`` (each option scored as the reply, context-minus-bare
log-probability), so the numbers compare with ``bench_sample.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

from rich.progress import track

from personamem.answer.answerer import Answerer
from personamem.bench.modelcache import ScoreCache
from personamem.bench.report import wilson
from personamem.bench.runner import per_persona_subset
from personamem.data import load_release
from personamem.memory import MemoryState
from personamem.models import DEFAULT_MODEL, get_model


def oracle_memory(preferences: list[str]) -> str:
    """The distinct ground-truth preferences, one line each, in first-seen order."""
    return "\n".join(f"- {p.strip()}" for p in dict.fromkeys(p for p in preferences if p.strip()))


async def run(args: argparse.Namespace) -> None:
    items = load_release(args.data).split(args.split)
    if args.personas:
        wanted = {p.strip() for p in args.personas.split(",")}
        items = [q for q in items if q.persona_id in wanted]
    if args.per_persona is not None:
        items = per_persona_subset(items, args.per_persona, args.seed)
    own: dict[str, str] = {}
    if args.own_preference:
        items = [q for q in items if q.preference.strip() and q.pref_type != "ask_to_forget"]
        own = {q.id: oracle_memory([q.preference]) for q in items}
        memory, source = "", "each question's own ground-truth preference"
    elif args.oracle:
        memory, source = oracle_memory([q.preference for q in items]), "oracle (ground truth)"
    else:
        memory = MemoryState.from_text(Path(args.memory).read_text()).context()
        source = args.memory
    model = ScoreCache(get_model(args.model))
    answerer = Answerer(model)
    t0 = time.perf_counter()
    # The context-free baselines first (ScoreCache keeps them): scored in between the
    # answers they would evict the memory from the KV cache, and every question re-reads it.
    for q in track(items, description="baselines"):
        options = [o.strip() for o in [q.correct_answer, *q.incorrect_answers]]
        await model.score_continuations(Answerer.messages(q.query), options)
    marks: list[bool] = []
    for q in track(items, description=f"answering with {args.model}"):
        mem = own.get(q.id, memory)
        a = await answerer.mcq(q.query, [q.correct_answer, *q.incorrect_answers], memory=mem)
        marks.append(a.choice == 0)
    n, k = len(marks), sum(marks)
    print(f"memory: {source} ({len(memory.splitlines()) or 1} lines)")
    print(f"model: {args.model}")
    lo, hi = wilson(k, n)
    print(
        f"accuracy: {k}/{n} = {k / n:.1%} [{lo:.1%}, {hi:.1%}] in {time.perf_counter() - t0:.0f} s"
    )
    print("per question (1 = correct):", "".join(str(int(m)) for m in marks))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--data",
        default=os.environ.get("PERSONAMEM_SAMPLE", "/work/shared/data/personamem-v2-sample"),
        help="PersonaMem-v2 release folder (default: the real sample)",
    )
    ap.add_argument("--split", default="benchmark", help="question split (default: benchmark)")
    ap.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"answering model (default {DEFAULT_MODEL})"
    )
    ap.add_argument("--personas", help="comma-separated persona ids to keep")
    ap.add_argument("--per-persona", type=int, help="at most N questions per persona (seeded)")
    ap.add_argument("--seed", type=int, default=0, help="seed of --per-persona (default 0)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--memory", help="a memory file (lines, optional [msg N] citations)")
    src.add_argument(
        "--oracle",
        action="store_true",
        help="answer from the questions' ground-truth preferences instead",
    )
    src.add_argument(
        "--own-preference",
        action="store_true",
        help="answer each question from its own ground-truth preference alone",
    )
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
