"""Durable sleep-time updates: jobs in the local Redis (Dramatiq), run in the API process or by
separate worker processes. A worker killed (SIGKILL) mid-job loses nothing: the job completes on
another worker. Failing jobs are retried with backoff, then dead letters visible in the API."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from memory_fakes import chat, echo_model
from server_helpers import asgi_client, make_app

from personamem.store import SQLiteStore

REDIS = os.environ.get("PERSONAMEM_REDIS_URL", "redis://127.0.0.1:6379/15")
TESTS = Path(__file__).parent


@pytest.fixture
def namespace() -> Iterator[str]:
    try:
        import redis

        client = redis.Redis.from_url(REDIS)
        client.ping()
    except Exception as e:  # noqa: BLE001
        if os.environ.get("PERSONAMEM_SKIP_REDIS") == "1":
            pytest.skip(f"Redis not reachable and PERSONAMEM_SKIP_REDIS=1: {e}")
        pytest.fail(f"Redis does not answer at {REDIS} ({e}); or set PERSONAMEM_SKIP_REDIS=1")
    ns = f"pmtest-{uuid.uuid4().hex[:10]}"
    yield ns
    keys = client.keys(f"{ns}:*")
    if keys:
        client.delete(*keys)


async def poll(fn, timeout: float = 30.0):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while True:
        value = await fn()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)


async def test_durable_queue_in_process(tmp_path: Path, namespace: str) -> None:
    app, keys = make_app(tmp_path, queue=REDIS, queue_namespace=namespace)
    key = keys.create("acme").key
    async with asgi_client(app, key) as c:
        r = await c.post("/v1/users/ann/messages", json={"messages": chat(12)})
        assert r.status_code == 202 and r.json()["versions"] == []

        async def updated() -> bool:
            return (await c.get("/v1/users/ann/memory")).json()["version"] >= 1

        assert await poll(updated)
        state = await poll(
            lambda: _idle(c, "ann"),
        )
        assert state
        m = (await c.get("/metrics")).text
        assert 'personamem_memory_updates_total{outcome="ok"}' in m
        assert "personamem_update_queue_depth 0.0" in m


async def _idle(c, user: str) -> bool:  # noqa: ANN001
    return (await c.get(f"/v1/users/{user}/updates")).json()["state"] == "idle"


async def test_failing_jobs_are_retried_then_dead_letters(tmp_path: Path, namespace: str) -> None:
    app, keys = make_app(
        tmp_path,
        model=echo_model(fail=True),
        queue=REDIS,
        queue_namespace=namespace,
        update_retries=2,
        update_backoff=0.05,
    )
    key = keys.create("acme").key
    async with asgi_client(app, key) as c:
        await c.post("/v1/users/bob/messages", json={"messages": chat(12)})

        async def dead() -> dict | None:
            s = (await c.get("/v1/users/bob/updates")).json()
            return s if s["state"] == "dead" else None

        state = await poll(dead)
        assert state and state["attempts"] == 1  # one retry after the first attempt
        assert "scripted failure" in (state["last_error"] or "")
        mem = (await c.get("/v1/users/bob/memory")).json()
        assert mem["version"] == 0 and mem["pending_messages"] == 12  # nothing lost
        assert "personamem_update_dead_letters 1.0" in (await c.get("/metrics")).text
        assert (await c.delete("/v1/users/bob")).status_code == 200
        assert "personamem_update_dead_letters 0.0" in (await c.get("/metrics")).text


WORKER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    from memory_fakes import echo_model
    from personamem.store import AsyncMemory
    from personamem.server.queue import DurableUpdates, LoopRunner, QueueConfig
    db, ns, slow, signal_file = sys.argv[1:5]
    model = echo_model(slow=float(slow), signal_file=signal_file or None)
    mem = AsyncMemory(db, model=model, chunk_tokens=40, memory_tokens=100000, strategy="extract")
    jobs = DurableUpdates(QueueConfig(url={redis!r}, namespace=ns, heartbeat_ms=1500,
                                      maintenance_chance=1_000_000, min_backoff_ms=100))
    jobs.start_worker(LoopRunner(mem))
    while True:
        time.sleep(1)
    """
)


def start_worker(
    tmp_path: Path, db: str, ns: str, slow: float, signal_file: str = ""
) -> subprocess.Popen:
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(TESTS), redis=REDIS))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS.parent), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, str(script), db, ns, str(slow), signal_file],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_worker_killed_mid_job_loses_nothing(tmp_path: Path, namespace: str) -> None:
    db = f"sqlite:///{tmp_path / 'service.db'}"
    app, keys = make_app(tmp_path, queue=REDIS, queue_namespace=namespace, update_workers=0)
    key = keys.create("acme").key
    started = tmp_path / "started"
    a = start_worker(tmp_path, db, namespace, slow=60, signal_file=str(started))
    b = None
    try:
        async with asgi_client(app, key) as c:
            r = await c.post("/v1/users/cat/messages", json={"messages": chat(12)})
            assert r.status_code == 202
            deadline = time.monotonic() + 30
            while not started.exists():
                assert time.monotonic() < deadline, "worker A never started the job"
                await asyncio.sleep(0.05)
            assert (await c.get("/v1/users/cat/memory")).json()["version"] == 0
            os.kill(a.pid, signal.SIGKILL)  # mid-job: the model call is running
            a.wait()
            b = start_worker(tmp_path, db, namespace, slow=0)

            async def done() -> dict | None:
                m = (await c.get("/v1/users/cat/memory")).json()
                return m if m["version"] >= 1 else None

            mem = await poll(done, timeout=60)
            assert mem, "the job did not complete on the second worker"
            assert mem["messages"] == 12 and mem["lines"]
            assert await poll(lambda: _idle(c, "cat"))
        store = SQLiteStore(tmp_path / "service.db")
        assert store.check() == []
        store.close()
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
