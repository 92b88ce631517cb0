"""The store's blocking core: reads (memory, sources, history, export) and the versions a
person asks for (edit, undo), each checked before it is written (:meth:`StoreCore._finalize`)."""

from __future__ import annotations

import asyncio
import contextvars
import difflib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from ..memory.agent import MemoryAgent, MemoryConfig
from ..memory.chunking import Chunk
from ..memory.forget import scrub, scrub_tree
from ..memory.merge import FORGET_MATCH, overlap
from ..memory.privacy import PrivacyGuard, Redaction
from ..memory.state import EMPTY, MemoryLine, MemoryState
from ..models import DEFAULT_MEMORY_MODEL, Model, get_model
from .base import (
    Conflict,
    NewMessage,
    NewVersion,
    RedactionRecord,
    Store,
    StoredMessage,
    UnknownUser,
    UserInfo,
    VersionRecord,
    open_store,
)
from .results import (
    LineSources,
    LineView,
    OverCap,
    UserMemory,
    VersionInfo,
)

T = TypeVar("T")
ROLES = ("user", "assistant", "system", "tool")

MessageInput = str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]]


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


_KEEP = frozenset({"forgotten", "note", "lifted_forgets", "forget_requests"})
"""Fields that name what was forgotten on purpose (the user's requests), never scrubbed."""


def _dedupe(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for x in items:
        if x.lower() not in seen:
            seen.add(x.lower())
            out.append(x)
    return out


class StoreCore:
    """The memory store's blocking core (store reads and writes a person asks for); the
    coroutine API :class:`~personamem.store.api.AsyncMemory` runs these in a thread.

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
            given = PrivacyGuard(enabled=False)
        elif privacy is True:
            given = PrivacyGuard()
        else:
            given = privacy
        user_hook = given.on_redact

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

        # The store's own copy: a guard shared by two stores keeps its key and its hook (each
        # store logs its redactions once, keyed by its own fingerprint key).
        guard = replace(given, key=self.store.fingerprint_key(), on_redact=on_redact)
        self.privacy = guard
        if agent is not None:
            self._agent = MemoryAgent(agent.model, config=replace(agent.config, privacy=guard))
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
                **self._agent_options,
            )
            self._agent = MemoryAgent(self.model, config=config)
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
        for m in msgs.values():
            m.content = scrub(m.content, state.forgotten)
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
        """Every version; what the user asked to forget (now) is masked in texts and diffs."""
        with self.store.consistent():
            info = self._info(user_id)
            records = self.store.versions(user_id)
        head = next((r for r in records if r.version == info.head), None)
        forgotten = _state(head).forgotten
        out: list[VersionInfo] = []
        texts: dict[int, str] = {0: EMPTY}
        for rec in records:
            base = texts.get(rec.parent, EMPTY)
            v = VersionInfo.of(rec, _diff(base, rec.text, f"v{rec.parent}", f"v{rec.version}"))
            texts[rec.version] = rec.text
            out.append(VersionInfo.model_validate(scrub_tree(v.model_dump(), forgotten, _KEEP)))
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
        export = {
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
        # What the user asked to forget stays out of everything handed out, not only the memory.
        return scrub_tree(export, state.forgotten, _KEEP)

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
            if new.tokens > self.memory_tokens:
                raise OverCap(
                    f"{user_id}: the edited memory has {new.tokens} tokens, over the cap of "
                    f"{self.memory_tokens}; shorten it (nothing was changed)"
                )
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

    def _pending_chunks(
        self, pending: list[StoredMessage], info: UserInfo, state: MemoryState
    ) -> list[Chunk]:
        """The pending messages as the agent chunks them (after the parts already read)."""
        for i, m in enumerate(pending):
            if m.seq != info.cursor + i:
                raise RuntimeError(f"pending messages are not contiguous at seq {m.seq}")
        return self.agent.chunk(
            [{"role": m.role, "content": m.content} for m in pending],
            start=info.cursor,
            first_number=state.chunks_done,
            skip_chars=info.cursor_part,
        )


__all__ = ["MessageInput", "StoreCore"]
