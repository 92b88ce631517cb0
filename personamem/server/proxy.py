"""The personalization proxy: an OpenAI-compatible ``POST /v1/chat/completions``.

For a request naming a ``user``, the proxy puts that user's memory into the system message,
forwards the request to the upstream (an OpenAI-compatible base URL, or a personamem model),
returns the upstream's answer unchanged (a streamed answer is passed through as it arrives), and
then stores the exchange in the user's memory in the background. Messages are stored with ids
derived from their position and text, so a client that resends the whole conversation each
turn stores each message once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import httpx
from fastapi import Body, Depends, FastAPI
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ..memory.state import EMPTY
from ..models import Model, ModelError, get_model
from .app import ERRORS, ApiError, Principal, Service, writer
from .schemas import USER_ID_PATTERN

log = logging.getLogger("personamem.server")

MEMORY_PREAMBLE = (
    "What you know about this user from earlier conversations (use it when it helps; "
    "do not mention that you were told):\n"
)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[Any] | None = None


class ChatRequest(BaseModel):
    """The fields the proxy reads; every other field is forwarded as sent."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=2000)
    user: str = Field(
        pattern=USER_ID_PATTERN,
        description="Your id for the end user: whose memory personalizes the answer.",
    )
    stream: bool = False


def _text(content: Any) -> str:
    """The text of a message's content (a string or a list of typed parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _msg_id(position: int, role: str, text: str) -> str:
    digest = hashlib.sha256(f"{position}\x1f{role}\x1f{text}".encode()).hexdigest()[:24]
    return f"chat-{digest}"


def personalize(body: dict[str, Any], memory: str) -> dict[str, Any]:
    """The request with the memory added to its (first) system message."""
    if not memory or memory == EMPTY:
        return body
    note = MEMORY_PREAMBLE + memory
    messages = [dict(m) for m in body["messages"]]
    if (
        messages
        and messages[0].get("role") == "system"
        and isinstance(messages[0].get("content"), str)
    ):
        messages[0]["content"] = f"{messages[0]['content']}\n\n{note}"
    else:
        messages.insert(0, {"role": "system", "content": note})
    return {**body, "messages": messages}


class Proxy:
    """Forwards chat requests to an OpenAI-compatible URL or runs them on a personamem model."""

    def __init__(self, service: Service, upstream: str | Model, api_key: str | None = None) -> None:
        self.service = service
        self.url: str | None = None
        self._model: Model | None = None
        self._spec: str | None = None
        if isinstance(upstream, Model):
            self._model = upstream
        elif upstream.startswith(("http://", "https://")):
            self.url = upstream.rstrip("/")
        else:
            self._spec = upstream
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(600, connect=10))
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def model(self) -> Model:
        if self._model is None:
            assert self._spec is not None
            self._model = get_model(self._spec)
        return self._model

    async def aclose(self) -> None:
        for t in list(self._tasks):
            await asyncio.wait([t], timeout=10)
        await self.http.aclose()

    # --- ingestion ----------------------------------------------------------------------------
    def ingest_later(self, internal: str, body: dict[str, Any], reply: str) -> None:
        task = asyncio.create_task(self._ingest(internal, body, reply))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ingest(self, internal: str, body: dict[str, Any], reply: str) -> None:
        msgs = []
        for i, m in enumerate(body["messages"]):
            role, text = m.get("role"), _text(m.get("content"))
            if role in ("user", "assistant") and text.strip():
                msgs.append({"role": role, "content": text, "id": _msg_id(i, role, text)})
        if reply.strip():
            n = len(body["messages"])
            msgs.append(
                {"role": "assistant", "content": reply, "id": _msg_id(n, "assistant", reply)}
            )
        if not msgs:
            return
        try:
            await self.service.memory.add(msgs, internal, update=False)
        except Exception:  # never fail the client's answer over this; the log says why
            log.exception("could not store a proxied exchange")
            return
        self.service.enqueue(internal)

    async def drain(self) -> None:
        """Wait for background ingestion (tests, shutdown)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    # --- forwarding ---------------------------------------------------------------------------
    async def handle(self, who: Principal, req: ChatRequest) -> Response:
        internal = who.internal(req.user)
        memory = await self.service.memory.context(
            internal, self.service.config.proxy_memory_tokens
        )
        sent = req.model_dump(exclude_unset=True)
        body = personalize(sent, memory)
        if self.url is None:
            return await self._local(internal, sent, body, req.stream)
        url = f"{self.url}/chat/completions"
        try:
            if req.stream:
                upstream = await self.http.send(
                    self.http.build_request("POST", url, json=body), stream=True
                )
            else:
                upstream = await self.http.post(url, json=body)
        except httpx.HTTPError as e:
            self.service.metrics.model_errors.labels("proxy").inc()
            raise ApiError(502, "upstream_error", f"upstream {self.url} failed: {e}") from None
        if upstream.status_code >= 400 or not req.stream:
            if req.stream:
                await upstream.aread()
                await upstream.aclose()
            if upstream.status_code >= 400:
                self.service.metrics.model_errors.labels("proxy").inc()
            else:
                self._after(internal, sent, upstream.content)
            return Response(
                upstream.content,
                status_code=upstream.status_code,
                media_type=upstream.headers.get("content-type", "application/json"),
            )
        return StreamingResponse(
            self._relay(upstream, internal, sent),
            status_code=upstream.status_code,
            media_type=upstream.headers.get("content-type", "text/event-stream"),
        )

    def _after(self, internal: str, sent: dict[str, Any], raw: bytes) -> None:
        try:
            data = json.loads(raw)
            reply = _text(data["choices"][0]["message"].get("content"))
            usage = data.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return
        self._count(usage)
        self.ingest_later(internal, sent, reply)

    def _count(self, usage: dict[str, Any]) -> None:
        m = self.service.metrics.tokens
        m.labels("proxy", "in").inc(int(usage.get("prompt_tokens") or 0))
        m.labels("proxy", "out").inc(int(usage.get("completion_tokens") or 0))

    async def _relay(
        self, upstream: httpx.Response, internal: str, sent: dict[str, Any]
    ) -> AsyncIterator[bytes]:
        """Pass the upstream's event stream through unchanged, collecting the reply's text."""
        parts: list[str] = []
        buffer = b""
        complete = False
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    complete |= self._read_event(line, parts)
            complete |= self._read_event(buffer, parts)
        finally:
            await upstream.aclose()
        if complete or parts:
            self.ingest_later(internal, sent, "".join(parts))

    def _read_event(self, line: bytes, parts: list[str]) -> bool:
        line = line.strip()
        if not line.startswith(b"data:"):
            return False
        data = line[5:].strip()
        if data == b"[DONE]":
            return True
        try:
            event = json.loads(data)
        except ValueError:
            return False
        for choice in event.get("choices") or []:
            delta = (choice or {}).get("delta") or {}
            if isinstance(delta.get("content"), str):
                parts.append(delta["content"])
        if event.get("usage"):
            self._count(event["usage"])
        return False

    async def _local(
        self, internal: str, sent: dict[str, Any], body: dict[str, Any], stream: bool
    ) -> Response:
        """Run the request on a personamem model, answering in the OpenAI shape."""
        messages = [
            {"role": m["role"], "content": _text(m.get("content"))}
            for m in body["messages"]
            if m.get("role") in ("system", "user", "assistant")
        ]
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or 512
        temperature = body.get("temperature") or 0.0
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ApiError(422, "invalid", "max_tokens must be a positive integer")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise ApiError(422, "invalid", "temperature must be a number")
        try:
            g = await self.model.generate(
                messages,  # type: ignore[arg-type]
                max_tokens=min(max_tokens, 8192),
                temperature=float(temperature),
            )
        except ModelError as e:
            self.service.metrics.model_errors.labels("proxy").inc()
            raise ApiError(502, "model_error", f"model failed: {e}") from None
        usage = {
            "prompt_tokens": g.tokens_in,
            "completion_tokens": g.tokens_out,
            "total_tokens": g.tokens_in + g.tokens_out,
        }
        self._count(usage)
        self.ingest_later(internal, sent, g.text)
        cid, created, model = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time()), sent["model"]
        if not stream:
            return JSONResponse(
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": g.text},
                            "finish_reason": g.finish_reason,
                        }
                    ],
                    "usage": usage,
                }
            )

        def event(delta: dict[str, Any], finish: str | None) -> bytes:
            chunk = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(chunk)}\n\n".encode()

        async def events() -> AsyncIterator[bytes]:
            yield event({"role": "assistant", "content": g.text}, None)
            yield event({}, g.finish_reason)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


def install_proxy(app: FastAPI, service: Service, upstream: str | Model | None) -> None:
    """Add ``POST /v1/chat/completions`` when an upstream is configured."""
    app.state.proxy = None
    if upstream is None:
        return
    key = service.config.upstream_key
    if key is None and isinstance(upstream, str) and upstream.startswith("http"):
        import os

        key = os.environ.get("OPENAI_API_KEY")
    proxy = Proxy(service, upstream, key)
    app.state.proxy = proxy

    @app.post(
        "/v1/chat/completions",
        tags=["proxy"],
        summary="OpenAI-compatible chat, personalized with the user's memory",
        operation_id="chatCompletions",
        responses={
            200: {
                "description": "The upstream's answer, unchanged (an event stream if `stream`)",
                "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "text/event-stream": {
                        "schema": {"type": "object", "properties": {"data": {"type": "string"}}}
                    },
                },
            },
            **ERRORS,
            502: {"description": "the upstream failed"},
        },
    )
    async def chat_completions(
        req: Annotated[ChatRequest, Body()],
        who: Annotated[Principal, Depends(writer)],
    ) -> Response:
        """Adds the memory of `user` to the request, forwards it to the upstream, returns its
        answer unchanged (streamed too) and stores the exchange in the user's memory."""
        return await proxy.handle(who, req)


__all__ = ["ChatRequest", "Proxy", "install_proxy", "personalize"]
