"""Base vs trained writer on the SFT run's examples, the way the profile strategy calls it
(json-schema constrained, greedy, 48 tokens): prints a markdown table and the exact-match counts.

    PERSONAMEM_THREADS=1 python benchmarks/training_check.py runs/train/writer-sft \
        personamem/models/adapters/writer-0.5b.gguf --train 4
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from personamem.memory.profile import profile_schema
from personamem.models import get_model
from personamem.train.data import build_examples


async def main(run: str, adapter: str, n_train: int) -> None:
    cfg = json.loads((Path(run) / "config.json").read_text())
    split = {}
    for line in (Path(run) / "examples.jsonl").read_text().splitlines():
        e = json.loads(line)
        split[e["id"]] = e["split"]
    examples = build_examples(cfg["data"], personas=cfg["personas"], kinds=cfg["kinds"])
    held = [e for e in examples if split.get(e.id) == "holdout"]
    train = [e for e in examples if split.get(e.id) == "train"][:n_train]
    base = get_model(cfg["model"])
    tuned = get_model(f"{cfg['model']}+lora:{adapter}")
    print("| split | user text (start) | target | base | trained |")
    print("|---|---|---|---|---|")
    hits = {"base": 0, "trained": 0}
    for part, exs in (("held out", held), ("train", train)):
        for e in exs:
            replies = []
            for m in (base, tuned):
                g = await m.generate(
                    e.messages, max_tokens=48, temperature=0.0, json_schema=profile_schema()
                )
                replies.append(g.text.strip())
            if part == "held out":
                hits["base"] += replies[0] == e.target
                hits["trained"] += replies[1] == e.target
            text = e.messages[-1]["content"][:60].replace("\n", " ").replace("|", "/")
            cells = [x.replace("|", "/") for x in (e.target, *replies)]
            print(f"| {part} | {text}... | {' | '.join(cells)} |")
    print(
        f"\nheld out exact match: base {hits['base']}/{len(held)}, trained {hits['trained']}/{len(held)}"
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[4]) if len(sys.argv) > 4 else 4))
