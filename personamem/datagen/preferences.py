"""Stage 2: preferences per persona: generate per kind, dedupe, drop contradictions, check
stereotype labels by inferring the persona back, choose updates / forget / others / sensitive."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import Any

from . import prompts
from .config import PREF_KINDS, SCENARIOS
from .llm import StructuredOutputError
from .run import Run, persona_summary
from .schemas import Conflicts, PreferenceList, StereotypeCheck, Update

STAGE = "preferences"
CHECKED = ("stereotypical_pref", "anti_stereotypical_pref", "neutral_preferences")
VERDICT_TO_KIND = {
    "typical": "stereotypical_pref",
    "atypical": "anti_stereotypical_pref",
    "anyone": "neutral_preferences",
}
SENSITIVE_FIELDS = (
    "physical_address",
    "email_address",
    "phone_number",
    "ssn",
    "passport_number",
    "driver_license_number",
    "bank_account_number",
    "credit_card_number",
    "vehicle_plate_number",
    "llm_api_key",
)
_STOP = {"a", "an", "the", "and", "or", "of", "to", "in", "on", "for", "with", "at", "by", "over"}


def words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP}


def near_duplicate(a: str, b: str, threshold: float = 0.75) -> bool:
    """Same preference in other words: equal after normalisation, or word-set Jaccard >= threshold."""
    wa, wb = words(a), words(b)
    if not wa or not wb:
        return a.strip().lower() == b.strip().lower()
    return len(wa & wb) / len(wa | wb) >= threshold


def dedupe(items: list[dict[str, Any]], dropped: list[dict[str, str]]) -> list[dict[str, Any]]:
    keep: list[dict[str, Any]] = []
    for it in items:
        dup = next((k for k in keep if near_duplicate(k["text"], it["text"])), None)
        if dup is not None:
            dropped.append({"text": it["text"], "reason": f"duplicate of {dup['text']!r}"})
        else:
            keep.append(it)
    return keep


async def _list(run: Run, pid: str, persona: dict[str, Any], kind: str) -> list[str]:
    summary = persona_summary(persona)
    msgs = [
        {"role": "system", "content": prompts.PREFS_SYSTEM},
        {
            "role": "user",
            "content": prompts.PREFS_USER.format(
                persona=summary, n=run.config.prefs_per_kind, kind_text=prompts.KIND_TEXT[kind]
            ),
        },
    ]

    def check(p: PreferenceList) -> None:
        short = [x for x in p.preferences if len(x.split()) < 2]
        if short:
            raise ValueError(f"each item must be a phrase of 3-12 words, not {short[0]!r}")

    out = await run.writer.structured(
        STAGE,
        f"persona {pid} {kind}",
        msgs,
        PreferenceList,
        check=check,
        max_tokens=400,
        temperature=run.config.temperature,
        seed=run.seed_of(STAGE, pid, kind),
    )
    return [" ".join(p.split()).strip(" .-") for p in out.preferences if p.strip(" .-")][
        : run.config.prefs_per_kind
    ]


async def _conflicts(run: Run, pid: str, items: list[dict[str, Any]]) -> list[tuple[int, int]]:
    numbered = "\n".join(f"{i + 1}. {it['text']}" for i, it in enumerate(items))
    n = len(items)

    def check(c: Conflicts) -> None:
        for pair in c.conflicts:
            if len(pair) != 2 or not all(1 <= x <= n for x in pair) or pair[0] == pair[1]:
                raise ValueError(f"each conflict must be two different numbers from 1 to {n}")

    out = await run.writer.structured(
        STAGE,
        f"persona {pid} contradictions",
        [
            {"role": "system", "content": prompts.CONFLICT_SYSTEM},
            {"role": "user", "content": prompts.CONFLICT_USER.format(numbered=numbered)},
        ],
        Conflicts,
        max_tokens=200,
        check=check,
    )
    return [(min(a, b) - 1, max(a, b) - 1) for a, b in out.conflicts]


async def _stereotype(run: Run, pid: str, summary: str, pref: str) -> dict[str, Any]:
    async def vote(v: int) -> StereotypeCheck:
        tmpl = prompts.STEREO_USERS[v % len(prompts.STEREO_USERS)]
        return await run.judge.structured(
            "stereotype_check",
            f"persona {pid} {pref!r}",
            [
                {"role": "system", "content": prompts.STEREO_SYSTEM},
                {"role": "user", "content": tmpl.format(pref=pref, summary=summary)},
            ],
            StereotypeCheck,
            max_tokens=200,
            temperature=0.0 if v == 0 else run.config.temperature,
            seed=run.seed_of("stereo", pid, pref, v),
        )

    outs = await asyncio.gather(*(vote(v) for v in range(run.config.stereotype_votes)))
    votes = [o.verdict for o in outs]
    inferred = [o.inferred_persona for o in outs]
    verdict, count = Counter(votes).most_common(1)[0]
    return {
        "votes": votes,
        "inferred_personas": inferred,
        "majority": verdict if count * 2 > len(votes) else None,
    }


async def _update(run: Run, pid: str, summary: str, original: str) -> str:
    def check(u: Update) -> None:
        if near_duplicate(u.updated, original, 0.99):
            raise ValueError("the update repeats the original; it must change")

    out = await run.writer.structured(
        STAGE,
        f"persona {pid} update of {original!r}",
        [
            {"role": "system", "content": prompts.UPDATE_SYSTEM},
            {"role": "user", "content": prompts.UPDATE_USER.format(summary=summary, pref=original)},
        ],
        Update,
        max_tokens=80,
        temperature=run.config.temperature,
        seed=run.seed_of(STAGE, pid, "update", original),
        check=check,
    )
    return " ".join(out.updated.split()).strip(" .")


async def make_preferences(run: Run, pid: str, persona: dict[str, Any]) -> dict[str, Any]:
    cfg = run.config
    summary = persona_summary(persona)
    items: list[dict[str, Any]] = []
    lists = await asyncio.gather(
        *(
            run.memo(STAGE, f"{pid}-list-{k}", lambda k=k: _list(run, pid, persona, k))
            for k in PREF_KINDS
        ),
        return_exceptions=True,
    )
    failed_kinds: dict[str, str] = {}
    for kind, texts in zip(PREF_KINDS, lists, strict=True):
        if isinstance(texts, BaseException):
            # --keep-going: a kind the model cannot write is recorded and skipped, never silently
            if not isinstance(texts, StructuredOutputError) or not cfg.keep_going:
                raise texts
            failed_kinds[kind] = str(texts)
            run.failures.setdefault(STAGE, []).append(f"{STAGE} {pid}: {texts}")
            continue
        items.extend({"text": text, "pref_type": kind} for text in texts)
    dropped: list[dict[str, str]] = []
    items = dedupe(items, dropped)
    if len(items) > 1:
        gone: set[int] = set()
        pairs = await run.memo(STAGE, f"{pid}-conflicts", lambda: _conflicts(run, pid, items))
        for a, b in pairs:
            if a not in gone and b not in gone:
                gone.add(b)
                dropped.append(
                    {"text": items[b]["text"], "reason": f"contradicts {items[a]['text']!r}"}
                )
        items = [it for i, it in enumerate(items) if i not in gone]
    relabelled = 0
    checked = [it for it in items if it["pref_type"] in CHECKED]
    checks = await asyncio.gather(
        *(
            run.memo(
                STAGE, f"{pid}-stereo-{i}", lambda t=it["text"]: _stereotype(run, pid, summary, t)
            )
            for i, it in enumerate(checked)
        )
    )
    for it, chk in zip(checked, checks, strict=True):
        it["label_check"] = chk
        new = VERDICT_TO_KIND.get(chk["majority"] or "")
        if new and new != it["pref_type"]:
            it["original_pref_type"] = it["pref_type"]
            it["pref_type"] = new
            relabelled += 1
    rng = run.rng(STAGE, pid, "roles")
    for i, it in enumerate(items):
        it["id"] = f"q{i}"
        r = rng.random()
        f = cfg.update_fraction, cfg.forget_fraction, cfg.others_fraction
        it["role"] = (
            "update"
            if r < f[0]
            else "forget"
            if r < f[0] + f[1]
            else "others"
            if r < sum(f)
            else "plain"
        )
        it["scenario"] = rng.choice(SCENARIOS)
        it["sensitive"] = None
        if rng.random() < cfg.sensitive_fraction:
            field = rng.choice(SENSITIVE_FIELDS)
            it["sensitive"] = {"field": field, "value": persona["sensitive_information"][field]}
    to_update = [it for it in items if it["role"] == "update"]
    updates: dict[str, str] = {}
    new = await asyncio.gather(
        *(
            run.memo(
                STAGE,
                f"{pid}-update-{it['id']}",
                lambda t=it["text"]: _update(run, pid, summary, t),
            )
            for it in to_update
        )
    )
    for it, u in zip(to_update, new, strict=True):
        it["updated_text"] = u
        it["update_scenario"] = rng.choice(SCENARIOS)
        updates[it["text"]] = u
    for it in items:
        if it["role"] == "forget":
            it["forget_scenario"] = rng.choice(SCENARIOS)
    return {
        "persona_id": pid,
        "preferences": items,
        "dropped": dropped,
        "relabelled": relabelled,
        "failed_kinds": failed_kinds,
        "preference_updates": updates,
    }


async def run_preferences(run: Run, personas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return await run.units(
        STAGE, list(personas), lambda pid: make_preferences(run, pid, personas[pid])
    )
