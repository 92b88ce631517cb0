"""The personalization proxy, driven by the official `openai` client against a real uvicorn
server, forwarding to a fake upstream that is itself a real HTTP server on loopback."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from server_helpers import live_server, make_app

from personamem.models import ScriptedModel

REPLY = "Try the Dolomites: falcon-friendly trails."


def fake_upstream() -> tuple[FastAPI, list[dict[str, Any]]]:
    """An OpenAI-compatible server that records requests and answers REPLY (or streams it)."""
    seen: list[dict[str, Any]] = []
    up = FastAPI()

    @up.post("/v1/chat/completions")
    async def chat(request: Request):  # noqa: ANN202
        body = await request.json()
        seen.append({"body": body, "auth": request.headers.get("authorization")})
        if body["model"] == "broken":
            return JSONResponse({"error": {"message": "no such model"}}, status_code=404)
        base = {"id": "chatcmpl-fake1", "created": 1700000000, "model": body["model"]}
        if not body.get("stream"):
            return {
                **base,
                "object": "chat.completion",
                "system_fingerprint": "fp_fake",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": REPLY},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
            }

        async def events():  # noqa: ANN202
            words = REPLY.split(" ")
            for i, w in enumerate(words):
                delta = {"content": w if i == 0 else " " + w}
                if i == 0:
                    delta["role"] = "assistant"
                chunk = {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                }
                yield f"data: {json.dumps(chunk)}\n\n"
            end = {
                **base,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
            yield f"data: {json.dumps(end)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return up, seen


def wait_for(check, timeout: float = 10.0) -> Any:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def stored(url: str, key: str, user: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{url}/v1/users/{user}/export", headers={"Authorization": f"Bearer {key}"})
    return r.json()["messages"] if r.status_code == 200 else []


def test_openai_client_through_the_proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    up, seen = fake_upstream()
    with live_server(up) as up_url:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-upstream-secret")
        app, keys = make_app(tmp_path, upstream=f"{up_url}/v1")
        key = keys.create("acme").key
        with live_server(app) as url:
            h = {"Authorization": f"Bearer {key}"}
            httpx.post(
                f"{url}/v1/users/emily/messages",
                json={"messages": [{"content": "I train falcons"}], "update": "none"},
                headers=h,
            )
            httpx.put(f"{url}/v1/users/emily/memory", json={"text": "- Trains falcons"}, headers=h)
            client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
            ask = [{"role": "user", "content": "Where should I hike this weekend?"}]

            # plain: the answer comes back unchanged, the memory went upstream
            r = client.chat.completions.create(model="gpt-fake", messages=ask, user="emily")
            assert r.id == "chatcmpl-fake1" and r.system_fingerprint == "fp_fake"
            assert r.choices[0].message.content == REPLY and r.usage.total_tokens == 18
            sent = seen[-1]["body"]["messages"]
            assert sent[0]["role"] == "system" and "Trains falcons" in sent[0]["content"]
            assert sent[1:] == ask and seen[-1]["body"]["user"] == "emily"
            assert seen[-1]["auth"] == "Bearer sk-upstream-secret"  # not the client's key
            msgs = wait_for(lambda: [m for m in stored(url, key, "emily") if m["content"] == REPLY])
            assert msgs and msgs[0]["role"] == "assistant"
            contents = [m["content"] for m in stored(url, key, "emily")]
            assert contents.count("Where should I hike this weekend?") == 1

            # streaming: the same text arrives in pieces; the exchange is stored once
            ask2 = [
                *ask,
                {"role": "assistant", "content": REPLY},
                {"role": "user", "content": "And food?"},
            ]
            stream = client.chat.completions.create(
                model="gpt-fake", messages=ask2, user="emily", stream=True
            )
            pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
            assert len([p for p in pieces if p]) > 3 and "".join(pieces) == REPLY
            assert seen[-1]["body"]["stream"] is True
            assert "Trains falcons" in seen[-1]["body"]["messages"][0]["content"]
            got = wait_for(
                lambda: [m["content"] for m in stored(url, key, "emily")].count(REPLY) == 2
            )
            assert got, stored(url, key, "emily")
            contents = [m["content"] for m in stored(url, key, "emily")]
            assert contents.count("Where should I hike this weekend?") == 1  # resent, stored once
            assert contents.count("And food?") == 1

            # upstream errors come back as they were; auth and validation are the proxy's own
            with pytest.raises(openai.NotFoundError):
                client.chat.completions.create(model="broken", messages=ask, user="emily")
            with pytest.raises(openai.UnprocessableEntityError):
                client.chat.completions.create(model="gpt-fake", messages=ask)  # no user
            bad = openai.OpenAI(base_url=f"{url}/v1", api_key="pmk_nope", max_retries=0)
            with pytest.raises(openai.AuthenticationError):
                bad.chat.completions.create(model="gpt-fake", messages=ask, user="emily")
            # another tenant's emily is someone else: no memory goes upstream
            other = keys.create("globex").key
            o = openai.OpenAI(base_url=f"{url}/v1", api_key=other, max_retries=0)
            o.chat.completions.create(model="gpt-fake", messages=ask, user="emily")
            assert seen[-1]["body"]["messages"] == ask


def test_local_model_upstream(tmp_path: Path) -> None:
    model = ScriptedModel(default="Local answer.")
    app, keys = make_app(tmp_path, upstream=model)
    key = keys.create("acme").key
    with live_server(app) as url:
        h = {"Authorization": f"Bearer {key}"}
        httpx.post(
            f"{url}/v1/users/bo/messages",
            json={"messages": [{"content": "hi there"}], "update": "none"},
            headers=h,
        )
        httpx.put(f"{url}/v1/users/bo/memory", json={"text": "- Is vegan"}, headers=h)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
        ask = [{"role": "user", "content": "Dinner idea?"}]
        r = client.chat.completions.create(model="local", messages=ask, user="bo")
        assert r.choices[0].message.content == "Local answer." and r.object == "chat.completion"
        assert "Is vegan" in model.calls[-1][0]["content"]
        chunks = list(
            client.chat.completions.create(model="local", messages=ask, user="bo", stream=True)
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Local answer."
        assert wait_for(lambda: "Local answer." in [m["content"] for m in stored(url, key, "bo")])
