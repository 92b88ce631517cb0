"""Shared fixtures: the real data sample, fixture releases built on the fly, model helpers.

Nothing here assumes the sample is small or holds a single persona: fixture releases are
written programmatically (several personas) into ``tmp_path``.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from personamem.datagen.release import COLUMNS
from personamem.memory import prompts as memory_prompts
from personamem.models.base import Message

SAMPLE_ROOT = Path(os.environ.get("PERSONAMEM_SAMPLE", "/work/shared/data/personamem-v2-sample"))
SAMPLE_HISTORY_LINK = "data/chat_history_32k/chat_history_250901_001242_persona2.json"
LOCAL_SPEC = "local/qwen2.5-0.5b"

# Column order of the release's benchmark.csv (and of the sample; checked in test_datagen).
RELEASE_COLUMNS = list(COLUMNS)

PREF_TYPES = [
    "stereotypical_pref",
    "anti_stereotypical_pref",
    "neutral_preferences",
    "therapy_background",
    "health_and_medical_conditions",
]


# --- fixture releases ----------------------------------------------------------------------------
def history_link(persona: str | int) -> str:
    return f"data/chat_history_32k/chat_history_test_persona{persona}.json"


def make_history(persona: str | int, n_turns: int = 4) -> list[Message]:
    """A small chat history: a system persona message, then user/assistant turns."""
    msgs: list[Message] = [
        {"role": "system", "content": f"You are helping persona {persona}. PERSONA-{persona}"}
    ]
    for t in range(n_turns):
        msgs.append(
            {"role": "user", "content": f"Persona {persona} turn {t}: I enjoy hobby number {t}."}
        )
        msgs.append({"role": "assistant", "content": f"Noted, hobby {t} sounds great."})
    return msgs


def make_row(persona: str | int, n: int, **overrides: str) -> dict[str, str]:
    """One valid CSV row (all values as the release writes them); ``overrides`` replace columns."""
    query = {"role": "user", "content": f"Question {n} of persona {persona}: what should I do?"}
    row = {c: "" for c in RELEASE_COLUMNS}
    row.update(
        {
            "persona_id": str(persona),
            "chat_history_32k_link": history_link(persona),
            "raw_persona_file": f"data/raw_data/raw_persona{persona}.json",
            "short_persona": f"Persona {persona}",
            "expanded_persona": json.dumps({"name": f"Person {persona}"}),
            "user_query": repr(query),  # a Python dict literal, as in the release
            "correct_answer": f"Correct answer {n} for persona {persona}",
            "incorrect_answers": json.dumps([f"Wrong {n}.{k} for {persona}" for k in range(3)]),
            "topic_query": "travel",
            "preference": f"Likes thing {n}",
            "topic_preference": "hobbies",
            "conversation_scenario": "chat_message",
            "pref_type": PREF_TYPES[n % len(PREF_TYPES)],
            "related_conversation_snippet": json.dumps(
                [{"role": "user", "content": f"I like thing {n}"}]
            ),
            "who": "self",
            "updated": "True" if n % 2 else "False",
            "sensitive_info": "False",
            "distance_from_related_snippet_to_query_32k": str(100 + n),
        }
    )
    row.update(overrides)
    return row


def write_csv(path: Path, rows: Iterable[dict[str, str]], columns: list[str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = columns or RELEASE_COLUMNS
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return path


def write_release(
    root: Path,
    splits: dict[str, list[dict[str, str]]],
    *,
    histories: dict[str, list[Message]] | None = None,
    write_histories: bool = True,
) -> Path:
    """Write a release folder: ``benchmark/text/<split>.csv`` plus the linked history files.

    Histories are made with :func:`make_history` for every linked persona unless given.
    """
    histories = dict(histories or {})
    for split, rows in splits.items():
        write_csv(root / "benchmark" / "text" / f"{split}.csv", rows)
        if write_histories:
            for r in rows:
                link = r.get("chat_history_32k_link", "")
                if link and link not in histories:
                    histories[link] = make_history(r["persona_id"])
    for link, msgs in histories.items():
        p = root / link
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(
            json.dumps({"metadata": {"persona": link}, "chat_history": msgs}), encoding="utf-8"
        )
    return root


@pytest.fixture
def release_factory(tmp_path: Path) -> Callable[..., Path]:
    """``release_factory(personas=3, rows_per_persona=4, splits=("benchmark",))`` -> root."""
    counter = {"n": 0}

    def build(
        personas: int | Iterable[str | int] = 3,
        rows_per_persona: int = 4,
        splits: Iterable[str] = ("benchmark",),
        extra_rows: dict[str, list[dict[str, str]]] | None = None,
    ) -> Path:
        counter["n"] += 1
        root = tmp_path / f"release{counter['n']}"
        ids = list(range(1, personas + 1)) if isinstance(personas, int) else list(personas)
        data: dict[str, list[dict[str, str]]] = {}
        for split in splits:
            data[split] = [
                make_row(p, n, topic_query=split) for p in ids for n in range(rows_per_persona)
            ]
        for split, rows in (extra_rows or {}).items():
            data.setdefault(split, []).extend(rows)
        return write_release(root, data)

    return build


@pytest.fixture(scope="session")
def sample_root() -> Path:
    assert (SAMPLE_ROOT / "benchmark" / "text" / "benchmark.csv").is_file(), (
        f"the real data sample is missing at {SAMPLE_ROOT} (set PERSONAMEM_SAMPLE)"
    )
    return SAMPLE_ROOT


@pytest.fixture(scope="session")
def sample_history(sample_root: Path) -> list[Message]:
    from personamem.data import load_history

    return load_history(sample_root / SAMPLE_HISTORY_LINK).messages


# --- models -------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def local_model() -> Any:
    """The embedded model (loaded vocab-only until something generates with it)."""
    from personamem.models import get_model, local

    yield get_model(LOCAL_SPEC)
    # Free llama.cpp contexts before interpreter shutdown (their __del__ fails late in exit).
    for llm in list(local._LOADED.values()):
        llm.close()
    local._LOADED.clear()


@pytest.fixture(scope="session")
def writer_model() -> Any:
    """The default memory-writing model (Qwen2.5-1.5B, embedded)."""
    from personamem.models import DEFAULT_MEMORY_MODEL, get_model

    return get_model(DEFAULT_MEMORY_MODEL)


def prompt_kind(messages: list[Message]) -> str:
    """Which memory-agent prompt a call is: extract, compress, yesno, rewrite or other."""
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    return {
        memory_prompts.EXTRACT_SYSTEM: "extract",
        memory_prompts.COMPRESS_SYSTEM: "compress",
        memory_prompts.REPLACE_SYSTEM: "yesno",
        memory_prompts.REWRITE_SYSTEM: "rewrite",
    }.get(system, "other")


def facts_json(*facts: str | tuple[str, str] | tuple[str, str, list[int]]) -> str:
    """An extraction reply: each fact is text, (text, about) or (text, about, message ids)."""
    out = []
    for f in facts:
        if isinstance(f, str):
            f = (f, "user")
        text, about, *rest = f
        out.append({"fact": text, "about": about, "messages": rest[0] if rest else [1]})
    return json.dumps({"facts": out})


def notes_json(*notes: str) -> str:
    """A compression reply."""
    return json.dumps({"notes": list(notes)})


def all_prompt_text(calls: list[list[Message]]) -> str:
    return "\n".join(m["content"] for call in calls for m in call)
