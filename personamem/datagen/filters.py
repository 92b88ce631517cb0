"""Stage 6: validation filters, each a vote of several judge calls; an item is kept only if it
passes all four. The filters take plain item dicts, so they also run on real release rows
(``benchmarks/datagen_filters.py`` measures their accuracy that way)."""

from __future__ import annotations

import asyncio
import math
import re
from typing import Any

from pydantic import BaseModel

from . import prompts
from .config import FILTERS
from .llm import LLM
from .preferences import words
from .run import Run

STAGE = "filters"
LETTERS = ["A", "B", "C", "D"]
_DEBRIS = re.compile(
    r"```|^\s*(?:option\s*)?[A-D][.):]\s|\{\s*\"|\"\s*:\s*\"|\[(?:your|insert|name)|<[a-z_]+>|\{[a-z_]+\}",
    re.I | re.M,
)

_DANGLING = {
    "and",
    "the",
    "a",
    "an",
    "to",
    "of",
    "with",
    "for",
    "or",
    "in",
    "on",
    "your",
    "my",
    "is",
}


class FilterResult(BaseModel):
    passed: bool
    applicable: bool = True
    votes: list[bool] = []
    """Per judge call: True where that call voted for passing."""
    reason: str = ""


def judge_pref(item: dict[str, Any]) -> str:
    """The preference a judge checks against (a forget item's is the forgotten one)."""
    if item.get("kind") == "forget" and item.get("prev_pref"):
        return item["prev_pref"]
    return item["preference"]


def _options(item: dict[str, Any], correct_at: int) -> tuple[str, int]:
    wrong = list(item["incorrect_answers"])
    opts = wrong[:correct_at] + [item["correct_answer"]] + wrong[correct_at:]
    return "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(opts)), correct_at


def _majority(votes: list[bool]) -> bool:
    return sum(votes) * 2 > len(votes)


async def _yes(judge: LLM, system: str, user: str, seed: int) -> bool:
    msgs = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    return await judge.choose(STAGE, msgs, ["YES", "NO"], seed=seed) == 0


def _calls(votes: int, n: int) -> int:
    """Judge calls for an n-way pick: ``votes`` rounded up to whole rotations, so every option
    sits at every position equally often and a judge's position bias cancels out."""
    return n * max(1, math.ceil(votes / n))


async def _rotated(
    judge: LLM, build: Any, options: list[str], votes: int, seed: int
) -> tuple[list[float], list[int]]:
    """Mean probability a judge gives each option over cyclic rotations of their order, and the
    option each call picked. ``build(shown, v)`` makes the messages for options in that order."""
    n = len(options)
    calls = _calls(votes, n)
    mean = [0.0] * n
    picks = []
    for v in range(calls):
        shift = (seed + v) % n
        order = [(p + shift) % n for p in range(n)]  # position p shows option order[p]
        probs = await judge.choice_probs(
            STAGE, build([options[o] for o in order], v), LETTERS[:n], seed=seed + v
        )
        for p, o in enumerate(order):
            mean[o] += probs[p] / calls
        picks.append(order[max(range(n), key=lambda p: probs[p])])
    return mean, picks


def _lettered(options: list[str]) -> str:
    return "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))


async def no_leak(judge: LLM, item: dict[str, Any], votes: int, seed: int = 0) -> FilterResult:
    """Fails when the query gives the preference away: its words are in the query, or a judge
    that sees only the query and the options puts more than half its probability on the correct
    option (averaged over rotations of the option order)."""
    pw = words(judge_pref(item))
    if pw and len(pw & words(item["user_query"])) / len(pw) >= 0.6:
        return FilterResult(passed=False, reason="the query repeats the preference's words")
    options = [item["correct_answer"], *item["incorrect_answers"]]

    def build(shown: list[str], v: int) -> list[dict[str, str]]:
        tmpl = prompts.LEAK_USERS[v % len(prompts.LEAK_USERS)]
        user = tmpl.format(query=item["user_query"], options=_lettered(shown))
        return [
            {"role": "system", "content": prompts.LEAK_SYSTEM},
            {"role": "user", "content": user},
        ]

    mean, picks = await _rotated(judge, build, options, votes, seed)
    return FilterResult(
        passed=mean[0] <= 0.5,
        votes=[p != 0 for p in picks],
        reason=f"blind judge: {mean[0]:.2f} on the correct option",
    )


def _pref_clause(pref: str) -> str:
    p = pref.strip().rstrip(".")
    return p[:1].lower() + p[1:]


def _pick_builder(item: dict[str, Any]) -> Any:
    pref = judge_pref(item)

    def build(shown: list[str], v: int) -> list[dict[str, str]]:
        letters = LETTERS[: len(shown)]
        tmpl = prompts.PICK_USERS[v % len(prompts.PICK_USERS)]
        user = tmpl.format(
            pref=pref,
            pref_clause=_pref_clause(pref),
            query=item["user_query"],
            options=_lettered(shown),
            letters=", ".join(letters),
        )
        return [
            {"role": "system", "content": prompts.PICK_SYSTEM},
            {"role": "user", "content": user},
        ]

    return build


async def correct_reflects(
    judge: LLM, item: dict[str, Any], votes: int, seed: int = 0
) -> FilterResult:
    """Shown the preference and all four options (order rotated), judges must favour the correct
    option most. For someone else's or a forgotten preference the reverse: the correct option
    (the one that does not assume the preference) must not be the judges' favourite."""
    mine = item.get("kind", "self") == "self"
    options = [item["correct_answer"], *item["incorrect_answers"]]
    mean, picks = await _rotated(judge, _pick_builder(item), options, votes, seed)
    top = max(range(len(options)), key=lambda i: mean[i])
    return FilterResult(
        passed=(top == 0) if mine else (top != 0),
        votes=[(p == 0) == mine for p in picks],
        reason=f"judge mass on the correct option {mean[0]:.2f}",
    )


async def wrong_not_reflect(
    judge: LLM, item: dict[str, Any], votes: int, seed: int = 0
) -> FilterResult:
    """No incorrect option reflects the preference as well as the correct one: each wrong option
    meets the correct one head to head, in both orders, and must get less of the judges'
    probability. Not applicable to someone else's or forgotten preferences (their wrong options
    use it on purpose)."""
    if item.get("kind", "self") != "self":
        return FilterResult(passed=True, applicable=False, reason="preference is not the user's")
    beaten: list[bool] = []
    for j, wrong in enumerate(item["incorrect_answers"]):
        mean, _ = await _rotated(
            judge, _pick_builder(item), [item["correct_answer"], wrong], votes, seed + j
        )
        beaten.append(mean[0] > mean[1])
    bad = [j for j, b in enumerate(beaten) if not b]
    return FilterResult(
        passed=not bad,
        votes=beaten,
        reason=f"wrong option(s) {bad} fit the preference as well" if bad else "",
    )


def format_problems(item: dict[str, Any]) -> list[str]:
    """Rule checks of an item's text (no model involved)."""
    opts = [item["correct_answer"], *item["incorrect_answers"]]
    problems = []
    if not item["user_query"].strip():
        problems.append("empty query")
    if len(opts) != 4 or any(not o.strip() for o in opts):
        problems.append("needs four non-empty options")
    if len({" ".join(o.lower().split()) for o in opts}) != len(opts):
        problems.append("options repeat")
    for i, o in enumerate(opts):
        if len(o.split()) < 5:
            problems.append(f"option {i} is too short")
        if _DEBRIS.search(o):
            problems.append(f"option {i} has labels, markup or placeholders")
        last = o.rstrip().split()[-1].lower() if o.strip() else ""
        if last in _DANGLING:
            problems.append(f"option {i} looks cut off (ends with {last!r})")
    lengths = [len(o) for o in opts if o]
    if lengths and max(lengths) > 4 * max(1, min(lengths)):
        problems.append("option lengths differ more than 4x")
    s = item.get("sensitive_value")
    if s and s in item["correct_answer"]:
        problems.append("the correct answer repeats the sensitive item")
    return problems


async def clean_format(judge: LLM, item: dict[str, Any], votes: int, seed: int = 0) -> FilterResult:
    """Rule checks, then a vote of judges on whether every option is clean prose."""
    problems = format_problems(item)
    if problems:
        return FilterResult(passed=False, reason="; ".join(problems))
    ok = []
    for v in range(votes):
        opts, _ = _options(item, (seed + v) % 4)
        tmpl = prompts.FORMAT_USERS[v % len(prompts.FORMAT_USERS)]
        ok.append(
            await _yes(
                judge,
                prompts.FORMAT_SYSTEM,
                tmpl.format(query=item["user_query"], options=opts),
                seed + v,
            )
        )
    return FilterResult(passed=_majority(ok), votes=ok)


FILTER_FUNCS = {
    "no_leak": no_leak,
    "correct_reflects": correct_reflects,
    "wrong_not_reflect": wrong_not_reflect,
    "clean_format": clean_format,
}
assert tuple(FILTER_FUNCS) == FILTERS


async def judge_item(judge: LLM, item: dict[str, Any], votes: int, seed: int = 0) -> dict[str, Any]:
    """Every filter on one item; ``kept`` when all pass."""
    outs = await asyncio.gather(*(f(judge, item, votes, seed) for f in FILTER_FUNCS.values()))
    res = {name: r.model_dump() for name, r in zip(FILTER_FUNCS, outs, strict=True)}
    return {
        "qid": item.get("qid", ""),
        "filters": res,
        "kept": all(r["passed"] for r in res.values()),
    }


async def run_filters(run: Run, qa: dict[str, Any], sensitive: dict[str, str]) -> dict[str, Any]:
    async def make(k: str) -> dict[str, Any]:
        item = {**qa[k], "sensitive_value": sensitive.get(k)}
        return await judge_item(run.judge, item, run.config.votes, run.seed_of(STAGE, k) % 4)

    return await run.units(STAGE, list(qa), make)


def pass_rates(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per filter: items judged, passed, pass rate (over items where the filter applies)."""
    out: dict[str, dict[str, float]] = {}
    for name in FILTERS:
        rs = [r["filters"][name] for r in results.values() if r["filters"][name]["applicable"]]
        n = len(rs)
        p = sum(r["passed"] for r in rs)
        out[name] = {"items": n, "passed": p, "rate": round(p / n, 3) if n else 0.0}
    kept = sum(r["kept"] for r in results.values())
    out["all"] = {
        "items": len(results),
        "passed": kept,
        "rate": round(kept / len(results), 3) if results else 0.0,
    }
    return out
