"""Stage 7: whole personas to benchmark / train / val, written in the PersonaMem-v2 release
layout (``benchmark/text/<split>.csv``, ``data/chat_history_{32k,128k}/``, ``data/raw_data/``),
so ``personamem data inspect`` and ``personamem bench run`` read it directly."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from .config import PREF_KINDS, SCENARIOS
from .run import Run
from .store import write_json

COLUMNS = [
    "persona_id",
    "chat_history_32k_link",
    "chat_history_128k_link",
    "raw_persona_file",
    "short_persona",
    "expanded_persona",
    "user_query",
    "correct_answer",
    "incorrect_answers",
    "topic_query",
    "preference",
    "topic_preference",
    "conversation_scenario",
    "pref_type",
    "related_conversation_snippet",
    "who",
    "updated",
    "prev_pref",
    "sensitive_info",
    "total_tokens_in_chat_history_32k",
    "total_tokens_in_chat_history_128k",
    "distance_from_related_snippet_to_query_32k",
    "distance_from_related_snippet_to_query_128k",
    "num_persona_relevant_tokens_32k",
    "num_persona_irrelevant_tokens_32k",
    "num_persona_relevant_tokens_128k",
    "num_persona_irrelevant_tokens_128k",
]


def assign_splits(pids: list[str], shares: dict[str, float], rng: Any) -> dict[str, str]:
    """Whole personas to splits: benchmark first (at least one persona), then val, rest train."""
    order = list(pids)
    rng.shuffle(order)
    n = len(order)
    out: dict[str, str] = {}
    n_bench = (
        max(1, math.ceil(shares.get("benchmark", 0) * n)) if shares.get("benchmark", 0) > 0 else 0
    )
    n_val = round(shares.get("val", 0) * n) if n - n_bench > 1 else 0
    for i, pid in enumerate(order):
        out[pid] = "benchmark" if i < n_bench else "val" if i < n_bench + n_val else "train"
    if shares.get("train", 0) <= 0:
        out = {p: ("val" if s == "train" else s) for p, s in out.items()}
    return out


def write_release(
    run: Run,
    personas: dict[str, Any],
    prefs: dict[str, Any],
    convs: dict[str, list[dict[str, Any]]],
    histories: dict[str, Any],
    qa: dict[str, Any],
    verdicts: dict[str, Any],
) -> dict[str, Any]:
    root = Path(run.config.out)
    pids = [p for p in personas if p in histories]
    splits = assign_splits(pids, run.config.splits, run.rng("splits"))
    rows: dict[str, list[dict[str, Any]]] = {"benchmark": [], "train": [], "val": []}
    for pid in pids:
        persona = personas[pid]
        h = histories[pid]
        link32 = f"data/chat_history_32k/chat_history_persona{pid}.json"
        link128 = f"data/chat_history_128k/chat_history_persona{pid}.json" if "h128" in h else ""
        raw_link = f"data/raw_data/raw_data_persona{pid}.json"
        meta = {"persona_id": pid, "input_filename": raw_link, "generator": run.config.model}
        write_json(
            root / link32,
            {
                "metadata": {
                    **meta,
                    "total_messages": len(h["h32"]),
                    "final_token_count": h["tokens32"],
                },
                "chat_history": h["h32"],
            },
        )
        if link128:
            write_json(
                root / link128,
                {
                    "metadata": {
                        **meta,
                        "total_messages": len(h["h128"]),
                        "final_token_count": h["tokens128"],
                    },
                    "chat_history": h["h128"],
                },
            )
        public = {k: v for k, v in persona.items() if k != "persona_id"}
        expanded = json.dumps(
            {k: v for k, v in public.items() if k != "sensitive_information"},
            indent=2,
            ensure_ascii=False,
        )
        blocks = {b["block_id"]: b for b in convs[pid]}
        raw = dict(public)
        for kind in PREF_KINDS:
            key = {
                "stereotypical_pref": "stereotypical_preferences",
                "anti_stereotypical_pref": "anti_stereotypical_preferences",
            }.get(kind, kind)
            raw[key] = [p["text"] for p in prefs[pid]["preferences"] if p["pref_type"] == kind]
        raw["preference_updates"] = prefs[pid]["preference_updates"]
        raw["conversations"] = {s: [] for s in SCENARIOS}
        for bid in h["order"]:
            b = blocks[bid]
            entry: dict[str, Any] = {
                "preference": b["preference"],
                "pref_type": b["pref_type"],
                "who": b["who"],
                "conversations": b["messages"],
                "updated": b["updated"],
            }
            if b["prev_pref"]:
                entry["prev_pref"] = b["prev_pref"]
            entry["topic_preference"] = b.get("topic", "")
            if b.get("sensitive"):
                entry["sensitive_info"] = f"{b['sensitive']['field']}: {b['sensitive']['value']}"
            q = qa.get(f"{pid}-{bid}")
            v = verdicts.get(f"{pid}-{bid}")
            if q and v and v["kept"]:
                entry.update(
                    user_query=q["user_query"],
                    topic_query=q["topic_query"],
                    correct_answer=q["correct_answer"],
                    incorrect_answers=q["incorrect_answers"],
                )
                rel32 = h["tokens32"]
                rows[splits[pid]].append(
                    {
                        "persona_id": pid,
                        "chat_history_32k_link": link32,
                        "chat_history_128k_link": link128,
                        "raw_persona_file": raw_link,
                        "short_persona": persona["short_persona"],
                        "expanded_persona": expanded,
                        "user_query": repr({"role": "user", "content": q["user_query"]}),
                        "correct_answer": q["correct_answer"],
                        "incorrect_answers": json.dumps(q["incorrect_answers"], ensure_ascii=False),
                        "topic_query": q["topic_query"],
                        "preference": b["preference"],
                        "topic_preference": b.get("topic", ""),
                        "conversation_scenario": b["scenario"],
                        "pref_type": b["pref_type"],
                        "related_conversation_snippet": json.dumps(
                            b["messages"], ensure_ascii=False
                        ),
                        "who": b["who"],
                        "updated": str(bool(b["updated"])),
                        "prev_pref": b["prev_pref"],
                        "sensitive_info": entry.get("sensitive_info", "False"),
                        "total_tokens_in_chat_history_32k": h["tokens32"],
                        "total_tokens_in_chat_history_128k": h.get("tokens128", ""),
                        "distance_from_related_snippet_to_query_32k": h["distance32"].get(bid, ""),
                        "distance_from_related_snippet_to_query_128k": h.get("distance128", {}).get(
                            bid, ""
                        ),
                        "num_persona_relevant_tokens_32k": rel32,
                        "num_persona_irrelevant_tokens_32k": 0,
                        "num_persona_relevant_tokens_128k": h.get("tokens128", 0)
                        - h.get("irrelevant128", 0)
                        if link128
                        else "",
                        "num_persona_irrelevant_tokens_128k": h.get("irrelevant128", "")
                        if link128
                        else "",
                    }
                )
            raw["conversations"][b["scenario"]].append(entry)
        raw["conversations"] = {s: L for s, L in raw["conversations"].items() if L}
        write_json(root / raw_link, {pid: raw})
    text = root / "benchmark" / "text"
    text.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, rs in rows.items():
        path = text / f"{split}.csv"
        if not rs:
            path.unlink(missing_ok=True)
            continue
        tmp = path.with_suffix(".csv.tmp")
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            w.writeheader()
            w.writerows(rs)
        tmp.replace(path)
        counts[split] = len(rs)
    return {"splits": splits, "questions": counts}
