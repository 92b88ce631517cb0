"""Durable storage of users, their messages, every memory version and the redaction log.

:class:`Store` is the small interface the :mod:`~personamem.store.api` layer talks to;
:class:`~personamem.store.sqlite.SQLiteStore` implements it with the standard library's
``sqlite3`` (WAL journal, one connection per thread, every write one ``BEGIN IMMEDIATE``
transaction), :class:`~personamem.store.postgres.PostgresStore` with PostgreSQL (``SELECT ... FOR
UPDATE`` in place of ``BEGIN IMMEDIATE``, Alembic migrations). :func:`open_store` picks one by URL.

Invariants, each kept by a single transaction:

* a user's messages are numbered ``0, 1, 2, ...`` (``seq``) in arrival order, never renumbered;
  a message id seen twice is stored once;
* ``users.cursor`` is the first message not yet read into the memory: messages ``>= cursor``
  are pending. It only moves together with the version that consumed the messages;
* ``users.head`` is the current version; versions are ``1, 2, 3, ...`` and never rewritten.
  A version and the head/cursor move are committed together or not at all
  (:meth:`Store.commit_version` is a compare-and-swap on head and cursor);
* the redaction log holds kinds, places and keyed fingerprints, never the secret.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

SCHEMA_VERSION = 2
"""Version of the stored data's layout and meaning (2: the cursor counts characters)."""


Cursor = tuple[int, int]
"""(seq, parts of that message already read)."""


class StoreError(RuntimeError):
    """The store cannot do what was asked (bad URL, unknown user, corrupt data)."""


class UnknownUser(StoreError, KeyError):
    """No such user in the store."""

    def __str__(self) -> str:
        return f"unknown user {self.args[0]!r}" if self.args else "unknown user"


class Conflict(StoreError):
    """The head or cursor moved since it was read (another writer committed first)."""


# --- records ---------------------------------------------------------------------------------
class NewMessage(BaseModel):
    """A message ready to store: already redacted, with its redactions (kind, fingerprint)."""

    msg_id: str | None = None
    role: str
    content: str
    tokens: int = 0
    redactions: list[dict[str, Any]] = Field(default_factory=list)


class StoredMessage(BaseModel):
    seq: int
    msg_id: str
    role: str
    content: str
    tokens: int
    created_at: float


class UserInfo(BaseModel):
    user_id: str
    created_at: float
    messages: int
    cursor: int
    """First message not (completely) read into the memory: messages >= cursor are pending."""
    cursor_part: int = 0
    """Characters of message ``cursor`` (of its stripped text) already read: a message longer
    than a chunk is read in parts. Independent of chunk size and tokenizer."""
    head: int


class Provenance(BaseModel):
    """What produced a memory version: model, prompt, the messages read, cost, warnings."""

    model: str | None = None
    prompt_version: str | None = None
    message_ids: list[int] = Field(default_factory=list)
    chunk_tokens: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    memory_tokens: int = 0
    seconds: float = 0.0
    restores: int | None = None
    note: str = ""
    warnings: list[str] = Field(default_factory=list)
    report: dict[str, Any] = Field(default_factory=dict)


class NewVersion(Provenance):
    """A memory version to commit and what produced it."""

    source: str  # update | edit | forget | undo
    state: str  # MemoryState JSON
    text: str


class VersionRecord(NewVersion):
    user_id: str
    version: int
    parent: int
    created_at: float


class RedactionRecord(BaseModel):
    kind: str
    location: str
    fingerprint: str
    start: int | None = None
    end: int | None = None
    seq: int | None = None
    version: int | None = None
    at: float = 0.0


# --- interface -------------------------------------------------------------------------------
class Store(ABC):
    """What the memory API needs from a database."""

    url: str

    @abstractmethod
    def fingerprint_key(self) -> bytes:
        """The store's secret key for redaction fingerprints (never exported)."""

    @abstractmethod
    def add_messages(
        self, user_id: str, messages: Sequence[NewMessage]
    ) -> tuple[list[int], list[str]]:
        """Store messages in order (creating the user); returns (new seqs, duplicate ids)."""

    @abstractmethod
    def user(self, user_id: str) -> UserInfo | None: ...

    @abstractmethod
    def users(self) -> list[str]: ...

    @abstractmethod
    def head(self, user_id: str) -> VersionRecord | None:
        """The current version, or None before the first one."""

    @abstractmethod
    def snapshot(self, user_id: str) -> tuple[UserInfo, VersionRecord | None, list[StoredMessage]]:
        """One consistent read: user, head version and the pending messages (seq >= cursor)."""

    @abstractmethod
    def version(self, user_id: str, version: int) -> VersionRecord | None: ...

    @abstractmethod
    def versions(self, user_id: str) -> list[VersionRecord]: ...

    @abstractmethod
    def messages(
        self,
        user_id: str,
        start: int = 0,
        end: int | None = None,
        seqs: Iterable[int] | None = None,
    ) -> list[StoredMessage]:
        """Messages with ``start <= seq < end`` (or exactly ``seqs``), in order."""

    @abstractmethod
    def existing_seqs(self, user_id: str, seqs: Iterable[int]) -> set[int]: ...

    @abstractmethod
    def commit_version(
        self,
        user_id: str,
        new: NewVersion,
        *,
        expect_head: int,
        expect_cursor: Cursor | None = None,
        new_cursor: Cursor | None = None,
        redactions: Sequence[RedactionRecord] = (),
    ) -> VersionRecord:
        """Append a version and move head (and cursor) atomically; :class:`Conflict` if either
        moved since read, :class:`UnknownUser` if the user was deleted."""

    @abstractmethod
    def advance_cursor(self, user_id: str, *, expect_cursor: Cursor, new_cursor: Cursor) -> None:
        """Skip pending messages with nothing to read (system or empty messages)."""

    @abstractmethod
    def redactions(self, user_id: str) -> list[RedactionRecord]: ...

    @abstractmethod
    def acquire(self, user_id: str, owner: str, ttl: float) -> bool:
        """Take the user's update lease if free, expired or held by a dead local process."""

    @abstractmethod
    def renew(self, user_id: str, owner: str, ttl: float) -> bool: ...

    @abstractmethod
    def release(self, user_id: str, owner: str) -> None: ...

    @abstractmethod
    def delete_user(self, user_id: str) -> dict[str, int]:
        """Remove every row of the user; returns how many of each were deleted."""

    @abstractmethod
    def check(self) -> list[str]:
        """Integrity and invariant problems (empty when the store is consistent)."""

    @contextmanager
    def consistent(self) -> Iterator[None]:
        """Reads inside see one snapshot of the store (a no-op where reads always do)."""
        yield

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


# --- shared by the SQL backends ----------------------------------------------------------------
VERSION_COLS = (
    "user_id, version, parent, restores, source, state, text, model, prompt_version, "
    "message_ids, chunk_tokens, tokens_in, tokens_out, memory_tokens, seconds, note, warnings, "
    "report, created_at"
)
"""The ``versions`` table's columns, in the order of :func:`version_values`."""


def version_from_row(d: dict[str, Any]) -> VersionRecord:
    """A :class:`VersionRecord` from a ``versions`` row keyed by :data:`VERSION_COLS`."""
    d["message_ids"] = json.loads(d["message_ids"])
    d["warnings"] = json.loads(d["warnings"])
    d["report"] = json.loads(d["report"])
    return VersionRecord(**d)


def check_commit(
    info: UserInfo | None,
    user_id: str,
    *,
    expect_head: int | None,
    expect_cursor: Cursor | None,
    new_cursor: Cursor | None,
) -> UserInfo:
    """The compare-and-swap checks of :meth:`Store.commit_version` (``expect_head=None``: no head
    check, as in :meth:`Store.advance_cursor`); returns ``info`` when they pass."""
    if info is None:
        raise UnknownUser(user_id)
    if expect_head is not None and info.head != expect_head:
        raise Conflict(f"{user_id}: head is v{info.head}, expected v{expect_head}")
    now = (info.cursor, info.cursor_part)
    if expect_cursor is not None and now != tuple(expect_cursor):
        raise Conflict(f"{info.user_id}: cursor is {now}, expected {tuple(expect_cursor)}")
    new = new_cursor
    if new is not None and not (now <= tuple(new) and new[0] <= info.messages and new[1] >= 0):
        raise StoreError(f"{info.user_id}: cursor {tuple(new)} outside {now}..{info.messages}")
    return info


def version_values(
    user_id: str, number: int, parent: int, new: NewVersion, now: float
) -> tuple[Any, ...]:
    """The values of a new ``versions`` row, in :data:`VERSION_COLS` order."""
    return (
        user_id,
        number,
        parent,
        new.restores,
        new.source,
        new.state,
        new.text,
        new.model,
        new.prompt_version,
        json.dumps(new.message_ids),
        new.chunk_tokens,
        new.tokens_in,
        new.tokens_out,
        new.memory_tokens,
        new.seconds,
        new.note,
        json.dumps(new.warnings),
        json.dumps(new.report),
        now,
    )


REDACTION_INSERT = (
    "INSERT INTO redactions(user_id, at, location, kind, fingerprint, start_pos, end_pos, seq,"
    " version) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})"
)
"""The redaction log insert; ``{p}`` is the driver's placeholder (``?`` or ``%s``)."""


def redaction_values(user_id: str, now: float, r: RedactionRecord, version: int) -> tuple[Any, ...]:
    """The values of a new ``redactions`` row, in :data:`REDACTION_INSERT` order."""
    return (user_id, now, r.location, r.kind, r.fingerprint, r.start, r.end, r.seq, version)


MESSAGE_REDACTION_INSERT = (
    "INSERT INTO redactions(user_id, at, location, kind, fingerprint, start_pos, end_pos, seq)"
    " VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})"
)
"""The redaction log insert for a secret cut from a stored message (no version yet)."""


def message_redaction_values(
    user_id: str, now: float, seq: int, r: dict[str, Any]
) -> tuple[Any, ...]:
    """The values of a :data:`MESSAGE_REDACTION_INSERT` row for redaction ``r`` of message ``seq``."""
    return (user_id, now, f"message {seq}", r["kind"], r["fp"], r.get("start"), r.get("end"), seq)


def unread_problems(
    user_id: str,
    messages: Iterable[tuple[int, str, str]],
    reads: Iterable[tuple[list[int], dict[str, Any]]],
    cursor: Cursor,
) -> list[str]:
    """Text the cursor has passed that no update read: ``messages`` are (seq, role, content),
    ``reads`` each update version's (message_ids, report); its report's ``read`` lists
    ``[seq, start, end]`` character ranges (versions without it read their messages whole).
    System and empty messages are never read, so never missing."""
    whole: set[int] = set()
    ranges: dict[int, list[tuple[int, int]]] = {}
    for ids, report in reads:
        if "read" in report:
            for seq, start, end in report["read"]:
                ranges.setdefault(seq, []).append((start, end))
        else:
            whole.update(ids)
    problems: list[str] = []
    for seq, role, content in messages:
        text = content.strip()
        upto = len(text) if seq < cursor[0] else cursor[1] if seq == cursor[0] else 0
        if role == "system" or not text or not upto or seq in whole:
            continue
        pos, gaps = 0, []
        for start, end in sorted(ranges.get(seq, [])):
            if start > pos and text[pos : min(start, upto)].strip():
                gaps.append((pos, min(start, upto)))
            pos = max(pos, end)
        if pos < upto and text[pos:upto].strip():
            gaps.append((pos, upto))
        if gaps and gaps == [(0, upto)]:
            problems.append(f"{user_id}: message {seq} was never read into the memory")
        elif gaps:
            where = ", ".join(f"{a}-{b}" for a, b in gaps)
            problems.append(f"{user_id}: characters {where} of message {seq} were never read")
    return problems


def user_problems(
    user: tuple[str, int, int, int, int],
    numbering: tuple[int, int | None, int | None],
    versions: tuple[int, int, bool],
    consumed: Sequence[tuple[str, str]],
    messages: Iterable[tuple[int, str, str]],
    states: Iterable[str],
) -> list[str]:
    """The invariant problems of one user, from rows any backend reads: ``user`` is (user_id,
    next_seq, cursor, cursor_part, head); ``numbering`` (count, min, max) of its message seqs;
    ``versions`` (count, max version, head version exists); ``consumed`` each update version's
    (message_ids JSON, report JSON) in order; ``messages`` (seq, role, content); ``states`` every
    version's state JSON."""
    uid, next_seq, cursor, cursor_part, head = user
    problems: list[str] = []
    n, lo, hi = numbering
    if n != next_seq or (n and (lo != 0 or hi != n - 1)):
        problems.append(f"{uid}: messages not numbered 0..{next_seq - 1}")
    if not 0 <= cursor <= next_seq:
        problems.append(f"{uid}: cursor {cursor} outside 0..{next_seq}")
    nv, maxv, head_found = versions
    if nv != maxv:
        problems.append(f"{uid}: versions not numbered 1..{maxv}")
    if head and not head_found:
        problems.append(f"{uid}: head v{head} missing")
    # Updates read messages in order; consecutive chunks share at most the one message a chunk
    # boundary split.
    reads = [(json.loads(ids), json.loads(report)) for ids, report in consumed]
    last = -1
    for got, _ in reads:
        if got and got[0] < last:
            problems.append(f"{uid}: message {got[0]} was read into the memory twice")
        last = max(got, default=last)
    done = cursor if cursor_part == 0 else cursor + 1
    if last >= done:
        problems.append(f"{uid}: a version read message {last} beyond the cursor")
    problems += unread_problems(uid, messages, reads, (cursor, cursor_part))
    for state in states:
        try:
            json.loads(state)
        except ValueError:
            problems.append(f"{uid}: a version's state is not valid JSON")
    return problems


def open_store(url: str | Store | Path) -> Store:
    """A store from a URL: ``sqlite:///relative.db``, ``sqlite:////absolute.db``, a file path, or
    ``postgresql://user@host:5432/db`` (:class:`~personamem.store.postgres.PostgresStore`, the
    ``server`` extra; ``?schema=name`` keeps its tables in their own schema).

    ``?synchronous=normal`` (SQLite) trades power-loss durability of the last commits for speed.
    """
    if isinstance(url, Store):
        return url
    url = str(url)
    if url.startswith(("postgres://", "postgresql://")):
        from .postgres import PostgresStore

        return PostgresStore(url)
    if "://" in url and not url.startswith("sqlite:"):
        raise StoreError(
            f"unsupported store URL {url!r}; use sqlite:///path.db or postgresql://host/db"
        )
    sync = "FULL"
    if "?" in url:
        for part in url.split("?", 1)[1].split("&"):
            k, _, v = part.partition("=")
            if k == "synchronous":
                sync = v
            else:
                raise StoreError(f"unknown store option {k!r} in {url!r}")
    from .sqlite import SQLiteStore, sqlite_path

    return SQLiteStore(sqlite_path(url), synchronous=sync)


__all__ = [
    "MESSAGE_REDACTION_INSERT",
    "REDACTION_INSERT",
    "SCHEMA_VERSION",
    "VERSION_COLS",
    "Conflict",
    "Cursor",
    "NewMessage",
    "NewVersion",
    "Provenance",
    "RedactionRecord",
    "Store",
    "StoreError",
    "StoredMessage",
    "UnknownUser",
    "UserInfo",
    "VersionRecord",
    "check_commit",
    "message_redaction_values",
    "open_store",
    "redaction_values",
    "unread_problems",
    "user_problems",
    "version_from_row",
    "version_values",
]
