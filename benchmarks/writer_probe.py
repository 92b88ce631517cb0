"""Screen memory-writer variants fast: write each dev item's snippet memory, measure recall.

    python benchmarks/writer_probe.py [--variant profile] [--per-persona 10] [--show 5]

Runs the real ``MemoryAgent`` (the pipeline users run) with the strategy given, on the snippet
histories of the committed dev personas (``benchmarks/split.json``), and prints preference
recall (MiniLM cosine >= 0.5 to the item's ground-truth preference), the number of lines, the
verbatim share and seconds per item. No answering: a writer that misses the preference cannot
be rescued by the answerer, so recall is the quick screen; accuracy comes from ``bench run``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from tqdm import tqdm

from personamem.bench.embed import MiniLM
from personamem.bench.quality import Matcher, is_verbatim, memory_lines, share
from personamem.bench.runner import per_persona_subset
from personamem.data import load_release
from personamem.data.snippets import attach_snippet_histories
from personamem.memory import MemoryAgent, MemoryConfig
from personamem.models import get_model

HERE = Path(__file__).parent
DATA = HERE.parent.parent / "shared" / "data" / "personamem-v2-train"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--strategy", default="profile")
    ap.add_argument("--writer", default="local/qwen2.5-1.5b")
    ap.add_argument("--per-persona", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--distractors", type=int, default=0)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--show", type=int, default=0, help="print this many items' memories")
    ap.add_argument("--out", type=Path, help="write per-item lines and matches as JSON")
    args = ap.parse_args()

    split = json.loads((HERE / "split.json").read_text())
    dev = {str(p) for p in split["dev"]}
    rel = load_release(args.data, splits=("train",))
    attach_snippet_histories(rel, distractors=args.distractors, seed=args.seed)
    items = [q for q in rel.items if q.persona_id in dev and q.history_snippet]
    items = per_persona_subset(items, args.per_persona, args.seed)
    items = [q for q in items if q.preference and q.pref_type != "ask_to_forget"]
    model = get_model(args.writer)
    matcher = Matcher(MiniLM(), args.threshold)
    hits = lines_n = verb = 0
    seconds = 0.0
    rows = []
    for q in tqdm(items, desc=f"writing ({args.strategy})"):
        history = rel.history(q.history_snippet)
        agent = MemoryAgent(model, MemoryConfig(strategy=args.strategy))
        t0 = time.perf_counter()
        built = await agent.build(history.messages)
        seconds += time.perf_counter() - t0
        lines = memory_lines(built.memory)
        best = matcher.best(q.preference, lines)
        hit = best >= args.threshold
        said = [m["content"] for m in history.messages if m["role"] == "user"]
        hits += hit
        lines_n += len(lines)
        verb += sum(is_verbatim(x, said) for x in lines)
        rows.append({"id": q.id, "truth": q.preference, "lines": lines, "best": best, "hit": hit})
    n = len(items)
    print(f"strategy {args.strategy}, writer {args.writer}, {n} dev items")
    print(f"  recall    {share(hits, n)}")
    print(f"  lines     {lines_n / max(1, n):.2f} per item; verbatim {share(verb, lines_n)}")
    print(f"  seconds   {seconds / max(1, n):.1f} per item")
    for r in rows[: args.show]:
        print(f"\n  truth: {r['truth']}  (best {r['best']:.2f})")
        for x in r["lines"]:
            print(f"    - {x}")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
