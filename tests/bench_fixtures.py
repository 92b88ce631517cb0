"""Shared helpers for the benchmark tests: a tiny release on disk and an oracle scripted model."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from personamem.models import ScriptedModel
from personamem.models.base import Generation, Message

HEADER = [
    "persona_id",
    "chat_history_32k_link",
    "chat_history_128k_link",
    "user_query",
    "correct_answer",
    "incorrect_answers",
    "preference",
    "prev_pref",
    "pref_type",
    "who",
    "updated",
    "sensitive_info",
    "conversation_scenario",
    "related_conversation_snippet",
    "distance_from_related_snippet_to_query_32k",
]

PREFS = [
    ("hiking in the mountains", "outdoor trip", "stereotypical_pref", "False", "knowledge_query"),
    ("vegan cooking", "dinner recipe", "neutral_preferences", "True", "personal_email"),
    ("jazz records", "gift idea", "anti_stereotypical_pref", "False", "chat_message"),
    ("morning yoga", "weekend plan", "neutral_preferences", "False", "knowledge_query"),
]


def make_release(root: Path, personas: int = 2, sensitive: bool = False) -> Path:
    """A release folder: ``personas`` histories, 4 questions each, evidence at known turns."""
    (root / "benchmark" / "text").mkdir(parents=True)
    (root / "data" / "chat_history_32k").mkdir(parents=True)
    rows = []
    for p in range(1, personas + 1):
        msgs: list[Message] = [{"role": "system", "content": f"Persona {p}: secret persona text."}]
        snippets = []
        for k, (pref, topic, _, _, _) in enumerate(PREFS):
            for j in range(3):  # filler
                msgs.append(
                    {"role": "user", "content": f"Filler question {k}.{j} about spreadsheets."}
                )
                msgs.append(
                    {"role": "assistant", "content": f"Filler answer {k}.{j} with formulas."}
                )
            u = {
                "role": "user",
                "content": f"Persona {p} here: I really love {pref}, help with {topic}.",
            }
            a = {"role": "assistant", "content": f"Sure, {pref} sounds great."}
            msgs += [u, a]
            snippets.append([u, a])
        link = f"data/chat_history_32k/history_p{p}.json"
        (root / link).write_text(json.dumps({"metadata": {}, "chat_history": msgs}))
        for k, (pref, topic, ptype, updated, scenario) in enumerate(PREFS):
            rows.append(
                {
                    "persona_id": str(p),
                    "chat_history_32k_link": link,
                    "chat_history_128k_link": "",
                    "user_query": repr({"role": "user", "content": f"P{p}: suggest a {topic}?"}),
                    "correct_answer": f"A {topic} built around {pref} (p{p})",
                    "incorrect_answers": json.dumps(
                        [
                            f"A generic {topic} (p{p})",
                            f"A {topic} about golf (p{p})",
                            f"A {topic} about opera (p{p})",
                        ]
                    ),
                    "preference": f"Loves {pref}",
                    "prev_pref": "Used to dislike it" if updated == "True" else "",
                    "pref_type": ptype,
                    "who": "self",
                    "updated": updated,
                    "sensitive_info": (
                        "{'phone': '415-555-0134'}" if sensitive and k == 0 else "False"
                    ),
                    "conversation_scenario": scenario,
                    "related_conversation_snippet": json.dumps(snippets[k]),
                    "distance_from_related_snippet_to_query_32k": "",
                }
            )
    with open(
        root / "benchmark" / "text" / "benchmark.csv", "w", newline="", encoding="utf-8"
    ) as f:
        w = csv.DictWriter(f, fieldnames=HEADER)
        w.writeheader()
        w.writerows(rows)
    return root


def _options(body: str) -> dict[str, str]:
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^([A-J])\. (.*)$", body, re.M)}


def mentions_preference(rubric: str) -> bool:
    """Does the response in a judge's rubric name the ground-truth preference ("Loves X")?"""
    pref = re.search(r"<preference>\s*(.*?)\s*</preference>", rubric, re.S)
    resp = re.search(r"<response>\s*(.*?)\s*</response>", rubric, re.S)
    if not pref or not resp:
        return False
    return pref.group(1).removeprefix("Loves ").lower() in resp.group(1).lower()


def oracle_model(*, know: str = "history", generate: bool = False) -> ScriptedModel:
    """A scripted model that picks the option naming a preference it can see in its prompt.

    It "knows" a preference when the prompt (all messages) mentions it, so no-history cannot know
    and falls back to option A. With ``generate=True`` it cannot score choices and replies
    ``\\boxed{X}`` instead. Memory extraction calls get a JSON fact list; judges give 0.9 to a response that names
    the preference, else 0.1.
    """

    def pick(msgs: list[Message]) -> str:
        body = msgs[-1]["content"]
        seen = "\n".join(m["content"] for m in msgs[:-1]) + body.split("My request:")[0]
        for letter, text in _options(body).items():
            m = re.search(r"built around (.*) \(p\d\)", text)
            if m and m.group(1) in seen:
                return letter
        return "A"

    def reply(msgs: list[Message]) -> str:
        body = msgs[-1]["content"]
        if "\\boxed{" in body and "score" in body:
            return f"\\boxed{{{0.9 if mentions_preference(body) else 0.1}}}"
        if "Answer YES or NO" in body:
            return "NO"
        if _options(body) and "Which of these" in body:
            return f"\\boxed{{{pick(msgs)}}}"
        if "My request:" in body:
            return "A tailored answer for you."
        facts = re.findall(r"I really love ([a-z ]+), help", body)
        return json.dumps(
            {
                "facts": [
                    {"fact": f"The user loves {f}", "about": "user", "messages": []} for f in facts
                ]
            }
        )

    def scores(msgs: list[Message], letters: list[str]) -> list[float]:
        best = pick(msgs)
        return [0.0 if x == best else -3.0 for x in letters]

    return ScriptedModel(default=reply, choice_scores=None if generate else scores)


@dataclass
class KVScriptedModel(ScriptedModel):
    """A scripted model that also scores continuations and simulates the local backend's single
    KV cache: a prompt's prefill is the part not shared with the previous prompt."""

    kv: list[str] = field(default_factory=list)
    scored: list[list[Message]] = field(default_factory=list)

    def _prefill(self, messages: list[Message]) -> tuple[int, int]:
        toks = [t for m in messages for t in (f"<{m['role']}>", *m["content"].split())]
        keep = 0
        for a, b in zip(self.kv, toks, strict=False):
            if a != b:
                break
            keep += 1
        self.kv = toks
        return len(toks), len(toks) - keep

    async def score_continuations(
        self, messages: list[Message], continuations: list[str], *, prefix: str = ""
    ) -> list[tuple[float, int]] | None:
        self.scored.append([dict(m) for m in messages])  # type: ignore[misc]
        n, pre = self._prefill(messages)
        seen = "\n".join(m["content"] for m in messages)
        out = []
        for c in continuations:
            m = re.search(r"built around (.*) \(p\d\)", c)
            out.append((0.0 if m and m.group(1) in seen else -5.0, self.count_tokens(c)))
        self._record(Generation("", n, 0, 0.0, prefill_tokens=pre))
        return out


def kv_model() -> KVScriptedModel:
    base = oracle_model()
    return KVScriptedModel(default=base.default, choice_scores=base.choice_scores)
