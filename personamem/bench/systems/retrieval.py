"""``retrieval``: the user's turns most similar to the query (MiniLM cosine), in history order.

The user's turns of a history are embedded once (cached on disk); at answer time the top-k turns
for the query are shown as numbered excerpts, each cut to ``snippet_tokens`` tokens.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ...data import ChatHistory, QAItem, render_message
from ..embed import Embedder, MiniLM, cached_encode
from .base import Context, Prepared, System, register


@register
class Retrieval(System):
    name = "retrieval"
    description = "top-k user turns by MiniLM similarity + query"

    _embedder: Embedder | None = None

    def version(self) -> dict[str, Any]:
        cfg = self.env.config
        return {"top_k": cfg.top_k, "snippet_tokens": cfg.snippet_tokens}

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            factory = self.env.embedder_factory or MiniLM
            self._embedder = factory()
        return self._embedder

    async def prepare(self, history: ChatHistory, link: str) -> Prepared:
        t0 = time.perf_counter()
        turns = [(i, m) for i, m in enumerate(history.messages) if m["role"] == "user"]
        texts = [m["content"][:4000] for _, m in turns]
        vecs, cached = cached_encode(
            self.embedder, texts, self.env.cache_dir.parent / "embeddings", history.content_hash
        )
        seconds = time.perf_counter() - t0
        return Prepared(
            data={"turns": turns, "vectors": vecs},
            build={
                "kind": "embeddings",
                "embedder": self.embedder.name,
                "turns": len(turns),
                "cached": cached,
                "seconds": seconds,
                "tokens_in": 0,
                "tokens_out": 0,
            },
        )

    async def context(
        self, item: QAItem, history: ChatHistory, prepared: Prepared, mode: str
    ) -> Context:
        turns = prepared.data["turns"]
        vecs: np.ndarray = prepared.data["vectors"]
        if not turns:
            return Context(kwargs={"snippets": "(none)"}, info={"retrieved": []})
        q = self.embedder.encode([item.query])[0]
        sims = vecs @ q
        k = min(self.env.config.top_k, len(turns))
        top = sorted(np.argsort(-sims, kind="stable")[:k].tolist())
        model = self.env.model
        parts = []
        for j in top:
            i, m = turns[j]
            text = m["content"].strip()
            short = model.truncate_to_tokens(text, self.env.config.snippet_tokens)
            if len(short) < len(text):
                short = short.rstrip() + " …"
            parts.append(render_message(i, {"role": m["role"], "content": short}))
        return Context(
            kwargs={"snippets": "\n\n".join(parts)},
            info={
                "retrieved": [turns[j][0] for j in top],
                "retrieved_scores": [round(float(sims[j]), 4) for j in top],
            },
        )
