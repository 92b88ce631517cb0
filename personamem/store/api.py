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
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from ..answer import Answer, Answerer
from ..memory.agent import ChunkReport, MemoryAgent, MemoryUpdateError
from ..memory.chunking import Chunk
from ..memory.merge import detect_forget
from ..memory.state import EMPTY, MemoryState
from ..models import DEFAULT_MEMORY_MODEL, Model, ModelError
from .base import Conflict, NewVersion, RedactionRecord, Store, UnknownUser, VersionRecord
from .core import _REDACTIONS, MessageInput, StoreCore, _diff, _state
from .results import (
    AddResult,
    LeaseLost,
    LineSources,
    MemoryBusy,
    UpdateFailed,
    UserMemory,
    VersionInfo,
)
from .sync import LoopThread, blocking

T = TypeVar("T")


class AsyncMemory(StoreCore):
    """The memory store with coroutine methods (the model-bound ones do the real waiting).

    ``store``: a URL (``sqlite:///path.db``) or a :class:`Store`. ``model``: a spec string for
    :func:`personamem.models.get_model` or a :class:`Model` (loaded on first use).
    ``privacy``: a :class:`PrivacyGuard`, or ``False`` to store and remember secrets as written.
    Other keyword arguments are :class:`~personamem.memory.MemoryConfig` fields of the agent
    (e.g. ``strategy="rewrite"``).
    """

    # --- async API --------------------------------------------------------------------------
    async def _io(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def add(self, messages: MessageInput, user_id: str, *, update: bool = True) -> AddResult:
        """Store messages (a message ``id`` seen before is skipped) and update the memory when a
        full chunk of new tokens is pending. Raises :class:`UpdateFailed` (with ``.result``) if
        the update fails, whatever the error (the model's, a backend breaking the
        :class:`~personamem.models.Model` contract, the store's): the messages are stored and
        stay pending. :class:`MemoryBusy` (also with ``.result``) if another worker holds the
        lease too long."""
        prepared = await self._io(self._prepare, messages)  # redaction, token counts
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
        except MemoryBusy as e:
            await self._fill_pending(result)
            e.result = result
            raise
        except Exception as e:  # the caller must learn its messages were stored, whatever failed
            await self._fill_pending(result)
            why = str(e) if isinstance(e, MemoryUpdateError) else f"{type(e).__name__}: {e}"
            raise UpdateFailed(f"{why}; the messages are stored and still pending", result) from e
        await self._fill_pending(result)
        return result

    async def _fill_pending(self, result: AddResult) -> None:
        mem = await self._io(self._get, result.user_id)
        result.pending_messages, result.pending_tokens = mem.pending_messages, mem.pending_tokens

    async def flush(self, user_id: str) -> list[VersionInfo]:
        """Read every pending message into the memory now, even a partial chunk."""
        await self._io(self._info, user_id)
        return await self._run_updates(user_id, flush=True)

    @asynccontextmanager
    async def _leased(self, user_id: str) -> AsyncIterator[str]:
        """Hold the user's update lease (this process's lock, then the store's lease) for every
        write of the memory: updates, forget, edit and undo. Yields the lease owner."""
        async with self._locks.setdefault(user_id, asyncio.Lock()):
            owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
            await self._acquire(user_id, owner)
            try:
                yield owner
            finally:
                await self._io(self.store.release, user_id, owner)

    async def _renew(self, user_id: str, owner: str) -> None:
        """Extend the lease before a commit; :class:`LeaseLost` if another worker took it."""
        if not await self._io(self.store.renew, user_id, owner, self.lease_seconds):
            raise LeaseLost(
                f"{user_id}: lost the update lease (held longer than {self.lease_seconds:.0f}s, "
                "and another worker took over); nothing more was committed"
            )

    async def _run_updates(self, user_id: str, flush: bool) -> list[VersionInfo]:
        made: list[VersionInfo] = []
        conflicts = 0
        async with self._leased(user_id) as owner:
            while True:
                try:
                    info, head, pending = await self._io(self.store.snapshot, user_id)
                except UnknownUser:
                    return made  # deleted meanwhile
                state = _state(head)
                chunks = await self._io(self._pending_chunks, pending, info, state)
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
                            new_cursor = (nxt.index, nxt.start)
                        else:
                            new_cursor = (info.messages, 0)
                        state, rec = await self._update_one(
                            user_id, owner, state, chunk, head_v, cursor, new_cursor
                        )
                        made.append(self._info_of(rec, head))
                        head, head_v, cursor = rec, rec.version, new_cursor
                except Conflict:
                    conflicts += 1
                    if conflicts > 10:
                        raise
                    continue
                except UnknownUser:
                    return made

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
        owner: str,
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
            new, report = await self.agent.update(state, chunk)
            new, warnings = await self._io(
                self._finalize, user_id, new, drop_forgotten=new.forgotten
            )
        finally:
            _REDACTIONS.reset(token)
        warnings = [*report.warnings, *warnings]
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
            report={
                **self._report(report),
                "read": [[p.index, p.start, p.end] for p in chunk.pieces],
            },
        )
        await self._renew(user_id, owner)
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

    @staticmethod
    def _report(report: ChunkReport) -> dict[str, Any]:
        d = report.model_dump(exclude={"redactions"})
        d["redactions"] = [{"kind": r["kind"]} for r in report.redactions]
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
        answerer = Answerer(await self._io(lambda: self.model))  # loading is CPU work
        if options:
            return await answerer.mcq(query, list(options), memory=memory)
        return await answerer.open(query, memory=memory)

    async def history(self, user_id: str) -> list[VersionInfo]:
        """Every version, oldest first, with what produced it and a unified diff from its parent."""
        return await self._io(self._history, user_id)

    async def edit(self, user_id: str, text: str) -> VersionInfo:
        """Replace the memory with a person's text (a statement per line, ``[msg N]`` optional)."""
        async with self._leased(user_id):
            return await self._io(self._edit, user_id, text)

    async def forget(self, user_id: str, what: str) -> VersionInfo:
        """Remove what ``what`` describes from the memory and keep it out of later updates
        (``what`` passes the privacy guard first: a secret in it is never stored)."""
        request: list[RedactionRecord] = []
        token = _REDACTIONS.set(request)
        try:
            what = await self._io(self._clean_request, what)
        finally:
            _REDACTIONS.reset(token)
        agent = await self._io(lambda: self.agent)  # may load the model: not on the loop
        async with self._leased(user_id) as owner:
            for _ in range(20):
                info = await self._io(self._info, user_id)
                head = await self._io(self.store.version, user_id, info.head) if info.head else None
                sink = list(request)
                token = _REDACTIONS.set(sink)
                try:
                    try:
                        new, _ = await agent.forget(_state(head), what)
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
                    model=agent.model.name,
                    memory_tokens=new.tokens,
                    note=what,
                    warnings=warnings,
                    report={"removed": old_n - len(new.lines)},
                )
                await self._renew(user_id, owner)
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

    def _clean_request(self, what: str) -> str:
        """What a forget request names, redacted like every text that enters the store."""
        what, _ = self.privacy.clean(what, where="forget")
        what = detect_forget(what) or what.strip()
        if not what:
            raise ValueError("say what to forget")
        return what

    async def undo(self, user_id: str, version: int | None = None) -> VersionInfo:
        """Restore the version before the current one (or ``version``; 0 is the empty memory) as a
        new version. Nothing is deleted; undoing repeatedly walks further back."""
        async with self._leased(user_id):
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
    "Memory",
    "MemoryBusy",
    "UpdateFailed",
    "UserMemory",
    "VersionInfo",
    "detect_forget",
]
