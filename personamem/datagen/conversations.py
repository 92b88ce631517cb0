"""Stage 3: one short conversation per preference block, revealing it only implicitly (some about
someone else, some ending with a forget request, some with a pasted sensitive item); plus the
unrelated filler dialogues that pad the 128k history."""

from __future__ import annotations

from typing import Any

from . import prompts
from .run import Run, persona_summary
from .schemas import Conversation, Filler

STAGE = "conversations"
FILLER_STAGE = "fillers"


def blocks(prefs: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation blocks of a persona: each preference's original conversation, plus an
    update block after it (``updated = True``) or a forget block (``ask_to_forget``).
    ``qa`` says which Q&A the block carries: self, others, forget or none."""
    out: list[dict[str, Any]] = []
    for p in prefs["preferences"]:
        base = {
            "block_id": p["id"],
            "pref_id": p["id"],
            "kind": "original",
            "preference": p["text"],
            "pref_type": p["pref_type"],
            "who": "others" if p["role"] == "others" else "self",
            "updated": False,
            "prev_pref": "",
            "scenario": p["scenario"],
            "sensitive": p.get("sensitive"),
            "after": None,
        }
        base["qa"] = {"plain": "self", "others": "others"}.get(p["role"], "none")
        out.append(base)
        if p["role"] == "update":
            out.append(
                {
                    **base,
                    "block_id": p["id"] + "u",
                    "kind": "update",
                    "preference": p["updated_text"],
                    "updated": True,
                    "prev_pref": p["text"],
                    "scenario": p["update_scenario"],
                    "sensitive": None,
                    "after": p["id"],
                    "qa": "self",
                }
            )
        elif p["role"] == "forget":
            out.append(
                {
                    **base,
                    "block_id": p["id"] + "f",
                    "kind": "forget",
                    "preference": f"Do not remember '{p['text']}' in memory",
                    "pref_type": "ask_to_forget",
                    "updated": True,
                    "prev_pref": p["text"],
                    "scenario": p["forget_scenario"],
                    "sensitive": None,
                    "after": p["id"],
                    "qa": "forget",
                }
            )
    return out


def _check(block: dict[str, Any], cfg: Any) -> Any:
    want_min = cfg.min_turns + (1 if block["kind"] == "forget" else 0)
    want_max = cfg.max_turns + (1 if block["kind"] == "forget" else 0)

    def check(c: Conversation) -> None:
        msgs = c.messages
        if not want_min <= len(msgs) <= want_max:
            raise ValueError(f"write {want_min} to {want_max} messages, not {len(msgs)}")
        for i, m in enumerate(msgs):
            want = "user" if i % 2 == 0 else "assistant"
            if m.role != want:
                raise ValueError(
                    f"message {i + 1} must be from the {want} (user first, alternating)"
                )
        if block["kind"] == "forget":
            if msgs[-1].role != "user" or "forget" not in msgs[-1].content.lower():
                raise ValueError(
                    "the last message must be the user asking to forget the preference"
                )
        s = block.get("sensitive")
        if s and not any(s["value"] in m.content for m in msgs if m.role == "user"):
            raise ValueError(f"a user message must contain the {s['field']} {s['value']!r} exactly")

    return check


async def make_conversation(
    run: Run, pid: str, persona: dict[str, Any], block: dict[str, Any]
) -> dict[str, Any]:
    cfg = run.config
    rng = run.rng(STAGE, pid, block["block_id"])
    turns = (
        rng.randrange(cfg.min_turns, cfg.max_turns + 1, 2)
        if cfg.max_turns > cfg.min_turns
        else cfg.min_turns
    )
    extra = ""
    if block["who"] == "others":
        extra += prompts.OTHERS_EXTRA
    if block["kind"] == "update":
        extra += prompts.UPDATE_EXTRA.format(prev=block["prev_pref"])
    if block["kind"] == "forget":
        pref = block["prev_pref"]
        extra += prompts.FORGET_EXTRA.format(
            pref_lower=pref[:1].lower() + pref[1:], turns_plus=turns + 1
        )
    if block.get("sensitive"):
        s = block["sensitive"]
        extra += prompts.SENSITIVE_EXTRA.format(
            field=s["field"].replace("_", " "), value=s["value"]
        )
    style = persona.get("speaking_style", {})
    msgs = [
        {"role": "system", "content": prompts.CONVO_SYSTEM},
        {
            "role": "user",
            "content": prompts.CONVO_USER.format(
                summary=persona_summary(persona),
                style=f"{style.get('tone', '')}; {style.get('formality', '')}",
                scenario_text=prompts.SCENARIO_TEXT[block["scenario"]],
                pref=block["prev_pref"] if block["kind"] == "forget" else block["preference"],
                turns=turns,
                words=cfg.message_words,
                extra=extra,
            ),
        },
    ]
    convo = await run.writer.structured(
        STAGE,
        f"persona {pid} block {block['block_id']}",
        msgs,
        Conversation,
        max_tokens=cfg.max_tokens,
        temperature=cfg.temperature,
        seed=run.seed_of(STAGE, pid, block["block_id"]),
        check=_check(block, cfg),
    )
    return {
        **block,
        "topic": convo.topic.strip(),
        "messages": [m.model_dump() for m in convo.messages],
    }


async def run_conversations(
    run: Run, personas: dict[str, Any], prefs: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    """All blocks of all personas, keyed ``<pid>-<block>``; returns them grouped per persona."""
    specs: dict[str, tuple[str, dict[str, Any]]] = {}
    for pid, pr in prefs.items():
        for b in blocks(pr):
            specs[f"{pid}-{b['block_id']}"] = (pid, b)
    done = await run.units(
        STAGE,
        list(specs),
        lambda k: make_conversation(run, specs[k][0], personas[specs[k][0]], specs[k][1]),
    )
    grouped: dict[str, list[dict[str, Any]]] = {pid: [] for pid in prefs}
    for k, (pid, _) in specs.items():
        if k in done:
            grouped[pid].append(done[k])
    return grouped


async def make_filler(run: Run, i: int) -> dict[str, Any]:
    topic = prompts.FILLER_TOPICS[i % len(prompts.FILLER_TOPICS)]
    out = await run.writer.structured(
        FILLER_STAGE,
        f"filler {i}",
        [
            {"role": "system", "content": prompts.FILLER_SYSTEM},
            {
                "role": "user",
                "content": prompts.FILLER_USER.format(topic=topic, words=run.config.message_words),
            },
        ],
        Filler,
        max_tokens=run.config.max_tokens,
        temperature=run.config.temperature,
        seed=run.seed_of(FILLER_STAGE, i),
    )
    return {"topic": topic, "messages": [m.model_dump() for m in out.messages]}


async def run_fillers(run: Run) -> list[dict[str, Any]]:
    n = run.config.filler_dialogues if run.config.history_tokens_128k > 0 else 0
    keys = [f"f{i}" for i in range(n)]
    done = await run.units(FILLER_STAGE, keys, lambda k: make_filler(run, int(k[1:])))
    return [done[k] for k in keys if k in done]
