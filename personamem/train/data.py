"""Training examples from a PersonaMem-v2 release folder (``benchmark/text/{train,val}.csv``).

Two kinds of supervised examples, both chat conversations whose last turn is the target:

* **writer**: what the ``profile`` memory writer sees (``personamem.memory.profile``): the user
  turns of the row's ``related_conversation_snippet`` joined by a blank line, and the reply
  ``{"profile": "<preference>"}``. The paper's rules for what a memory keeps decide the target:
  ``who = others`` (the preference belongs to someone the user writes about) -> ``{"profile":
  "none"}``; an ``updated`` row's snippet reveals the *new* preference, so the target is the
  current ``preference`` (the old one is ``prev_pref``); ``ask_to_forget`` rows are skipped
  (forget requests are handled by rules, not by the writer) and so are rows without a
  preference (the generator's ``sensitive_info`` placeholder rows).
* **answer**: the answerer's MCQ prompt (``personamem.answer.prompts``) with the ground-truth
  preference as the memory, and a short reasoning ending in ``\\boxed{X}`` for the correct option
  (options shuffled with the benchmark's seeded shuffle).

Only the personas asked for are used; :func:`check_personas` refuses the held-out ones.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from ..answer import LETTERS
from ..answer.prompts import MCQ, MEMORY_PREFIX, SYSTEM, format_options
from ..data import QAItem, load_release
from ..memory.profile import NONE, profile_messages, profile_reply

Kind = Literal["writer", "answer"]

#: Personas that must never be trained on: the sample persona (2) and the dev personas of
#: benchmarks/split.json (1, 8, 493, 714).
HELD_OUT_PERSONAS = frozenset({"1", "2", "8", "493", "714"})
#: The training personas of benchmarks/split.json.
TRAIN_PERSONAS = ("0", "5", "6", "9", "462", "599", "601")


class Example(BaseModel):
    """One supervised example: the prompt messages and the assistant reply to learn."""

    kind: Kind
    id: str
    persona_id: str
    messages: list[dict[str, str]]
    target: str

    def conversation(self) -> list[dict[str, str]]:
        return [*self.messages, {"role": "assistant", "content": self.target}]


class TrainDataError(ValueError):
    """The training data cannot be built; the message says what to change."""


def check_personas(personas: Iterable[str], allow_held_out: bool = False) -> list[str]:
    """The persona ids, refusing held-out ones unless explicitly allowed."""
    ids = [str(p).strip() for p in personas if str(p).strip()]
    bad = sorted(set(ids) & HELD_OUT_PERSONAS)
    if bad and not allow_held_out:
        raise TrainDataError(
            f"persona(s) {', '.join(bad)} are held out (dev or sample personas of "
            "benchmarks/split.json) and must not be trained on; pass other --personas"
        )
    return ids


def user_text(snippet: Sequence[dict]) -> str:
    """The user turns of a conversation snippet joined by a blank line (text parts only)."""
    parts: list[str] = []
    for m in snippet:
        if m.get("role") != "user":
            continue
        content = m.get("content")
        if isinstance(content, list):
            content = "\n".join(
                p.get("text", "") for p in content if isinstance(p, dict) and p.get("text")
            )
        if isinstance(content, str) and content.strip():
            parts.append(content.strip())
    return "\n\n".join(parts)


def writer_target(item: QAItem) -> str | None:
    """The profile line the writer should produce for a row; None when the row is skipped."""
    if item.pref_type == "ask_to_forget":
        return None
    pref = item.preference.strip()
    if not pref or pref.lower() in ("sensitive_info", "nan", "none"):
        return None
    if item.who.strip().lower() == "others":
        return profile_reply(None)
    return profile_reply(pref)


def writer_example(item: QAItem) -> Example | None:
    target = writer_target(item)
    text = user_text(item.related_snippet)
    if target is None or not text:
        return None
    return Example(
        kind="writer",
        id=f"writer-{item.id}",
        persona_id=item.persona_id,
        messages=profile_messages(text),
        target=target,
    )


def answer_target(letter: str, preference: str) -> str:
    """A short reasoning that names the preference, then the letter in ``\\boxed{}``."""
    pref = preference.strip().rstrip(".")
    return f"From memory: {pref}. Option {letter} fits that best. \\boxed{{{letter}}}"


def answer_example(item: QAItem, seed: int = 0) -> Example | None:
    """The answerer's MCQ prompt with the preference as memory; None without a preference."""
    pref = item.preference.strip()
    if not pref or pref.lower() == "sensitive_info" or item.pref_type == "ask_to_forget":
        return None
    from ..bench.scoring import shuffle_options

    shown = shuffle_options(item, seed)
    memory = f"- {pref}" if item.who != "others" else f"- (about someone else) {pref}"
    prompt = MCQ.format(
        prefix=MEMORY_PREFIX.format(memory=memory),
        query=item.query,
        options=format_options(shown.options),
    ).replace("Reply with the letter only.", "Think briefly, then give the letter in \\boxed{}.")
    return Example(
        kind="answer",
        id=f"answer-{item.id}",
        persona_id=item.persona_id,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
        target=answer_target(LETTERS[shown.correct], pref),
    )


def build_examples(
    root: str | Path,
    *,
    personas: Iterable[str] = TRAIN_PERSONAS,
    kinds: Iterable[Kind] = ("writer",),
    splits: tuple[str, ...] = ("train", "val"),
    allow_held_out: bool = False,
) -> list[Example]:
    """Writer and/or answer examples of the given personas, deduplicated, in file order."""
    wanted = set(check_personas(personas, allow_held_out))
    if not wanted:
        raise TrainDataError("no personas given; pass --personas 0,5,6 (ids of train.csv rows)")
    rel = load_release(root, splits=splits)
    items = [q for q in rel.items if q.persona_id in wanted]
    if not items:
        raise TrainDataError(
            f"{root}: no rows for persona(s) {', '.join(sorted(wanted))} in "
            f"{', '.join(s + '.csv' for s in splits)}"
        )
    out: list[Example] = []
    seen: set[str] = set()
    for q in items:
        for kind in kinds:
            ex = writer_example(q) if kind == "writer" else answer_example(q)
            if ex is None:
                continue
            key = json.dumps(ex.conversation(), sort_keys=True)
            if key not in seen:
                seen.add(key)
                out.append(ex)
    if not out:
        raise TrainDataError(f"{root}: none of the {len(items)} rows gives a training example")
    return out


def split_holdout(
    examples: Sequence[Example], n_holdout: int, seed: int = 0
) -> tuple[list[Example], list[Example]]:
    """(train, held out): ``n_holdout`` examples drawn with a seed, the rest in order."""
    idx = list(range(len(examples)))
    random.Random(seed).shuffle(idx)
    hold = set(idx[: max(0, min(n_holdout, len(examples) - 1))])
    return (
        [e for i, e in enumerate(examples) if i not in hold],
        [e for i, e in enumerate(examples) if i in hold],
    )


def is_none_target(ex: Example) -> bool:
    return ex.kind == "writer" and json.loads(ex.target).get("profile") == NONE
