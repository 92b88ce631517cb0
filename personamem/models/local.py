"""llama.cpp backend (llama-cpp-python): local GGUF models on the CPU, with KV prefix reuse."""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base import Generation, Message, Model, ModelError

# One loaded model per (path, n_ctx, LoRA adapter): weights are large and llama.cpp contexts are
# not shareable.
_LOADED: dict[tuple[str, int, str], Any] = {}
_LOAD_LOCK = threading.Lock()


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence llama.cpp's C-level log lines (it writes to fd 2 even with verbose=False)."""
    try:
        fd = os.dup(2)
    except OSError:  # pragma: no cover
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(fd, 2)
        os.close(fd)


def _load(path: str, n_ctx: int, vocab_only: bool = False, lora_path: str = "") -> Any:
    try:
        from llama_cpp import Llama
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ModelError(
            "llama-cpp-python is not installed; run `pip install -e '.[local]'` "
            "(it compiles for several minutes; set CMAKE_ARGS=-DGGML_NATIVE=OFF)"
        ) from e
    lora = "" if vocab_only else lora_path  # the vocabulary does not depend on the adapter
    key = (path, -1 if vocab_only else n_ctx, lora)
    with _LOAD_LOCK:
        if key not in _LOADED:
            threads = int(os.environ.get("PERSONAMEM_THREADS", "0")) or (os.cpu_count() or 2)
            with _quiet_stderr():
                _LOADED[key] = Llama(
                    model_path=path,
                    n_ctx=n_ctx,
                    n_batch=512,
                    n_threads=threads,
                    vocab_only=vocab_only,
                    verbose=False,
                    **({"lora_path": lora} if lora else {}),
                )
        return _LOADED[key]


@dataclass
class LocalModel(Model):
    """A GGUF model run in-process by llama.cpp.

    Calls are serialized (one context per model); the KV cache keeps the longest common prefix of
    consecutive prompts, so asking several questions about one history only prefills the new tail.
    """

    path: str = ""
    n_ctx: int = 32768
    lora_path: str = ""
    """A GGUF LoRA adapter applied on top of ``path`` (``...+lora:PATH`` specs); empty for none."""
    _llm: Any = field(default=None, repr=False)
    _vocab: Any = field(default=None, repr=False)
    # A thread lock, taken in the worker thread: one model from get_model's cache may be used
    # from several event loops in several threads (an asyncio.Lock belongs to one loop).
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if not Path(self.path).is_file():
            raise ModelError(f"GGUF file not found: {self.path}")
        if self.lora_path and not Path(self.lora_path).is_file():
            raise ModelError(f"LoRA adapter not found: {self.lora_path}")
        self.context_window = self.n_ctx

    # --- tokenizer -------------------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        if self._llm is not None:
            return self._llm
        if self._vocab is None:
            self._vocab = _load(self.path, self.n_ctx, vocab_only=True)
        return self._vocab

    def count_tokens(self, text: str) -> int:
        if not text:
            return 0
        return len(self.tokenizer.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def render(self, messages: list[Message], prefix: str = "") -> str:
        """The exact prompt text: the GGUF's own chat template plus the generation prompt."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        tok = self.tokenizer
        template = tok.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelError(f"{self.path} has no chat template in its metadata")
        eos = tok.detokenize([tok.token_eos()]).decode("utf-8", "ignore")
        bos = (
            tok.detokenize([tok.token_bos()]).decode("utf-8", "ignore")
            if tok.token_bos() >= 0
            else ""
        )
        fmt = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        return fmt(messages=list(messages)).prompt + prefix

    def prompt_tokens(self, messages: list[Message], prefix: str = "") -> list[int]:
        text = self.render(messages, prefix)
        return self.tokenizer.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def count_message_tokens(self, messages: list[Message]) -> int:
        return len(self.prompt_tokens(messages))

    # --- inference -------------------------------------------------------------------------
    def _model(self) -> Any:
        if self._llm is None:
            self._llm = _load(self.path, self.n_ctx, lora_path=self.lora_path)
        return self._llm

    def _prefill(self, tokens: list[int]) -> tuple[int, float]:
        """Evaluate ``tokens`` reusing the cached prefix; returns (tokens evaluated, seconds)."""
        llm = self._model()
        if len(tokens) >= self.n_ctx:
            raise ModelError(
                f"prompt has {len(tokens)} tokens, more than the context window {self.n_ctx}"
            )
        keep = 0
        cached = llm.input_ids[: llm.n_tokens]
        for a, b in zip(cached, tokens, strict=False):
            if a != b:
                break
            keep += 1
        keep = min(keep, len(tokens) - 1)  # re-evaluate at least one token for fresh logits
        t0 = time.perf_counter()
        if keep > 0 and llm._ctx.kv_cache_seq_rm(-1, keep, -1):
            llm.n_tokens = keep
        else:
            keep = 0
            llm.reset()
        llm.eval(tokens[keep:])
        return len(tokens) - keep, time.perf_counter() - t0

    def _generate_sync(
        self,
        messages: list[Message],
        max_tokens: int,
        temperature: float,
        json_schema: dict[str, Any] | None,
        stop: list[str] | None,
        seed: int | None,
    ) -> tuple[Generation, float]:
        from llama_cpp import LlamaGrammar

        llm = self._model()
        tokens = self.prompt_tokens(messages)
        room = self.n_ctx - len(tokens) - 1
        if room < 1:
            raise ModelError(
                f"prompt has {len(tokens)} tokens; no room left in the {self.n_ctx}-token context"
            )
        max_tokens = min(max_tokens, room)
        grammar = None
        if json_schema is not None:
            grammar = LlamaGrammar.from_json_schema(json.dumps(json_schema), verbose=False)
        t0 = time.perf_counter()
        evaluated, prefill_s = self._prefill(tokens)
        out = llm.create_completion(
            prompt=tokens,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=1.0 if temperature == 0 else 0.95,
            top_k=1 if temperature == 0 else 40,
            repeat_penalty=1.0,
            grammar=grammar,
            stop=stop or [],
            seed=seed if seed is not None else 0,
        )
        seconds = time.perf_counter() - t0
        choice = out["choices"][0]
        usage = out.get("usage", {})
        g = Generation(
            text=choice["text"],
            tokens_in=len(tokens),
            tokens_out=int(usage.get("completion_tokens", 0)),
            seconds=seconds,
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            prefill_tokens=evaluated,
        )
        return g, prefill_s

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
        g, prefill_s = await self._locked(
            self._generate_sync, messages, max_tokens, temperature, json_schema, stop, seed
        )
        return self._record(g, prefill_s)

    async def _locked(self, fn: Any, *args: Any) -> Any:
        """Run a blocking llama.cpp call in a thread, one at a time; errors become ModelError."""
        try:
            return await asyncio.to_thread(self._serial, fn, *args)
        except ModelError:
            raise
        except Exception as e:  # llama.cpp raises plain ValueError/RuntimeError
            raise ModelError(f"llama.cpp failed: {e}") from e

    def _serial(self, fn: Any, *args: Any) -> Any:
        with self._lock:
            return fn(*args)

    def _score_sync(
        self, messages: list[Message], choices: list[str], prefix: str
    ) -> tuple[list[float], Generation, float]:
        import numpy as np

        llm = self._model()
        tokens = self.prompt_tokens(messages, prefix)
        t0 = time.perf_counter()
        evaluated, prefill_s = self._prefill(tokens)
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).astype(
            np.float64
        )
        m = logits.max()
        logz = m + math.log(float(np.exp(logits - m).sum()))
        scores = []
        for c in choices:
            ids = llm.tokenize(c.encode("utf-8"), add_bos=False, special=False)
            scores.append(float(logits[ids[0]] - logz) if ids else float("-inf"))
        g = Generation(
            text="",
            tokens_in=len(tokens),
            tokens_out=0,
            seconds=time.perf_counter() - t0,
            prefill_tokens=evaluated,
        )
        return scores, g, prefill_s

    def _continuations_sync(
        self, messages: list[Message], continuations: list[str], prefix: str
    ) -> tuple[list[tuple[float, int]], Generation, float]:
        import numpy as np

        llm = self._model()
        tokens = self.prompt_tokens(messages, prefix)
        t0 = time.perf_counter()
        evaluated, prefill_s = self._prefill(tokens)
        n_vocab = llm.n_vocab()

        def logsoftmax(rows: np.ndarray) -> np.ndarray:
            rows = rows.astype(np.float64)
            m = rows.max(axis=-1, keepdims=True)
            return rows - (m + np.log(np.exp(rows - m).sum(axis=-1, keepdims=True)))

        last = logsoftmax(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,)).copy())
        base = llm.n_tokens
        results: list[tuple[float, int]] = []
        extra = 0
        for text in continuations:
            ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
            ids = ids[: min(llm.n_batch, self.n_ctx - base - 1)]
            if not ids:
                results.append((0.0, 0))
                continue
            total = float(last[ids[0]])
            if len(ids) > 1:
                feed = ids[:-1]
                llm._batch.set_batch(batch=feed, n_past=base, logits_all=True)
                llm._ctx.decode(llm._batch)
                rows = np.ctypeslib.as_array(
                    llm._ctx.get_logits(), shape=(len(feed) * n_vocab,)
                ).reshape(len(feed), n_vocab)
                lp = logsoftmax(rows)
                total += float(lp[np.arange(len(feed)), ids[1:]].sum())
                llm._ctx.kv_cache_seq_rm(-1, base, -1)
                extra += len(feed)
            results.append((total, len(ids)))
        llm.n_tokens = base
        g = Generation(
            text="",
            tokens_in=len(tokens) + extra,
            tokens_out=0,
            seconds=time.perf_counter() - t0,
            prefill_tokens=evaluated + extra,
        )
        return results, g, prefill_s

    async def score_continuations(
        self, messages: list[Message], continuations: list[str], *, prefix: str = ""
    ) -> list[tuple[float, int]] | None:
        res, g, prefill_s = await self._locked(
            self._continuations_sync, messages, continuations, prefix
        )
        self._record(g, prefill_s)
        return res

    async def score_choices(
        self, messages: list[Message], choices: list[str], *, prefix: str = ""
    ) -> list[float] | None:
        scores, g, prefill_s = await self._locked(self._score_sync, messages, choices, prefix)
        self._record(g, prefill_s)
        return scores
