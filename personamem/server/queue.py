"""Durable sleep-time updates: jobs in Redis through Dramatiq, run by ``personamem worker``
processes on any number of machines (and by ``serve`` itself unless told otherwise).

A job names a user; running it reads every full chunk of that user's pending messages into the
memory (:func:`update_user`). Jobs survive restarts (Redis), are retried with exponential
backoff when the model fails, and land in Dramatiq's dead-letter queue after the last retry,
where ``GET /v1/users/{id}/updates`` shows them. A worker killed mid-job never acknowledged it:
once its heartbeat is older than ``heartbeat_ms`` another worker's broker maintenance puts the job
back and someone else runs it. Running a job twice is harmless: the store's cursor and
compare-and-swap commit make an update read each message once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..store import AsyncMemory, VersionInfo
from ..store.base import UnknownUser
from .updates import JobState

QUEUE = "memory_updates"


async def update_user(memory: AsyncMemory, internal: str) -> list[VersionInfo]:
    """One sleep-time job: read every full chunk pending for the user (a deleted user: nothing)."""
    try:
        await memory.get(internal)
    except UnknownUser:
        return []
    result = await memory.add([], internal, update=True)
    return result.versions


@dataclass
class QueueConfig:
    """Where the jobs live and how failures are retried."""

    url: str = "redis://127.0.0.1:6379/0"
    namespace: str = "personamem"
    max_retries: int = 5
    min_backoff_ms: int = 1000
    max_backoff_ms: int = 300_000
    heartbeat_ms: int = 60_000
    """A worker silent this long is dead; its unfinished jobs go back to the queue."""
    maintenance_chance: int = 1000
    """Broker commands (per million) that also requeue dead workers' jobs."""
    time_limit_ms: int = 3_600_000


class DurableUpdates:
    """Memory-update jobs in Redis (Dramatiq): enqueue, state per user, depth, dead letters."""

    def __init__(self, config: QueueConfig) -> None:
        import dramatiq
        from dramatiq.brokers.redis import RedisBroker

        self.config = config
        self.broker = RedisBroker(
            url=config.url,
            namespace=config.namespace,
            heartbeat_timeout=config.heartbeat_ms,
            maintenance_chance=config.maintenance_chance,
        )
        self._runner: Callable[[str], None] | None = None
        self.actor = dramatiq.actor(
            self._run,
            broker=self.broker,
            actor_name="update_memory",
            queue_name=QUEUE,
            max_retries=config.max_retries,
            min_backoff=config.min_backoff_ms,
            max_backoff=config.max_backoff_ms,
            time_limit=config.time_limit_ms,
        )
        self._worker: Any = None
        self._dramatiq = dramatiq

    # --- producing ------------------------------------------------------------------------------
    def enqueue(self, internal: str) -> None:
        self.actor.send(internal)

    def _key(self, suffix: str = "") -> str:
        return f"{self.config.namespace}:{QUEUE}{suffix}"

    def _stored(self, suffix: str) -> dict[bytes, Any]:
        """Messages of a queue by their Redis id (not the message's own id)."""
        raw = self.broker.client.hgetall(self._key(suffix + ".msgs"))
        return {k: self._dramatiq.Message.decode(v) for k, v in raw.items()}

    def _messages(self, suffix: str) -> list[Any]:
        return list(self._stored(suffix).values())

    def state(self, internal: str) -> JobState:
        """Dead if a job of the user's is in the dead-letter queue, queued if one waits or runs
        (or waits for a retry), else idle. Reads the queues: cost grows with their length."""
        dead = [m for m in self._messages(".XQ") if m.args and m.args[0] == internal]
        if dead:
            last = max(dead, key=lambda m: m.message_timestamp)
            return JobState(
                state="dead",
                attempts=int(last.options.get("retries", 0)),
                last_error=str(last.options.get("traceback", "")).strip().splitlines()[-1:][0]
                if last.options.get("traceback")
                else None,
                enqueued_at=last.message_timestamp / 1000,
            )
        for suffix, name in (("", "queued"), (".DQ", "retrying")):
            mine = [m for m in self._messages(suffix) if m.args and m.args[0] == internal]
            if mine:
                first = min(m.message_timestamp for m in mine)
                retries = max(int(m.options.get("retries", 0)) for m in mine)
                return JobState(state=name, attempts=retries, enqueued_at=first / 1000)
        return JobState(state="idle")

    def clear_dead(self, internal: str) -> None:
        """Drop the user's dead letters (after a successful flush or a deletion)."""
        c = self.broker.client
        for rid, m in self._stored(".XQ").items():
            if m.args and m.args[0] == internal:
                c.zrem(self._key(".XQ"), rid)
                c.hdel(self._key(".XQ.msgs"), rid)

    def depth(self) -> float:
        c = self.broker.client
        return float(c.hlen(self._key(".msgs")) + c.hlen(self._key(".DQ.msgs")))

    def oldest_age(self) -> float:
        stamps = [m.message_timestamp for m in self._messages("") + self._messages(".DQ")]
        return time.time() - min(stamps) / 1000 if stamps else 0.0

    def dead_letters(self) -> float:
        return float(self.broker.client.hlen(self._key(".XQ.msgs")))

    # --- consuming ------------------------------------------------------------------------------
    def _run(self, internal: str) -> None:
        if self._runner is None:
            raise RuntimeError("no worker runner attached")
        self._runner(internal)

    def start_worker(self, runner: Callable[[str], None], threads: int = 1) -> None:
        """Consume jobs in this process: ``runner(user)`` runs one (it raises to retry)."""
        self._runner = runner
        self._worker = self._dramatiq.Worker(self.broker, queues={QUEUE}, worker_threads=threads)
        self._worker.start()

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        self.broker.close()

    def join(self, timeout_ms: int = 30_000) -> None:
        """Wait until no job waits or runs (tests)."""
        self.broker.join(QUEUE, timeout=timeout_ms)


class LoopRunner:
    """Runs update coroutines on one event loop in a thread of its own (``personamem worker``)."""

    def __init__(self, memory: AsyncMemory) -> None:
        self.memory = memory
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def __call__(self, internal: str) -> None:
        asyncio.run_coroutine_threadsafe(update_user(self.memory, internal), self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


__all__ = ["QUEUE", "DurableUpdates", "LoopRunner", "QueueConfig", "update_user"]
