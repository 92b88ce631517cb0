"""The HTTP API: every endpoint, errors and limits, through httpx's ASGI transport (control flow
on the scripted echo model, real stores: SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import server_helpers
from memory_fakes import chat, echo_model
from pg_helpers import drop, pg_url
from server_helpers import asgi_client, drain, make_app

from personamem.store import Conflict


@pytest.fixture(params=["sqlite", "postgres"], autouse=True)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Every test here runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    url = pg_url()
    monkeypatch.setattr(server_helpers, "DEFAULT_DB", url)
    yield "postgres"
    drop(url)


@pytest.fixture
def app_keys(tmp_path: Path):
    return make_app(tmp_path)


async def test_add_wait_get_sources_history(app_keys) -> None:
    app, keys = app_keys
    key = keys.create("acme").key
    async with asgi_client(app, key) as c:
        r = await c.post("/v1/users/alice/messages", json={"messages": chat(12), "update": "wait"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["user_id"] == "alice" and body["stored"] == list(range(12))
        assert body["versions"] and body["versions"][0]["source"] == "update"
        r = await c.post("/v1/users/alice/flush")
        assert r.status_code == 200
        mem = (await c.get("/v1/users/alice/memory")).json()
        assert mem["user_id"] == "alice" and mem["pending_messages"] == 0
        assert mem["lines"], mem
        for line in mem["lines"]:
            assert line["messages"], line
            assert [m["seq"] for m in line["messages"]] == line["sources"]
            # the echo model's fact is the first words of the message it cites
            assert line["text"].split()[1] in line["messages"][0]["content"]
        hist = (await c.get("/v1/users/alice/history")).json()
        assert [v["version"] for v in hist] == list(range(1, len(hist) + 1))
        assert hist[0]["diff"].startswith("--- v0")
        ctx = (await c.get("/v1/users/alice/context")).json()
        assert ctx["context"] and "[msg" not in ctx["context"]
        short = (await c.get("/v1/users/alice/context", params={"max_tokens": 8})).json()
        assert 0 < len(short["context"]) < len(ctx["context"])


async def test_background_update_returns_at_once_then_updates(app_keys) -> None:
    app, keys = app_keys
    key = keys.create("acme").key
    async with asgi_client(app, key) as c:
        r = await c.post("/v1/users/bob/messages", json={"messages": chat(12)})
        assert r.status_code == 202
        assert r.json()["versions"] == []
        await drain(app)
        mem = (await c.get("/v1/users/bob/memory")).json()
        assert mem["version"] >= 1
        assert (await c.get("/v1/users/bob/updates")).json()["state"] == "idle"
        metrics = (await c.get("/metrics")).text
        assert 'personamem_memory_updates_total{outcome="ok"}' in metrics
        assert "personamem_update_queue_depth 0.0" in metrics
        assert 'personamem_model_tokens_total{direction="in",op="update"}' in metrics


async def test_over_cap_edit_busy_and_lost_lease(tmp_path: Path, monkeypatch) -> None:
    """An edit over the cap is 422 `over_cap` and changes nothing; a lease held by another
    worker (busy) and a lease taken over mid-forget (lost) are 409 and commit nothing."""
    app, keys = make_app(tmp_path, memory_tokens=30)
    memory = app.state.service.memory
    key = keys.create("acme").key
    async with asgi_client(app, key) as c:
        await c.post("/v1/users/dan/messages", json={"messages": chat(2), "update": "none"})
        assert (
            await c.put("/v1/users/dan/memory", json={"text": "- Likes jazz"})
        ).status_code == 200
        r = await c.put("/v1/users/dan/memory", json={"text": "- Likes jazz music a lot\n" * 20})
        assert r.status_code == 422 and r.json()["error"]["code"] == "over_cap", r.text
        assert "over the cap" in r.json()["error"]["message"] and "acme/" not in r.text
        assert (await c.get("/v1/users/dan/memory")).json()["text"] == "- Likes jazz"

        assert memory.store.acquire("acme/dan", "another-worker", 60)
        monkeypatch.setattr(memory, "lock_timeout", 0.1)
        r = await c.put("/v1/users/dan/memory", json={"text": "- Owns a cat"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "conflict", r.text
        memory.store.release("acme/dan", "another-worker")

        monkeypatch.setattr(memory.store, "renew", lambda *a: False)  # another worker took over
        r = await c.post("/v1/users/dan/forget", json={"what": "jazz"})
        assert r.status_code == 409 and "lost the update lease" in r.json()["error"]["message"]
        hist = (await c.get("/v1/users/dan/history")).json()
        assert [v["source"] for v in hist] == ["edit"]


async def test_edit_forget_undo_export_delete(app_keys) -> None:
    app, keys = app_keys
    key = keys.create("acme").key
    async with asgi_client(app, key) as c:
        await c.post("/v1/users/carol/messages", json={"messages": chat(4), "update": "none"})
        r = await c.put("/v1/users/carol/memory", json={"text": "- Likes jazz\n- Owns a cat"})
        assert r.status_code == 200 and r.json()["source"] == "edit"
        assert "+- Likes jazz" in r.json()["diff"]
        r = await c.post("/v1/users/carol/forget", json={"what": "the cat"})
        assert r.status_code == 200 and r.json()["source"] == "forget"
        text = (await c.get("/v1/users/carol/memory")).json()["text"]
        assert "cat" not in text and "jazz" in text
        r = await c.post("/v1/users/carol/undo", json={})
        assert r.status_code == 200 and r.json()["source"] == "undo"
        assert "cat" in (await c.get("/v1/users/carol/memory")).json()["text"]
        r = await c.post("/v1/users/carol/undo", json={"version": 0})
        assert (await c.get("/v1/users/carol/memory")).json()["version"] == r.json()["version"]
        exp = (await c.get("/v1/users/carol/export")).json()
        assert exp["user"]["user_id"] == "carol" and "store" not in exp
        assert len(exp["messages"]) == 4 and len(exp["versions"]) == 4
        assert (await c.get("/v1/users")).json() == {"users": ["carol"]}
        r = await c.delete("/v1/users/carol")
        assert r.status_code == 200 and r.json()["deleted"]["messages"] == 4
        assert (await c.get("/v1/users")).json() == {"users": []}
        r = await c.get("/v1/users/carol/memory")
        assert r.status_code == 404
        assert r.json()["error"] == {
            "code": "not_found",
            "message": "unknown user 'carol'",
            "details": None,
        }


async def test_answer_from_memory(tmp_path: Path) -> None:
    model = echo_model()
    app, keys = make_app(tmp_path, model=model)
    key = keys.create("acme").key
    async with asgi_client(app, key) as c:
        await c.post("/v1/users/dan/messages", json={"messages": chat(2), "update": "none"})
        await c.put("/v1/users/dan/memory", json={"text": "- Plays the cello"})
        r = await c.post("/v1/users/dan/answer", json={"query": "What instrument?"})
        assert r.status_code == 200, r.text
        assert r.json()["method"] and isinstance(r.json()["text"], str)
        assert "Plays the cello" in model.calls[-1][-1]["content"] or any(
            "Plays the cello" in m["content"] for m in model.calls[-1]
        )


async def test_errors_have_the_right_status(tmp_path: Path) -> None:
    app, keys = make_app(tmp_path, max_body_bytes=2000)
    key = keys.create("acme").key
    reader = keys.create("acme", scope="read").key
    async with asgi_client(app) as c:
        r = await c.get("/v1/users")
        assert r.status_code == 401 and "missing API key" in r.json()["error"]["message"]
        r = await c.get("/v1/users", headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401 and r.json()["error"]["message"] == "invalid API key"
        bad_secret = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
        r = await c.get("/v1/users", headers={"Authorization": f"Bearer {bad_secret}"})
        assert r.status_code == 401
        h = {"Authorization": f"Bearer {key}"}
        hr = {"Authorization": f"Bearer {reader}"}
        r = await c.post("/v1/users/x/messages", json={"messages": chat(2)}, headers=hr)
        assert r.status_code == 403 and "read-only" in r.json()["error"]["message"]
        assert (await c.get("/v1/users", headers=hr)).status_code == 200
        r = await c.post("/v1/users/x/messages", json={"messages": []}, headers=h)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid"
        r = await c.post(
            "/v1/users/x/messages",
            json={"messages": [{"role": "robot", "content": "hi"}]},
            headers=h,
        )
        assert r.status_code == 422 and "role" in r.json()["error"]["message"]
        r = await c.post("/v1/users/x/messages", json={"messages": chat(2), "extra": 1}, headers=h)
        assert r.status_code == 422
        # an unknown query parameter is refused (a misspelt option must not do the default)
        r = await c.get("/v1/users/x/context?max_tokns=5", headers=h)
        assert r.status_code == 422 and "'max_tokns'" in r.json()["error"]["message"]
        assert "max_tokens" in r.json()["error"]["message"]  # what it does take
        assert (await c.get("/v1/users/x/context?max_tokens=5", headers=h)).status_code == 200
        r = await c.get("/v1/users/bad%2Fid/memory", headers=h)
        assert r.status_code in (404, 422)
        r = await c.get("/v1/users/" + "a" * 200 + "/memory", headers=h)
        assert r.status_code == 422
        r = await c.post(
            "/v1/users/x/messages",
            content=b"{not json",
            headers={**h, "content-type": "application/json"},
        )
        assert r.status_code == 422
        big = {"messages": [{"content": "x" * 5000}]}
        r = await c.post("/v1/users/x/messages", json=big, headers=h)
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
        r = await c.get("/v1/users/nobody/history", headers=h)
        assert r.status_code == 404
        await c.post(
            "/v1/users/y/messages", json={"messages": chat(2), "update": "none"}, headers=h
        )
        r = await c.post("/v1/users/y/undo", headers=h)
        assert r.status_code == 409
        assert r.json()["error"]["message"] == "y has no memory version to undo"
        assert "acme" not in r.text
        r = await c.post("/v1/users/y/forget", json={"what": ""}, headers=h)
        assert r.status_code == 422
        r = await c.post("/v1/users/y/undo", json={"version": 7}, headers=h)
        assert r.status_code == 404 and r.json()["error"]["message"] == "y has no version 7"
        r = await c.post("/v1/users/y/undo", json={"version": True}, headers=h)
        assert r.status_code == 422
        r = await c.get("/v1/nowhere", headers=h)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_revoked_key_and_rate_limit(tmp_path: Path) -> None:
    app, keys = make_app(tmp_path, rate_limit=2.0)
    new = keys.create("acme")
    async with asgi_client(app, new.key) as c:
        # Until the first 429: a busy machine refills the bucket between slow requests, so the
        # bound is the burst (4) plus what 2/s refilled meanwhile, not a fixed count.
        codes: list[int] = []
        start = time.monotonic()
        while 429 not in codes and len(codes) < 60:
            codes.append((await c.get("/v1/users")).status_code)
        elapsed = time.monotonic() - start
        assert codes[:4] == [200] * 4 and codes[-1] == 429, codes
        assert codes.count(200) <= 4 + 2.0 * elapsed + 1, (codes, elapsed)
        r = await c.get("/v1/users")
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
        keys.revoke(new.key_id)
        r = await c.get("/v1/users")
        assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


async def test_openapi_covers_every_operation(app_keys) -> None:
    app, _ = app_keys
    async with asgi_client(app) as c:
        spec = (await c.get("/openapi.json")).json()
    ops = {(m.upper(), p) for p, item in spec["paths"].items() for m in item}
    for op in [
        ("GET", "/v1/users"),
        ("POST", "/v1/users/{user_id}/messages"),
        ("POST", "/v1/users/{user_id}/flush"),
        ("GET", "/v1/users/{user_id}/memory"),
        ("PUT", "/v1/users/{user_id}/memory"),
        ("GET", "/v1/users/{user_id}/context"),
        ("POST", "/v1/users/{user_id}/answer"),
        ("GET", "/v1/users/{user_id}/history"),
        ("POST", "/v1/users/{user_id}/forget"),
        ("POST", "/v1/users/{user_id}/undo"),
        ("GET", "/v1/users/{user_id}/export"),
        ("DELETE", "/v1/users/{user_id}"),
    ]:
        assert op in ops, op
    assert "ApiKey" in spec["components"]["securitySchemes"]
    add = spec["paths"]["/v1/users/{user_id}/messages"]["post"]
    assert {"401", "403", "413", "422", "429"} <= set(add["responses"])


async def test_failed_updates_retry_then_dead_letter_and_metrics(tmp_path: Path) -> None:
    model = echo_model(fail=True)
    app, keys = make_app(tmp_path, model=model, update_retries=3)
    key = keys.create("acme").key
    async with asgi_client(app, key) as c:
        r = await c.post("/v1/users/eve/messages", json={"messages": chat(12)})
        assert r.status_code == 202  # stored; the update fails later
        await drain(app)
        state = (await c.get("/v1/users/eve/updates")).json()
        assert state["state"] == "dead" and state["attempts"] == 3
        assert "scripted failure" in state["last_error"]
        mem = (await c.get("/v1/users/eve/memory")).json()
        assert mem["version"] == 0 and mem["pending_messages"] == 12  # nothing lost
        m = (await c.get("/metrics")).text
        assert 'personamem_model_errors_total{op="update"} 3.0' in m
        assert 'personamem_memory_updates_total{outcome="retry"} 2.0' in m
        assert "personamem_update_dead_letters 1.0" in m
        assert (
            'personamem_http_request_seconds_count{method="GET",route="/v1/users/{user_id}/updates"}'
            in m
        )
        # wait mode reports the model failure as 502 with what was stored
        r = await c.post(
            "/v1/users/eve/messages", json={"messages": chat(12, start=12), "update": "wait"}
        )
        assert r.status_code == 502 and r.json()["error"]["code"] == "model_error"
        assert r.json()["error"]["details"]["user_id"] == "eve"
        assert r.json()["error"]["details"]["stored"] == list(range(12, 24))


async def test_an_add_whose_update_keeps_conflicting_is_409_with_what_was_stored(
    tmp_path: Path, monkeypatch
) -> None:
    app, keys = make_app(tmp_path)
    store = app.state.service.memory.store
    key = keys.create("acme").key

    def moved(*args, **kwargs):
        raise Conflict("acme/hal: head moved")  # another writer always commits first

    monkeypatch.setattr(store, "commit_version", moved)
    async with asgi_client(app, key) as c:
        r = await c.post("/v1/users/hal/messages", json={"messages": chat(12), "update": "wait"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "conflict", r.text
        assert r.json()["error"]["details"]["stored"] == list(range(12))
        assert "acme/" not in r.text
        assert (await c.get("/v1/users/hal/memory")).json()["pending_messages"] == 12


async def test_a_restart_resumes_pending_updates(tmp_path: Path) -> None:
    app, keys = make_app(tmp_path, update_workers=0)  # a process that never updated
    key = keys.create("acme").key
    async with asgi_client(app, key) as c:
        await c.post("/v1/users/fay/messages", json={"messages": chat(12)})
        await c.post("/v1/users/gus/messages", json={"messages": chat(2), "update": "none"})
        assert (await c.get("/v1/users/fay/memory")).json()["version"] == 0
    app.state.service.memory.close()
    again, _ = make_app(tmp_path)  # restarted, with an update worker
    async with asgi_client(again, key) as c:
        for _ in range(200):
            if (await c.get("/v1/users/fay/memory")).json()["version"] >= 1:
                break
            await asyncio.sleep(0.02)
        assert (await c.get("/v1/users/fay/memory")).json()["version"] >= 1
        await drain(again)
        gus = (await c.get("/v1/users/gus/memory")).json()
        assert gus["version"] == 0 and gus["pending_messages"] == 2  # less than a chunk: waits
