"""Memory quality of finished bench runs: accuracy, paired difference to the other systems,
preference recall, line precision and verbatim share (personamem.bench.quality).

    python benchmarks/memory_quality.py RUN_DIR [RUN_DIR ...] [--threshold 0.6] [--validate]

Each run folder must have been made by `personamem bench run` (any context, snippet included);
the release and its settings are read from the run's run.json. --validate first checks the
similarity matcher on the release's own preference lists (oracle high, leave-one-out and other
persona low) and prints it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from personamem.bench import RunStore
from personamem.bench.config import RunConfig
from personamem.bench.embed import MiniLM
from personamem.bench.quality import THRESHOLD, Matcher, memory_quality, validate_matcher
from personamem.bench.runner import select_items
from personamem.data import load_release
from personamem.data.snippets import attach_snippet_histories


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--threshold", type=float, default=THRESHOLD)
    ap.add_argument("--validate", action="store_true")
    args = ap.parse_args()
    matcher = Matcher(MiniLM(), args.threshold)
    for i, run in enumerate(args.runs):
        manifest = json.loads((run / "run.json").read_text())
        cfg = RunConfig.model_validate(manifest.get("config", manifest))
        rel = load_release(cfg.data_dir, splits=(cfg.split,))
        if cfg.context == "snippet":
            attach_snippet_histories(rel, distractors=cfg.distractors, seed=cfg.seed)
        items = {q.id: q for q in rel.items}
        asked = select_items(rel, cfg)
        if args.validate and i == 0:
            v = validate_matcher(matcher, asked)
            print(f"matcher validation (threshold {args.threshold}, n={v.oracle.n}):")
            print(f"  oracle memory          {v.oracle}")
            print(f"  leave-one-out memory   {v.leave_one_out}")
            print(f"  other persona's memory {v.other_persona}")
        texts = {}
        for q in asked:
            h = rel.history(q.history_link(cfg.context))
            texts[h.content_hash] = [m["content"] for m in h.messages]
        rows = list(RunStore(run).results().values())
        rep = memory_quality(rows, items, run / "memories", texts, matcher)
        print(f"\n## {run}  ({cfg.strategy}, writer {cfg.memory_model or cfg.model})")
        for s, a in sorted(rep.accuracy.items()):
            print(f"  accuracy {s:<14} {a}")
        for s, d in sorted(rep.paired_vs.items()):
            print(f"  memory - {s:<14} {d}")
        print(f"  recall    {rep.recall}")
        if rep.recall_shuffled is not None:
            print(f"  recall of another question's memory (chance) {rep.recall_shuffled}")
        print(f"  precision {rep.precision}")
        print(f"  verbatim  {rep.verbatim}")
        print(f"  memories {rep.memories}, {rep.lines_per_memory:.1f} lines each")


if __name__ == "__main__":
    main()
