"""Read a PersonaMem-v2 release folder: benchmark CSVs and chat-history JSON files.

Layout (as released): ``benchmark/text/{benchmark,train,val}.csv`` and
``data/chat_history_32k/*.json`` / ``data/chat_history_128k/*.json``, linked from each CSV row by
``chat_history_32k_link`` / ``chat_history_128k_link``. Bad rows are collected as
:class:`LoadIssue` (file, row, what is wrong) and skipped; ``strict=True`` makes them fatal.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import sys
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Literal

from pydantic import BaseModel

from ..models.base import Message

SPLITS = ("benchmark", "train", "val")
Context = Literal["32k", "128k", "snippet"]

PREF_TYPES = {
    "stereotypical_pref",
    "anti_stereotypical_pref",
    "neutral_preferences",
    "therapy_background",
    "health_and_medical_conditions",
    "ask_to_forget",
    "multimodal",
}
#: Categories of PersonaMem v1 and of other releases: loaded with a warning, kept in breakdowns.
KNOWN_OTHER_PREF_TYPES = {"factual", "recommendation", "sequence_of_updates"}
MAX_OPTIONS = 10  # the answer letters A-J
REQUIRED = ("persona_id", "user_query", "correct_answer", "incorrect_answers")


class DataError(ValueError):
    """A file or row of the release is unusable; the message names it and says why."""


class DataWarning(UserWarning):
    """A row loads but differs from the release format (its message names it and says how)."""


@dataclass
class LoadIssue:
    file: str
    row: int | None  # 1-based data row (header excluded); None for a whole-file problem
    message: str

    def __str__(self) -> str:
        where = f"{self.file}" + (f", row {self.row}" if self.row is not None else "")
        return f"{where}: {self.message}"


class QAItem(BaseModel):
    """One question of the benchmark with its ground truth and metadata."""

    id: str
    split: str
    row: int
    persona_id: str
    query: str
    correct_answer: str
    incorrect_answers: list[str]
    preference: str = ""
    prev_pref: str = ""
    pref_type: str = ""
    who: str = "self"
    updated: bool = False
    sensitive_info: str = ""
    conversation_scenario: str = ""
    topic_query: str = ""
    topic_preference: str = ""
    history_32k: str = ""
    history_128k: str = ""
    distance_32k: int | None = None
    distance_128k: int | None = None
    related_snippet: list[dict[str, Any]] = []
    history_snippet: str = ""
    """Snippet mode: the link of a history made from this item's related conversation snippet
    (see :func:`personamem.data.snippets.attach_snippet_histories`)."""

    @property
    def has_sensitive(self) -> bool:
        return self.sensitive_info.strip().lower() not in ("", "false", "none", "nan", "[]", "{}")

    def history_link(self, context: Context = "32k") -> str:
        if context == "snippet":
            return self.history_snippet
        return self.history_32k if context == "32k" else self.history_128k


class ChatHistory(BaseModel):
    """A user's flat chat history, as in ``data/chat_history_*/*.json``."""

    path: str
    metadata: dict[str, Any] = {}
    messages: list[Message]

    @cached_property
    def content_hash(self) -> str:
        h = hashlib.sha256()
        for m in self.messages:
            h.update(m["role"].encode() + b"\0" + m["content"].encode() + b"\0")
        return h.hexdigest()[:16]


def load_history(path: str | Path) -> ChatHistory:
    """Load one chat-history JSON file; raises :class:`DataError` saying what is wrong."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise DataError(f"{path}: file not found") from e
    except IsADirectoryError as e:
        raise DataError(f"{path}: is a folder; give one chat-history JSON file") from e
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from e
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from e
    if isinstance(raw, list):
        raw = {"chat_history": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("chat_history"), list):
        raise DataError(f"{path}: expected an object with a 'chat_history' list of messages")
    messages: list[Message] = []
    for i, m in enumerate(raw["chat_history"]):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise DataError(f"{path}: message {i} has no 'role' string")
        content = m.get("content")
        if isinstance(content, list):  # multimodal parts: keep the text parts
            content = "\n".join(
                p.get("text", "") for p in content if isinstance(p, dict) and p.get("text")
            )
        if not isinstance(content, str):
            raise DataError(f"{path}: message {i} has no 'content' text")
        messages.append({"role": m["role"], "content": content})
    meta = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    return ChatHistory(path=str(path), metadata=meta, messages=messages)


# What ast.literal_eval raises on text that is not a well-formed literal: besides ValueError and
# SyntaxError, TypeError for an unhashable key ("{[1]: 2}"), MemoryError/RecursionError for deep
# nesting.
_LITERAL_ERRORS = (ValueError, SyntaxError, TypeError, MemoryError, RecursionError)


def _parse_query(text: str) -> str:
    text = text.strip()
    if text.startswith("{"):
        try:
            obj = ast.literal_eval(text)
        except _LITERAL_ERRORS:
            try:
                obj = json.loads(text)
            except (json.JSONDecodeError, RecursionError) as e:
                raise ValueError("user_query is neither a dict literal nor JSON") from e
        if not isinstance(obj, dict) or not isinstance(obj.get("content"), str):
            raise ValueError("user_query has no 'content' string")
        return obj["content"]
    if not text:
        raise ValueError("user_query is empty")
    return text


def _parse_list(text: str, name: str) -> list[Any]:
    text = (text or "").strip()
    if not text:
        return []
    try:
        val = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        try:
            val = ast.literal_eval(text)
        except _LITERAL_ERRORS as e:
            raise ValueError(f"{name} is not a JSON list") from e
    if not isinstance(val, list):
        raise ValueError(f"{name} is not a list")
    return val


def _opt_int(text: str | None) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return int(float(text))
    except ValueError:
        return None


def question_id(split: str, persona_id: str, query: str, correct: str) -> str:
    """Stable id: the same question gets the same id across runs and file orderings."""
    h = hashlib.sha256(f"{split}\0{persona_id}\0{query}\0{correct}".encode()).hexdigest()[:12]
    return f"{split}-p{persona_id}-{h}"


def check_link(link: str) -> str:
    """``link`` if it is a relative path inside the release folder; raises ValueError for an
    absolute path, a drive, or a ``..`` part (a CSV must not make the loader read other files)."""
    for pure in (PurePosixPath(link), PureWindowsPath(link)):
        if pure.is_absolute() or pure.drive or pure.root or ".." in pure.parts:
            raise ValueError(
                f"history link {link!r} leaves the release folder; links must be relative "
                "paths inside it, such as data/chat_history_32k/<file>.json"
            )
    return link


def parse_row(
    row: dict[str, str], split: str, index: int, notes: list[str] | None = None
) -> QAItem:
    """One CSV row as a :class:`QAItem`; raises ValueError naming the bad column.

    Deviations that still load (an unknown ``pref_type``, more than 3 incorrect answers) are
    appended to ``notes`` when given, else issued as :class:`DataWarning`.
    """

    def note(message: str) -> None:
        if notes is None:
            warnings.warn(message, DataWarning, stacklevel=3)
        else:
            notes.append(message)

    missing = [c for c in REQUIRED if not (row.get(c) or "").strip()]
    if missing:
        raise ValueError(f"missing value in column(s) {', '.join(missing)}")
    query = _parse_query(row["user_query"])
    wrong = _parse_list(row["incorrect_answers"], "incorrect_answers")
    if not all(isinstance(w, str) and w.strip() for w in wrong):
        raise ValueError("incorrect_answers must hold 3 non-empty strings, got an empty one")
    if not 3 <= len(wrong) <= MAX_OPTIONS - 1:
        raise ValueError(
            f"incorrect_answers must hold 3 non-empty strings (up to {MAX_OPTIONS - 1} are "
            f"accepted), got {len(wrong)}"
        )
    if len(wrong) != 3:
        note(
            f"{len(wrong)} incorrect answers instead of 3: loaded as a "
            f"{len(wrong) + 1}-option question"
        )
    snippet = _parse_list(
        row.get("related_conversation_snippet", ""), "related_conversation_snippet"
    )
    pref_type = (row.get("pref_type") or "").strip()
    if pref_type and pref_type not in PREF_TYPES:
        known = " (a PersonaMem v1 category)" if pref_type in KNOWN_OTHER_PREF_TYPES else ""
        note(f"pref_type {pref_type!r} is not a PersonaMem-v2 category{known}; kept as it is")
    history_32k = check_link((row.get("chat_history_32k_link") or "").strip())
    history_128k = check_link((row.get("chat_history_128k_link") or "").strip())
    updated = (row.get("updated") or "False").strip().lower()
    if updated not in ("true", "false", "1", "0", ""):
        raise ValueError(f"updated must be True or False, got {row.get('updated')!r}")
    pid = row["persona_id"].strip()
    correct = row["correct_answer"].strip()
    return QAItem(
        id=question_id(split, pid, query, correct),
        split=split,
        row=index,
        persona_id=pid,
        query=query,
        correct_answer=correct,
        incorrect_answers=[w.strip() for w in wrong],
        preference=row.get("preference", "") or "",
        prev_pref=row.get("prev_pref", "") or "",
        pref_type=pref_type,
        who=(row.get("who") or "self").strip() or "self",
        updated=updated in ("true", "1"),
        sensitive_info=row.get("sensitive_info", "") or "",
        conversation_scenario=(row.get("conversation_scenario") or "").strip(),
        topic_query=row.get("topic_query", "") or "",
        topic_preference=row.get("topic_preference", "") or "",
        history_32k=history_32k,
        history_128k=history_128k,
        distance_32k=_opt_int(row.get("distance_from_related_snippet_to_query_32k")),
        distance_128k=_opt_int(row.get("distance_from_related_snippet_to_query_128k")),
        related_snippet=[m for m in snippet if isinstance(m, dict)],
    )


@dataclass
class Release:
    """A loaded PersonaMem-v2 release folder."""

    root: Path
    items: list[QAItem] = field(default_factory=list)
    issues: list[LoadIssue] = field(default_factory=list)
    warnings: list[LoadIssue] = field(default_factory=list)
    """Rows that loaded but differ from the release format (unknown category, extra options)."""
    _histories: dict[str, ChatHistory] = field(default_factory=dict, repr=False)

    def split(self, name: str) -> list[QAItem]:
        return [q for q in self.items if q.split == name]

    def history_paths(self, context: Context = "32k") -> list[str]:
        return sorted({q.history_link(context) for q in self.items if q.history_link(context)})

    def add_history(self, link: str, history: ChatHistory) -> None:
        """Register a history made in memory (snippet mode) under ``link``."""
        self._histories[link] = history

    def history(self, link: str) -> ChatHistory:
        """The chat history a row links to (loaded once, then cached)."""
        if link not in self._histories:
            try:
                check_link(link)
            except ValueError as e:
                raise DataError(str(e)) from e
            self._histories[link] = load_history(self.root / link)
        return self._histories[link]


def load_release(
    root: str | Path, *, splits: tuple[str, ...] = SPLITS, strict: bool = False
) -> Release:
    """Load every split CSV present under ``root/benchmark/text`` and check history links."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; expected a PersonaMem-v2 release folder")
    text_dir = root / "benchmark" / "text"
    rel = Release(root=root)
    found = False
    csv.field_size_limit(sys.maxsize)
    for split in splits:
        path = text_dir / f"{split}.csv"
        if not path.is_file():
            continue
        found = True
        try:
            with open(path, encoding="utf-8", newline="") as f:
                reader = csv.DictReader(f)
                header = reader.fieldnames or []
                missing = [c for c in REQUIRED if c not in header]
                if missing:
                    issue = LoadIssue(str(path), None, f"header lacks column(s) {missing}")
                    if strict:
                        raise DataError(str(issue))
                    rel.issues.append(issue)
                    continue
                for i, row in enumerate(reader, start=1):
                    if None in row:
                        problem = "row has more fields than the header"
                    else:
                        notes: list[str] = []
                        try:
                            rel.items.append(parse_row(row, split, i, notes))
                        except ValueError as e:
                            problem = str(e)
                        else:
                            for n in notes:
                                rel.warnings.append(LoadIssue(str(path), i, n))
                            continue
                    issue = LoadIssue(str(path), i, problem)
                    if strict:
                        raise DataError(str(issue))
                    rel.issues.append(issue)
        except UnicodeDecodeError as e:
            issue = LoadIssue(str(path), None, f"not UTF-8 text ({e})")
            if strict:
                raise DataError(str(issue)) from e
            rel.issues.append(issue)
        except csv.Error as e:
            issue = LoadIssue(str(path), None, f"malformed CSV ({e})")
            if strict:
                raise DataError(str(issue)) from e
            rel.issues.append(issue)
    if not found:
        raise DataError(f"{text_dir}: no {', '.join(s + '.csv' for s in splits)} found")
    if rel.warnings:
        kinds = sorted({w.message for w in rel.warnings})
        warnings.warn(
            f"{len(rel.warnings)} row(s) of {root} differ from the PersonaMem-v2 format and were "
            f"loaded anyway: {'; '.join(kinds[:5])}" + (" ..." if len(kinds) > 5 else ""),
            DataWarning,
            stacklevel=2,
        )
    # Rows that repeat a question (same split, persona, query and answer) still get distinct ids:
    # the second gets "-2", and so on, in file order, so ids stay unique and stable.
    seen: dict[str, int] = {}
    for q in rel.items:
        seen[q.id] = seen.get(q.id, 0) + 1
        if seen[q.id] > 1:
            q.id = f"{q.id}-{seen[q.id]}"
    # Rows whose linked history file is missing are reported and dropped (files are parsed lazily,
    # by Release.history, so a full release loads quickly).
    bad: dict[str, str] = {}
    for link in {q.history_32k for q in rel.items} | {q.history_128k for q in rel.items}:
        if link and not (root / link).is_file():
            bad[link] = f"{root / link}: file not found"
    if bad:
        keep = []
        for q in rel.items:
            broken = [bad[x] for x in (q.history_32k, q.history_128k) if x in bad]
            if broken:
                issue = LoadIssue(
                    f"{text_dir / q.split}.csv", q.row, f"history unusable: {broken[0]}"
                )
                if strict:
                    raise DataError(str(issue))
                rel.issues.append(issue)
            else:
                keep.append(q)
        rel.items = keep
    return rel
