"""Stage 4: order the blocks (updates after originals, forget requests after the last mention),
build the 32k history and the 128k one padded with unrelated dialogues; exact token counts."""

from __future__ import annotations

import json
from typing import Any

from .run import Run

STAGE = "histories"
SYSTEM_PREFIX = "You are an AI assistant helping a user with the following persona:\n\n"


def order_blocks(blocks: list[dict[str, Any]], rng: Any) -> list[dict[str, Any]]:
    """Shuffle, then place every dependent block (update, forget) at a random point after the
    block it depends on (a forget request therefore follows the last mention)."""
    base = [b for b in blocks if not b.get("after")]
    rng.shuffle(base)
    order = list(base)
    for b in (b for b in blocks if b.get("after")):
        anchor = max(i for i, x in enumerate(order) if x["pref_id"] == b["pref_id"])
        order.insert(rng.randint(anchor + 1, len(order)), b)
    return order


def _tokens(run: Run, messages: list[dict[str, Any]]) -> int:
    return sum(run.tokens.count_tokens(m["content"]) for m in messages)


def build_history(
    run: Run, pid: str, persona: dict[str, Any], blocks: list[dict[str, Any]], fillers: list[Any]
) -> dict[str, Any]:
    cfg = run.config
    rng = run.rng(STAGE, pid)
    public = {k: v for k, v in persona.items() if k not in ("persona_id", "sensitive_information")}
    system = {
        "role": "system",
        "content": SYSTEM_PREFIX + json.dumps(public, indent=2, ensure_ascii=False),
    }
    order = order_blocks(blocks, rng)
    cost = {b["block_id"]: _tokens(run, b["messages"]) for b in order}
    sys_tokens = _tokens(run, [system])
    # Over budget: drop whole blocks that nothing depends on, last Q&A-less first, then others.
    dropped: list[str] = []
    needed = {b["after"] for b in order if b.get("after")}
    while sys_tokens + sum(cost[b["block_id"]] for b in order) > cfg.history_tokens_32k:
        cands = [b for b in order if b["block_id"] not in needed]
        if not cands:
            break
        cands.sort(key=lambda b: (b["qa"] != "none", -cost[b["block_id"]]))
        victim = cands[0]
        order.remove(victim)
        dropped.append(victim["block_id"])
        if victim.get("after"):
            needed = {b["after"] for b in order if b.get("after")}
    h32 = [system]
    spans32: dict[str, list[int]] = {}
    for b in order:
        spans32[b["block_id"]] = [len(h32), len(h32) + len(b["messages"])]
        h32.extend(b["messages"])
    tokens32 = _tokens(run, h32)
    result: dict[str, Any] = {
        "persona_id": pid,
        "order": [b["block_id"] for b in order],
        "dropped_over_budget": dropped,
        "h32": h32,
        "tokens32": tokens32,
        "spans32": spans32,
        "distance32": _distances(run, h32, spans32),
    }
    if cfg.history_tokens_128k > 0:
        gaps: list[list[dict[str, Any]]] = [[] for _ in range(len(order) + 1)]
        budget = cfg.history_tokens_128k - tokens32
        pool = list(range(len(fillers)))
        irrelevant = 0
        while fillers and budget > 0:
            rng.shuffle(pool)
            added = False
            for i in pool:
                t = _tokens(run, fillers[i]["messages"])
                if t <= budget:
                    gaps[rng.randint(0, len(order))].append(fillers[i])
                    budget -= t
                    irrelevant += t
                    added = True
            if not added:
                break
        h128 = [system]
        spans128: dict[str, list[int]] = {}
        for gi, b in enumerate(order + [None]):
            for f in gaps[gi]:
                h128.extend(f["messages"])
            if b is not None:
                spans128[b["block_id"]] = [len(h128), len(h128) + len(b["messages"])]
                h128.extend(b["messages"])
        result.update(
            h128=h128,
            tokens128=_tokens(run, h128),
            irrelevant128=irrelevant,
            spans128=spans128,
            distance128=_distances(run, h128, spans128),
        )
    return result


def _distances(
    run: Run, history: list[dict[str, Any]], spans: dict[str, list[int]]
) -> dict[str, int]:
    """Tokens between the end of each block and the end of the history (where the query goes)."""
    suffix = [0] * (len(history) + 1)
    for i in range(len(history) - 1, -1, -1):
        suffix[i] = suffix[i + 1] + run.tokens.count_tokens(history[i]["content"])
    return {k: suffix[end] for k, (_, end) in spans.items()}


async def run_histories(
    run: Run, personas: dict[str, Any], convs: dict[str, list[dict[str, Any]]], fillers: list[Any]
) -> dict[str, Any]:
    async def make(pid: str) -> dict[str, Any]:
        return build_history(run, pid, personas[pid], convs[pid], fillers)

    return await run.units(STAGE, list(convs), make)
