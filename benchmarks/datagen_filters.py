"""Validate each datagen filter on real PersonaMem-v2 Q&A (dev personas only) and on the same
items corrupted; a filter that cannot tell them apart is not worth its calls.

Corruptions: ``swapped`` (the correct option traded with a wrong one: correct_reflects and
wrong_not_reflect must fail it), ``leaked`` (the preference pasted into the query: no_leak must
fail it), ``broken`` (an option cut off mid-sentence and another prefixed "C. ": clean_format
must fail it). Results are cached per item in OUT (resumable).

    OMP_NUM_THREADS=1 PERSONAMEM_THREADS=1 python3 benchmarks/datagen_filters.py \
        --model local/qwen2.5-0.5b --items 100 --out benchmarks/datagen_filters
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import random
import sys
from pathlib import Path

from personamem.data.loader import parse_row
from personamem.datagen import LLM
from personamem.datagen import filters as F
from personamem.models import get_model

TRAIN = Path("/work/shared/data/personamem-v2-train/benchmark/text/train.csv")
DEV = {"1", "8", "493", "714"}
PLAN = {  # filter -> (corruption it must reject)
    "no_leak": "leaked",
    "correct_reflects": "swapped",
    "wrong_not_reflect": "swapped",
    "clean_format": "broken",
}


def dev_items(n: int, seed: int) -> list[dict]:
    csv.field_size_limit(sys.maxsize)
    with open(TRAIN, encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["persona_id"] in DEV]
    items = []
    for i, r in enumerate(rows, 1):
        try:
            q = parse_row(r, "train", i)
        except ValueError:
            continue
        kind = (
            "others"
            if q.who == "others"
            else "forget"
            if q.pref_type == "ask_to_forget"
            else "self"
        )
        if not q.preference.strip():
            continue
        items.append(
            {
                "qid": q.id,
                "user_query": q.query,
                "correct_answer": q.correct_answer,
                "incorrect_answers": q.incorrect_answers,
                "preference": q.preference,
                "prev_pref": q.prev_pref,
                "kind": kind,
            }
        )
    random.Random(seed).shuffle(items)
    return items[:n]


def corrupt(item: dict, how: str, rng: random.Random) -> dict:
    if how == "swapped":
        j = rng.randrange(3)
        wrong = list(item["incorrect_answers"])
        wrong[j], correct = item["correct_answer"], wrong[j]
        return {**item, "correct_answer": correct, "incorrect_answers": wrong}
    if how == "leaked":
        return {**item, "user_query": f"{item['user_query']} (About me: {F.judge_pref(item)}.)"}
    if how == "broken":
        words = item["correct_answer"].split()
        cut = " ".join(words[: max(6, len(words) // 2)]) + " and the"
        wrong = list(item["incorrect_answers"])
        wrong[1] = "C. " + wrong[1]
        return {**item, "correct_answer": cut, "incorrect_answers": wrong}
    return item


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="local/qwen2.5-0.5b")
    ap.add_argument("--items", type=int, default=100)
    ap.add_argument("--votes", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/datagen_filters"))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    cache = a.out / "results.jsonl"
    done = {}
    if cache.is_file():
        for line in cache.read_text().splitlines():
            r = json.loads(line)
            done[(r["qid"], r["filter"], r["variant"])] = r
    judge = LLM(get_model(a.model), concurrency=1, backoff_seconds=1.0)
    items = dev_items(a.items, a.seed)
    with open(cache, "a", encoding="utf-8") as fout:
        for n, item in enumerate(items, 1):
            rng = random.Random(f"{a.seed}-{item['qid']}")
            variants = {v: corrupt(item, v, rng) for v in ("clean", "swapped", "leaked", "broken")}
            for name, target in PLAN.items():
                for v in ("clean", target):
                    if (item["qid"], name, v) in done:
                        continue
                    res = await F.FILTER_FUNCS[name](judge, variants[v], a.votes, rng.randrange(4))
                    r = {
                        "qid": item["qid"],
                        "kind": item["kind"],
                        "filter": name,
                        "variant": v,
                        **res.model_dump(),
                    }
                    done[(item["qid"], name, v)] = r
                    fout.write(json.dumps(r) + "\n")
                    fout.flush()
            print(f"{n}/{len(items)} items", file=sys.stderr, flush=True)
    summarize(list(done.values()), a)


def summarize(rows: list[dict], a: argparse.Namespace) -> None:
    lines = [
        f"Filters judged by `{a.model}`, {a.votes} votes each, on dev-persona Q&A from train.csv.",
        "",
        "| filter | items | passes clean | rejects corrupted (kind) | balanced accuracy [95% CI] |",
        "|---|---|---|---|---|",
    ]
    for name, target in PLAN.items():
        rs = [r for r in rows if r["filter"] == name and r["applicable"]]
        clean = [r for r in rs if r["variant"] == "clean"]
        bad = [r for r in rs if r["variant"] == target]
        ids = {r["qid"] for r in clean} & {r["qid"] for r in bad}
        clean = [r for r in clean if r["qid"] in ids]
        bad = [r for r in bad if r["qid"] in ids]
        k1 = sum(r["passed"] for r in clean)
        k2 = sum(not r["passed"] for r in bad)
        n = len(ids)
        if not n:
            continue
        lo1, hi1 = wilson(k1, n)
        lo2, hi2 = wilson(k2, n)
        acc = (k1 + k2) / (2 * n)
        lo, hi = wilson(k1 + k2, 2 * n)
        lines.append(
            f"| {name} | {n} | {k1}/{n} = {k1 / n:.0%} [{lo1:.0%}, {hi1:.0%}] | {k2}/{n} = {k2 / n:.0%} "
            f"[{lo2:.0%}, {hi2:.0%}] ({target}) | {acc:.0%} [{lo:.0%}, {hi:.0%}] |"
        )
    text = "\n".join(lines)
    (a.out / "summary.md").write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    asyncio.run(main())
