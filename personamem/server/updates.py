"""Sleep-time memory updates in the API process: ``add`` returns at once, a worker task updates.

One job per user (adding to a user already waiting does not queue a second job). A job that
fails (the model errs) is retried with exponential backoff; after ``max_attempts`` it is a dead
letter, visible at ``GET /v1/users/{id}/updates``, until the next add or flush for that user.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pydantic import BaseModel

log = logging.getLogger("personamem.server")


class JobState(BaseModel):
    """The update state of one user."""

    state: str  # idle | queued | running | retrying | dead
    attempts: int = 0
    last_error: str | None = None
    enqueued_at: float | None = None


@dataclass
class UpdateQueue:
    """Runs ``run(user)`` for queued users on ``workers`` asyncio tasks."""

    run: Callable[[str], Awaitable[None]]
    workers: int = 1
    max_attempts: int = 5
    backoff: float = 1.0
    on_outcome: Callable[[str], None] = lambda outcome: None
    _waiting: dict[str, float] = field(default_factory=dict)
    _jobs: dict[str, JobState] = field(default_factory=dict)
    _wake: asyncio.Event | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _retries: set[asyncio.Task[None]] = field(default_factory=set)

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._tasks = [asyncio.create_task(self._loop()) for _ in range(self.workers)]

    async def stop(self) -> None:
        for t in [*self._tasks, *self._retries]:
            t.cancel()
        for t in [*self._tasks, *self._retries]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []

    def enqueue(self, user: str) -> None:
        now = time.time()
        self._waiting.setdefault(user, now)
        job = self._jobs.get(user)
        if job is None or job.state in ("idle", "dead"):
            self._jobs[user] = JobState(state="queued", enqueued_at=now)
        if self._wake is not None:
            self._wake.set()

    def forget_user(self, user: str) -> None:
        self._waiting.pop(user, None)
        self._jobs.pop(user, None)

    def state(self, user: str) -> JobState:
        return self._jobs.get(user, JobState(state="idle"))

    def depth(self) -> float:
        return float(len(self._waiting))

    def oldest_age(self) -> float:
        return time.time() - min(self._waiting.values()) if self._waiting else 0.0

    def dead_letters(self) -> float:
        return float(sum(1 for j in self._jobs.values() if j.state == "dead"))

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until no job is waiting or running (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._waiting or any(j.state in ("running", "retrying") for j in self._jobs.values()):
            if time.monotonic() > deadline:
                raise TimeoutError("update queue did not drain")
            await asyncio.sleep(0.01)

    async def _loop(self) -> None:
        assert self._wake is not None
        while True:
            if not self._waiting:
                self._wake.clear()
                await self._wake.wait()
                continue
            user = min(self._waiting, key=self._waiting.__getitem__)
            del self._waiting[user]
            job = self._jobs.setdefault(user, JobState(state="queued"))
            job.state = "running"
            job.attempts += 1
            try:
                await self.run(user)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the job failed: retry with backoff, then dead-letter
                job.last_error = f"{type(e).__name__}: {e}"
                if job.attempts >= self.max_attempts:
                    job.state = "dead"
                    self.on_outcome("dead")
                    log.warning("update of a user failed %d times: %s", job.attempts, e)
                else:
                    job.state = "retrying"
                    self.on_outcome("retry")
                    delay = self.backoff * 2 ** (job.attempts - 1)
                    task = asyncio.create_task(self._retry_later(user, delay))
                    self._retries.add(task)
                    task.add_done_callback(self._retries.discard)
                continue
            self.on_outcome("ok")
            if user not in self._waiting:
                self._jobs[user] = JobState(state="idle")

    async def _retry_later(self, user: str, delay: float) -> None:
        await asyncio.sleep(delay)
        job = self._jobs.get(user)
        if job is not None and job.state == "retrying":
            job.state = "queued"
            self._waiting.setdefault(user, time.time())
            if self._wake is not None:
                self._wake.set()


__all__ = ["JobState", "UpdateQueue"]
