"""Memory as a product: one durable, human-readable, versioned memory per user.

>>> mem = Memory(store="sqlite:///memory.db", model="local/qwen2.5-1.5b")
>>> mem.add([{"role": "user", "content": "...", "id": "m1"}], user_id="alice")
>>> print(mem.get("alice").text)          # every line cites the messages behind it
>>> mem.history("alice")                  # every version, what produced it, diffs
>>> mem.edit("alice", "- Likes jazz")     # a person corrects it (a new version)
>>> mem.forget("alice", "that I smoke")   # gone, and kept out of later updates
>>> mem.undo("alice")                     # restore the previous version (as a new one)

How it works: ``add`` stores the messages (redacted, deduplicated by id) in one transaction, then
updates the memory one chunk at a time once a full chunk of new tokens is pending (``flush``
forces the rest). Each update reads only the previous memory and the pending messages (never the
old history), so its cost is flat in the history's length; it commits the new version and moves
the read cursor in one transaction. Updates of one user are serialized by a lease in the store
(plus a compare-and-swap on commit); a failed model call leaves memory and pending messages as
they were. :class:`AsyncMemory` has the same methods as coroutines.
"""

from __future__ import annotations

import asyncio
import contextvars
import difflib
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from ..answer import Answer, Answerer
from ..memory import prompts
from ..memory.agent import ChunkReport, MemoryAgent, MemoryConfig, MemoryUpdateError
from ..memory.chunking import SEP, Chunk, Piece, split_message
from ..memory.merge import detect_forget, overlap
from ..memory.merge import forget_request as agent_forget_request
from ..memory.ownership import not_the_users
from ..memory.privacy import PrivacyGuard, Redaction
from ..memory.state import EMPTY, MemoryLine, MemoryState
from ..models import DEFAULT_MEMORY_MODEL, Model, ModelError, get_model
from .base import (
    Conflict,
    NewMessage,
    NewVersion,
    Provenance,
    RedactionRecord,
    Store,
    StoredMessage,
    UnknownUser,
    UserInfo,
    VersionRecord,
    open_store,
)
from .sync import LoopThread, blocking
from .results import (
    AddResult,
    LineSources,
    LineView,
    MemoryBusy,
    UpdateFailed,
    UserMemory,
    VersionInfo,
)

T = TypeVar("T")
ROLES = ("user", "assistant", "system", "tool")
FORGET_MATCH = 0.6
"""Word overlap at which a memory line counts as the thing a user asked to forget (as the agent)."""

MessageInput = str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]]


# --- the agent as the store runs it ------------------------------------------------------------
_SKIP_FORGET: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "personamem_skip_forget", default=frozenset()
)


class StoreAgent(MemoryAgent):
    """:class:`MemoryAgent` whose in-chat forget requests are vetted by :func:`detect_forget`:
    a request the agent's own detector sees in an editing instruction ("remove the comma from
    this sentence") is skipped instead of deleting matching memory lines."""

    async def _forget(self, state: MemoryState, what: str) -> int:
        if what in _SKIP_FORGET.get():
            return 0
        return await super()._forget(state, what)

    async def about(self, note: str, what: str) -> bool:
        """Whether a memory note is about something the user asked to forget (the model decides)."""
        return await self._yes(
            f"Note: {note}\nThe user asked: forget {what}.\n"
            "Is the note about what the user asked to forget? Answer yes or no.",
            prompts.REPLACE_SYSTEM,
        )


# --- helpers -----------------------------------------------------------------------------------
_REDACTIONS: contextvars.ContextVar[list[RedactionRecord] | None] = contextvars.ContextVar(
    "personamem_redactions", default=None
)


def _normalize(messages: MessageInput) -> list[dict[str, Any]]:
    """Messages as dicts with role, content and an optional id (a bare string is a user turn)."""
    if isinstance(messages, (str, Mapping)):
        messages = [messages]
    out: list[dict[str, Any]] = []
    for m in messages:
        if isinstance(m, str):
            m = {"role": "user", "content": m}
        if not isinstance(m, Mapping) or not isinstance(m.get("content"), str):
            raise ValueError(f"a message needs a string 'content': {m!r}")
        role = str(m.get("role", "user"))
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; use one of {ROLES}")
        mid = m.get("id", m.get("message_id"))
        out.append({"role": role, "content": m["content"], "id": None if mid is None else str(mid)})
    return out


def _diff(old: str, new: str, a: str, b: str) -> str:
    """Unified diff of two memory texts (the empty memory has no lines)."""
    lines = [[] if t == EMPTY else t.splitlines() for t in (old, new)]
    return "\n".join(difflib.unified_diff(lines[0], lines[1], a, b, lineterm=""))


def _state(rec: VersionRecord | None) -> MemoryState:
    return MemoryState.model_validate_json(rec.state) if rec else MemoryState()


def _dedupe(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for x in items:
        if x.lower() not in seen:
            seen.add(x.lower())
            out.append(x)
    return out


class AsyncMemory:
    """The memory store with coroutine methods (the model-bound ones do the real waiting).

    ``store``: a URL (``sqlite:///path.db``) or a :class:`Store`. ``model``: a spec string for
    :func:`personamem.models.get_model` or a :class:`Model` (loaded on first use).
    ``privacy``: a :class:`PrivacyGuard` (its fingerprint key is replaced by the store's), or
    ``False`` to store and remember secrets as written. Other keyword arguments configure the
    :class:`MemoryAgent` (e.g. ``strategy="rewrite"``).
    """

    def __init__(
        self,
        store: str | Store = "sqlite:///personamem.db",
        model: str | Model = DEFAULT_MEMORY_MODEL,
        chunk_tokens: int = 5000,
        memory_tokens: int = 2048,
        *,
        privacy: PrivacyGuard | bool = True,
        lock_timeout: float = 600.0,
        lease_seconds: float = 900.0,
        agent: MemoryAgent | None = None,
        **agent_options: Any,
    ) -> None:
        self.store = open_store(store)
        self._model_spec = model
        self._agent = agent
        self.chunk_tokens = agent.config.chunk_tokens if agent else chunk_tokens
        self.memory_tokens = agent.config.memory_tokens if agent else memory_tokens
        self._agent_options = agent_options
        self.lock_timeout = lock_timeout
        self.lease_seconds = lease_seconds
        if privacy is False:
            guard = PrivacyGuard(enabled=False)
        elif privacy is True:
            guard = PrivacyGuard()
        else:
            guard = privacy
        guard.key = self.store.fingerprint_key()
        user_hook = guard.on_redact

        def on_redact(r: Redaction, where: str) -> None:
            sink = _REDACTIONS.get()
            if sink is not None:
                sink.append(
                    RedactionRecord(
                        kind=r.kind,
                        location=where or "memory",
                        fingerprint=r.fingerprint,
                        start=r.start,
                        end=r.end,
                        at=time.time(),
                    )
                )
            if user_hook:
                user_hook(r, where)

        guard.on_redact = on_redact
        self.privacy = guard
        if agent is not None:
            agent.config.privacy = guard
        self._locks: dict[str, asyncio.Lock] = {}

    # --- model and agent -------------------------------------------------------------------
    @property
    def model(self) -> Model:
        if isinstance(self._model_spec, str):
            self._model_spec = get_model(self._model_spec)
        return self._model_spec

    @property
    def agent(self) -> MemoryAgent:
        if self._agent is None:
            config = MemoryConfig(
                chunk_tokens=self.chunk_tokens,
                memory_tokens=self.memory_tokens,
                privacy=self.privacy,
            )
            self._agent = StoreAgent(self.model, config=config, **self._agent_options)
        return self._agent

    def _count(self, text: str) -> int:
        return self.model.count_tokens(text)

    # --- sync core (store only; the async methods run these in a thread) --------------------
    def _info(self, user_id: str) -> UserInfo:
        info = self.store.user(user_id)
        if info is None:
            raise UnknownUser(user_id)
        return info

    def _get(self, user_id: str) -> UserMemory:
        info, head, pending = self.store.snapshot(user_id)
        state = _state(head)
        readable = [m for m in pending if m.role != "system"]
        return UserMemory(
            user_id=user_id,
            version=info.head,
            text=state.text,
            lines=[LineView(text=ln.text, sources=ln.sources) for ln in state.lines],
            forgotten=state.forgotten,
            tokens=state.tokens,
            messages=info.messages,
            pending_messages=len(readable),
            pending_tokens=sum(m.tokens for m in readable),
            updated_at=head.created_at if head else None,
        )

    def _sources(self, user_id: str) -> list[LineSources]:
        with self.store.consistent():
            self._info(user_id)
            state = _state(self.store.head(user_id))
            cited = {i for ln in state.lines for i in ln.sources}
            msgs = {m.seq: m for m in self.store.messages(user_id, seqs=cited)}
        return [
            LineSources(text=ln.text, sources=[msgs[i] for i in ln.sources if i in msgs])
            for ln in state.lines
        ]

    def _context(self, user_id: str, max_tokens: int | None = None) -> str:
        head = self.store.head(user_id)
        state = _state(head)
        if not state.lines:
            return EMPTY
        if max_tokens is None:
            return state.context()
        kept: list[MemoryLine] = []
        used = 0
        for ln in reversed(state.lines):  # the most recent lines first
            t = self._count(ln.render(sources=False)) + 1
            if used + t > max_tokens:
                break
            kept.append(ln)
            used += t
        return MemoryState(lines=kept[::-1]).context() if kept else EMPTY

    def _history(self, user_id: str) -> list[VersionInfo]:
        with self.store.consistent():
            self._info(user_id)
            records = self.store.versions(user_id)
        out: list[VersionInfo] = []
        texts: dict[int, str] = {0: EMPTY}
        for rec in records:
            base = texts.get(rec.parent, EMPTY)
            out.append(
                VersionInfo.of(rec, _diff(base, rec.text, f"v{rec.parent}", f"v{rec.version}"))
            )
            texts[rec.version] = rec.text
        return out

    def _export(self, user_id: str) -> dict[str, Any]:
        with self.store.consistent():
            return self._export_now(user_id)

    def _export_now(self, user_id: str) -> dict[str, Any]:
        info = self._info(user_id)
        versions = self.store.versions(user_id)
        head = next((v for v in versions if v.version == info.head), None)
        state = _state(head)
        history = {v.version: v for v in self._history(user_id)}
        return {
            "format": "personamem-user-export/1",
            "exported_at": time.time(),
            "store": self.store.url,
            "user": info.model_dump(),
            "memory": {
                "version": info.head,
                "text": state.text,
                "lines": [ln.model_dump() for ln in state.lines],
                "forgotten": state.forgotten,
            },
            "versions": [
                {
                    **history[v.version].model_dump(),
                    "lines": [ln.model_dump() for ln in _state(v).lines],
                    "forgotten": _state(v).forgotten,
                }
                for v in versions
            ],
            "messages": [m.model_dump() for m in self.store.messages(user_id)],
            "redactions": [r.model_dump() for r in self.store.redactions(user_id)],
            "privacy": {"kinds": list(self.privacy.kinds), "enabled": self.privacy.enabled},
        }

    def _finalize(
        self, user_id: str, state: MemoryState, *, drop_forgotten: Iterable[str] = ()
    ) -> tuple[MemoryState, list[str]]:
        """Checks every version passes before it is written: no secrets, nothing forgotten,
        citations only of stored messages. Returns the state and warnings."""
        warnings: list[str] = []
        state = state.model_copy(deep=True)
        state.forgotten = _dedupe(state.forgotten)
        check = list(drop_forgotten)
        keep: list[MemoryLine] = []
        for ln in state.lines:
            if any(overlap(f, ln.text) >= FORGET_MATCH for f in check):
                warnings.append(
                    f"dropped a line about something the user asked to forget: {ln.text!r}"
                )
                continue
            text, found = self.privacy.clean(ln.text, where="memory")
            if found:
                warnings.append(f"redacted {len(found)} secret(s) in a memory line")
            if not text.replace("[REDACTED", "").strip(" ]"):
                continue
            keep.append(ln.model_copy(update={"text": text}))
        cited = {i for ln in keep for i in ln.sources}
        exists = self.store.existing_seqs(user_id, cited) if cited else set()
        missing = cited - exists
        if missing:
            warnings.append(f"removed citations of messages that do not exist: {sorted(missing)}")
            for ln in keep:
                ln.sources = [i for i in ln.sources if i in exists]
        state.lines = keep
        state.tokens = self._count(state.text) if keep else 0
        return state, warnings

    def _commit_manual(
        self,
        user_id: str,
        build: Callable[[VersionRecord | None, UserInfo], NewVersion],
        where: str,
    ) -> VersionRecord:
        """Write a version a person asked for (edit, undo), retrying if an update got in first."""
        for _ in range(20):
            info = self._info(user_id)
            head = self.store.version(user_id, info.head) if info.head else None
            sink: list[RedactionRecord] = []
            token = _REDACTIONS.set(sink)
            try:
                new = build(head, info)
            finally:
                _REDACTIONS.reset(token)
            for r in sink:
                r.location = where
            try:
                return self.store.commit_version(
                    user_id, new, expect_head=info.head, redactions=sink
                )
            except Conflict:
                continue
        raise Conflict(f"{user_id}: the memory kept changing; try again")

    def _edit(self, user_id: str, text: str) -> VersionInfo:
        def build(head: VersionRecord | None, info: UserInfo) -> NewVersion:
            old = _state(head)
            parsed = MemoryState.from_text(text)
            new = old.model_copy(deep=True)
            new.lines = parsed.lines
            old_texts = {ln.text for ln in old.lines}
            added = [ln.text for ln in parsed.lines if ln.text not in old_texts]
            # What a person writes back in is no longer forgotten.
            new.forgotten = [
                f for f in old.forgotten if not any(overlap(f, a) >= FORGET_MATCH for a in added)
            ]
            new.warnings = []
            new, warnings = self._finalize(user_id, new)
            return NewVersion(
                source="edit",
                state=new.model_dump_json(),
                text=new.text,
                memory_tokens=new.tokens,
                warnings=warnings,
                report={"lines_added": len(added)},
            )

        return self._version_info(user_id, self._commit_manual(user_id, build, "edit"))

    def _undo(self, user_id: str, version: int | None = None) -> VersionInfo:
        def build(head: VersionRecord | None, info: UserInfo) -> NewVersion:
            if head is None:
                raise ValueError(f"{user_id} has no memory version to undo")
            if version is None:
                base = (
                    head.restores
                    if head.source == "undo" and head.restores is not None
                    else head.version
                )
                base_rec = self.store.version(user_id, base)
                target = base_rec.parent if base_rec else 0
                if base == 0 or base_rec is None:
                    raise ValueError(f"{user_id}: nothing left to undo")
            else:
                target = version
            if target != 0 and self.store.version(user_id, target) is None:
                raise ValueError(f"{user_id} has no version {target}")
            if target == info.head:
                raise ValueError(f"v{target} is already the current version")
            target_rec = self.store.version(user_id, target) if target else None
            restored = _state(target_rec)
            current = _state(head)
            # forget() calls being undone are lifted; other forget requests stay in force.
            lifted = {
                v.note
                for v in self.store.versions(user_id)
                if v.source == "forget" and target < v.version <= head.version
            }
            forgotten = [f for f in current.forgotten if f not in lifted]
            newer = [f for f in forgotten if f not in restored.forgotten]
            restored.forgotten = forgotten
            restored.next_message = current.next_message
            restored.chunks_done = current.chunks_done
            restored.warnings = []
            state, warnings = self._finalize(user_id, restored, drop_forgotten=newer)
            return NewVersion(
                source="undo",
                state=state.model_dump_json(),
                text=state.text,
                restores=target,
                memory_tokens=state.tokens,
                note=f"restored v{target}",
                warnings=warnings,
                report={"lifted_forgets": sorted(lifted)},
            )

        return self._version_info(user_id, self._commit_manual(user_id, build, "undo"))

    def _version_info(self, user_id: str, rec: VersionRecord) -> VersionInfo:
        parent = self.store.version(user_id, rec.parent) if rec.parent else None
        base = parent.text if parent else EMPTY
        return VersionInfo.of(rec, _diff(base, rec.text, f"v{rec.parent}", f"v{rec.version}"))

    def _delete_user(self, user_id: str) -> dict[str, int]:
        self._info(user_id)
        return self.store.delete_user(user_id)

    def _prepare(self, messages: MessageInput) -> list[NewMessage]:
        prepared: list[NewMessage] = []
        for m in _normalize(messages):
            content, found = self.privacy.clean(m["content"], where="message")
            prepared.append(
                NewMessage(
                    msg_id=m["id"],
                    role=m["role"],
                    content=content,
                    tokens=self._count(content) if m["role"] != "system" else 0,
                    redactions=[r.as_dict() for r in found],
                )
            )
        return prepared

    # --- chunks of pending messages -------------------------------------------------------
    def _pending_chunks(
        self, pending: list[StoredMessage], cursor: int, cursor_part: int, first_number: int
    ) -> list[Chunk]:
        """The pending messages as chunks, starting after the parts of message ``cursor``
        already read (a message longer than a chunk is read in parts, as the agent splits it)."""
        count = self.agent.model.count_tokens
        limit = self.agent.config.chunk_tokens
        pieces: list[Piece] = []
        for i, m in enumerate(pending):
            if m.seq != cursor + i:
                raise RuntimeError(f"pending messages are not contiguous at seq {m.seq}")
            if m.role == "system" or not m.content.strip():
                continue
            parts = split_message(m.seq, {"role": m.role, "content": m.content}, count, limit)
            if m.seq == cursor and cursor_part:
                parts = parts[cursor_part:]
            pieces.extend(parts)
        chunks: list[Chunk] = []
        current: list[Piece] = []
        tokens = 0
        for p in pieces:
            if current:
                candidate = count(SEP.join(x.render() for x in [*current, p]))
                if candidate <= limit:
                    current.append(p)
                    tokens = candidate
                    continue
                chunks.append(Chunk(first_number + len(chunks), current, tokens))
            current = [p]
            tokens = count(p.render())
        if current:
            chunks.append(Chunk(first_number + len(chunks), current, tokens))
        return chunks

    # --- async API --------------------------------------------------------------------------
    async def _io(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def add(self, messages: MessageInput, user_id: str, *, update: bool = True) -> AddResult:
        """Store messages (a message ``id`` seen before is skipped) and update the memory when a
        full chunk of new tokens is pending. Raises :class:`UpdateFailed` (with ``.result``) if
        the model fails: the messages are stored and stay pending."""
        prepared = self._prepare(messages)
        seqs, dups = await self._io(self.store.add_messages, user_id, prepared)
        result = AddResult(
            user_id=user_id,
            stored=seqs,
            duplicates=dups,
            redactions=sum(len(m.redactions) for m in prepared if m.msg_id not in dups),
            versions=[],
            pending_messages=0,
            pending_tokens=0,
        )
        try:
            if update:
                result.versions = await self._run_updates(user_id, flush=False)
        except MemoryUpdateError as e:
            await self._fill_pending(result)
            raise UpdateFailed(f"{e}; the messages are stored and still pending", result) from e
        except MemoryBusy as e:
            await self._fill_pending(result)
            e.result = result
            raise
        await self._fill_pending(result)
        return result

    async def _fill_pending(self, result: AddResult) -> None:
        mem = await self._io(self._get, result.user_id)
        result.pending_messages, result.pending_tokens = mem.pending_messages, mem.pending_tokens

    async def flush(self, user_id: str) -> list[VersionInfo]:
        """Read every pending message into the memory now, even a partial chunk."""
        await self._io(self._info, user_id)
        return await self._run_updates(user_id, flush=True)

    async def _run_updates(self, user_id: str, flush: bool) -> list[VersionInfo]:
        lock = self._locks.setdefault(user_id, asyncio.Lock())
        made: list[VersionInfo] = []
        async with lock:
            owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
            await self._acquire(user_id, owner)
            try:
                conflicts = 0
                while True:
                    try:
                        info, head, pending = await self._io(self.store.snapshot, user_id)
                    except UnknownUser:
                        return made  # deleted meanwhile
                    state = _state(head)
                    chunks = self._pending_chunks(
                        pending, info.cursor, info.cursor_part, state.chunks_done
                    )
                    todo = chunks if flush else chunks[:-1]
                    if not todo:
                        if flush and not chunks and pending:  # only system or empty messages
                            await self._io(
                                self.store.advance_cursor,
                                user_id,
                                expect_cursor=(info.cursor, info.cursor_part),
                                new_cursor=(info.messages, 0),
                            )
                        return made
                    head_v, cursor = info.head, (info.cursor, info.cursor_part)
                    try:
                        for i, chunk in enumerate(todo):
                            if i + 1 < len(chunks):
                                nxt = chunks[i + 1].pieces[0]
                                new_cursor = (nxt.index, nxt.part - 1)
                            else:
                                new_cursor = (info.messages, 0)
                            state, rec = await self._update_one(
                                user_id, state, chunk, head_v, cursor, new_cursor
                            )
                            made.append(self._info_of(rec, head))
                            head, head_v, cursor = rec, rec.version, new_cursor
                            await self._io(self.store.renew, user_id, owner, self.lease_seconds)
                    except Conflict:
                        conflicts += 1
                        if conflicts > 10:
                            raise
                        continue
                    except UnknownUser:
                        return made
            finally:
                await self._io(self.store.release, user_id, owner)

    @staticmethod
    def _info_of(rec: VersionRecord, parent: VersionRecord | None) -> VersionInfo:
        base = parent.text if parent else EMPTY
        return VersionInfo.of(rec, _diff(base, rec.text, f"v{rec.parent}", f"v{rec.version}"))

    async def _acquire(self, user_id: str, owner: str) -> None:
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.02
        while not await self._io(self.store.acquire, user_id, owner, self.lease_seconds):
            if time.monotonic() > deadline:
                raise MemoryBusy(
                    f"{user_id}: another worker is updating this memory "
                    f"(waited {self.lock_timeout:.0f}s)"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    async def _update_one(
        self,
        user_id: str,
        state: MemoryState,
        chunk: Chunk,
        head_v: int,
        cursor: tuple[int, int],
        new_cursor: tuple[int, int],
    ) -> tuple[MemoryState, VersionRecord]:
        """``M_i = f(C_i, M_{i-1})`` for one chunk, committed with the cursor move."""
        sink: list[RedactionRecord] = []
        token = _REDACTIONS.set(sink)
        t0 = time.perf_counter()
        try:
            before = len(state.forgotten)
            extra, false_requests = [], []
            for p in chunk.pieces:
                if p.role != "user":
                    continue
                mine = detect_forget(p.content)
                # Every strategy but "rewrite" acts on the agent's own detector.
                theirs = (
                    agent_forget_request(p.content)
                    if self.agent.config.strategy != "rewrite"
                    else None
                )
                if mine and mine != theirs:
                    extra.append(mine)
                if theirs and not mine:
                    false_requests.append(theirs)
            start = state
            for what in extra:
                start, _ = await self.agent.forget(start, what)
            skip = _SKIP_FORGET.set(frozenset(false_requests))
            try:
                new, report = await self.agent.update(start, chunk)
            finally:
                _SKIP_FORGET.reset(skip)
            added = new.forgotten[before:]
            for fr in false_requests:  # not a request to forget (e.g. an edit of a text)
                if fr in added:
                    added.remove(fr)
            new.forgotten = new.forgotten[:before] + added
            dropped = await self._keep_forgotten_out(start, new)
            dropped += self._keep_others_out(start, new, chunk)
            new, warnings = await self._io(
                self._finalize, user_id, new, drop_forgotten=new.forgotten
            )
        except ModelError as e:
            raise MemoryUpdateError(f"model failed on chunk {chunk.number}: {e}") from e
        finally:
            _REDACTIONS.reset(token)
        warnings = [*report.warnings, *dropped, *warnings]
        rec_new = NewVersion(
            source="update",
            state=new.model_dump_json(),
            text=new.text,
            model=self.agent.model.name,
            prompt_version=self.agent.prompt_version,
            message_ids=chunk.message_ids,
            chunk_tokens=chunk.tokens,
            tokens_in=report.tokens_in,
            tokens_out=report.tokens_out,
            memory_tokens=new.tokens,
            seconds=time.perf_counter() - t0,
            note=f"chunk {chunk.number}: messages {chunk.message_ids[0]}-{chunk.message_ids[-1]}",
            warnings=warnings,
            report=self._report(report, extra),
        )
        rec = await self._io(
            self.store.commit_version,
            user_id,
            rec_new,
            expect_head=head_v,
            expect_cursor=cursor,
            new_cursor=new_cursor,
            redactions=sink,
        )
        return new, rec

    async def _keep_forgotten_out(self, before: MemoryState, new: MemoryState) -> list[str]:
        """Drop new lines about anything forgotten: same words, or partly the same words and the
        model says it is the same thing. Returns warnings."""
        old = {ln.text for ln in before.lines}
        warnings: list[str] = []
        keep: list[MemoryLine] = []
        for ln in new.lines:
            drop = False
            if ln.text not in old:
                for f in new.forgotten:
                    s = overlap(f, ln.text)
                    if s >= FORGET_MATCH or (
                        s >= 0.34
                        and isinstance(self.agent, StoreAgent)
                        and await self.agent.about(ln.text, f)
                    ):
                        warnings.append(f"kept out a new line about forgotten {f!r}: {ln.text!r}")
                        drop = True
                        break
            if not drop:
                keep.append(ln)
        new.lines = keep
        return warnings

    @staticmethod
    def _keep_others_out(before: MemoryState, new: MemoryState, chunk: Chunk) -> list[str]:
        """Drop new lines plainly not about the user (the agent should have said so)."""
        old = {ln.text for ln in before.lines}
        warnings: list[str] = []
        keep: list[MemoryLine] = []
        for ln in new.lines:
            why = None if ln.text in old else not_the_users(ln.text, chunk)
            if why:
                warnings.append(f"not stored: {why}: {ln.text!r}")
            else:
                keep.append(ln)
        new.lines = keep
        return warnings

    @staticmethod
    def _report(report: ChunkReport, extra_forgets: list[str]) -> dict[str, Any]:
        d = report.model_dump(exclude={"redactions"})
        d["redactions"] = [{"kind": r["kind"]} for r in report.redactions]
        d["forget_requests"] = extra_forgets
        return d

    async def get(self, user_id: str) -> UserMemory:
        """The current memory: text with citations, lines with their source messages, counts."""
        return await self._io(self._get, user_id)

    async def sources(self, user_id: str) -> list[LineSources]:
        """Each line of the memory with the stored messages that support it."""
        return await self._io(self._sources, user_id)

    async def context(self, user_id: str, max_tokens: int | None = None) -> str:
        """The memory as given to a model (no citations), newest lines kept within ``max_tokens``.
        An unknown user has an empty memory."""
        return await self._io(self._context, user_id, max_tokens)

    async def answer(
        self,
        user_id: str,
        query: str,
        options: list[str] | None = None,
        *,
        max_tokens: int | None = None,
    ) -> Answer:
        """Answer ``query`` from the user's memory: pick one of ``options`` or write freely."""
        memory = await self.context(user_id, max_tokens)
        answerer = Answerer(self.model)
        if options:
            return await answerer.mcq(query, list(options), memory=memory)
        return await answerer.open(query, memory=memory)

    async def history(self, user_id: str) -> list[VersionInfo]:
        """Every version, oldest first, with what produced it and a unified diff from its parent."""
        return await self._io(self._history, user_id)

    async def edit(self, user_id: str, text: str) -> VersionInfo:
        """Replace the memory with a person's text (a statement per line, ``[msg N]`` optional)."""
        return await self._io(self._edit, user_id, text)

    async def forget(self, user_id: str, what: str) -> VersionInfo:
        """Remove what ``what`` describes from the memory and keep it out of later updates."""
        what = detect_forget(what) or what.strip()
        if not what:
            raise ValueError("say what to forget")
        lock = self._locks.setdefault(user_id, asyncio.Lock())
        async with lock:
            for _ in range(20):
                info = await self._io(self._info, user_id)
                head = await self._io(self.store.version, user_id, info.head) if info.head else None
                sink: list[RedactionRecord] = []
                token = _REDACTIONS.set(sink)
                try:
                    try:
                        new, _ = await self.agent.forget(_state(head), what)
                    except ModelError as e:
                        raise MemoryUpdateError(f"model failed: {e}; nothing changed") from e
                    new, warnings = await self._io(
                        self._finalize, user_id, new, drop_forgotten=[what]
                    )
                finally:
                    _REDACTIONS.reset(token)
                old_n = len(_state(head).lines)
                rec_new = NewVersion(
                    source="forget",
                    state=new.model_dump_json(),
                    text=new.text,
                    model=self.agent.model.name,
                    memory_tokens=new.tokens,
                    note=what,
                    warnings=warnings,
                    report={"removed": old_n - len(new.lines)},
                )
                try:
                    rec = await self._io(
                        self.store.commit_version,
                        user_id,
                        rec_new,
                        expect_head=info.head,
                        redactions=sink,
                    )
                except Conflict:
                    continue
                return self._info_of(rec, head)
        raise Conflict(f"{user_id}: the memory kept changing; try again")

    async def undo(self, user_id: str, version: int | None = None) -> VersionInfo:
        """Restore the version before the current one (or ``version``; 0 is the empty memory) as a
        new version. Nothing is deleted; undoing repeatedly walks further back."""
        return await self._io(self._undo, user_id, version)

    async def export(self, user_id: str) -> dict[str, Any]:
        """Everything stored about the user as JSON-ready data (secrets were never stored)."""
        return await self._io(self._export, user_id)

    async def delete_user(self, user_id: str) -> dict[str, int]:
        """Delete the user's messages, versions, redaction log and pending state."""
        return await self._io(self._delete_user, user_id)

    async def users(self) -> list[str]:
        """Every user id in the store."""
        return await self._io(self.store.users)

    def close(self) -> None:
        self.store.close()



@blocking(AsyncMemory)
class Memory:
    """The memory store with plain (blocking) methods: every coroutine method of
    :class:`AsyncMemory`, with the same name, arguments and docstring, run on a private
    event-loop thread (so it also works inside a running loop, e.g. a notebook)."""

    def __init__(
        self,
        store: str | Store = "sqlite:///personamem.db",
        model: str | Model = DEFAULT_MEMORY_MODEL,
        chunk_tokens: int = 5000,
        memory_tokens: int = 2048,
        **options: Any,
    ) -> None:
        self.aio = AsyncMemory(store, model, chunk_tokens, memory_tokens, **options)
        self._loop_thread = LoopThread("personamem-memory")

    @property
    def store(self) -> Store:
        return self.aio.store

    @property
    def model(self) -> Model:
        return self.aio.model

    @property
    def agent(self) -> MemoryAgent:
        return self.aio.agent

    def close(self) -> None:
        """Stop the loop thread and release the store's connections."""
        self._loop_thread.stop()
        self.aio.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "AddResult",
    "AsyncMemory",
    "LineSources",
    "LineView",
    "Memory",
    "MemoryBusy",
    "StoreAgent",
    "UpdateFailed",
    "UserMemory",
    "VersionInfo",
    "detect_forget",
]
