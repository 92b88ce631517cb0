"""Stage 5: one Q&A per question-bearing block: an in-situ query that does not leak the
preference, the correct personalized option, three plausible wrong ones, the ground truth."""

from __future__ import annotations

from typing import Any

from . import prompts
from .run import Run, persona_summary
from .schemas import NotMineQA, SelfQA

STAGE = "qa"


def _distinct(*texts: str) -> None:
    norm = [" ".join(t.lower().split()) for t in texts]
    if any(len(t.split()) < 4 for t in norm):
        raise ValueError("every answer must be a full sentence or two")
    if len(set(norm)) != len(norm):
        raise ValueError("the four answers must all differ")


async def make_qa(
    run: Run, pid: str, persona: dict[str, Any], block: dict[str, Any]
) -> dict[str, Any]:
    summary = persona_summary(persona)
    common = dict(max_tokens=run.config.max_tokens, temperature=run.config.temperature)
    seed = run.seed_of(STAGE, pid, block["block_id"])
    if block["qa"] == "self":
        prev = block.get("prev_pref") or ""
        msgs = [
            {"role": "system", "content": prompts.QA_SYSTEM},
            {
                "role": "user",
                "content": prompts.QA_SELF_USER.format(
                    summary=summary,
                    pref=block["preference"],
                    prev_text=f' (it replaced an earlier preference: "{prev}")' if prev else "",
                    wrong_hint=f' (use the OUTDATED one: "{prev}")' if prev else "",
                ),
            },
        ]
        q = await run.writer.structured(
            STAGE,
            f"persona {pid} block {block['block_id']}",
            msgs,
            SelfQA,
            seed=seed,
            check=lambda x: _distinct(
                x.correct_answer, x.stereotype_trap, x.wrong_preference, x.generic_answer
            ),
            **common,
        )
        correct = q.correct_answer
        wrong = {
            "stereotype_trap": q.stereotype_trap,
            "wrong_preference": q.wrong_preference,
            "generic": q.generic_answer,
        }
        ground_truth = block["preference"]
    else:
        msgs = [
            {"role": "system", "content": prompts.QA_SYSTEM},
            {
                "role": "user",
                "content": prompts.QA_NOT_MINE_USER.format(
                    summary=summary,
                    pref=block["prev_pref"] if block["qa"] == "forget" else block["preference"],
                    why=prompts.NOT_MINE_WHY[block["qa"]],
                ),
            },
        ]
        q2 = await run.writer.structured(
            STAGE,
            f"persona {pid} block {block['block_id']}",
            msgs,
            NotMineQA,
            seed=seed,
            check=lambda x: _distinct(
                x.neutral_answer, x.uses_that_preference, x.stereotype_trap, x.other_preference
            ),
            **common,
        )
        q = q2  # type: ignore[assignment]
        correct = q2.neutral_answer
        wrong = {
            "uses_that_preference": q2.uses_that_preference,
            "stereotype_trap": q2.stereotype_trap,
            "wrong_preference": q2.other_preference,
        }
        ground_truth = block["preference"]
    return {
        "qid": f"{pid}-{block['block_id']}",
        "persona_id": pid,
        "block_id": block["block_id"],
        "kind": block["qa"],
        "user_query": " ".join(q.user_query.split()),
        "topic_query": q.topic_query,
        "correct_answer": correct.strip(),
        "incorrect_answers": [w.strip() for w in wrong.values()],
        "incorrect_kinds": list(wrong),
        "preference": ground_truth,
        "prev_pref": block.get("prev_pref") or "",
    }


async def run_qa(
    run: Run,
    personas: dict[str, Any],
    convs: dict[str, list[dict[str, Any]]],
    histories: dict[str, Any],
) -> dict[str, Any]:
    """Q&A for the blocks that carry one and survived the history budget."""
    specs: dict[str, tuple[str, dict[str, Any]]] = {}
    for pid, blocks in convs.items():
        if pid not in histories:
            continue
        kept = set(histories[pid]["order"])
        for b in blocks:
            if b["qa"] != "none" and b["block_id"] in kept:
                specs[f"{pid}-{b['block_id']}"] = (pid, b)
    return await run.units(
        STAGE, list(specs), lambda k: make_qa(run, specs[k][0], personas[specs[k][0]], specs[k][1])
    )
