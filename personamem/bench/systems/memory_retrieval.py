"""``memory+retrieval``: the memory plus the user's own turns most similar to the query.

Not a replacement for the memory-only goal: it answers from the capped memory *and* from stored
messages, within a stated answer-time budget (``top_k`` turns of at most ``snippet_tokens``
tokens each, set by ``--top-k`` and ``--snippet-tokens``, on top of the memory's cap). The memory
is the ``memory`` system's (same cache), the excerpts the ``retrieval`` system's.
"""

from __future__ import annotations

from typing import Any

from ...data import ChatHistory, QAItem
from .base import Context, Prepared, System, register
from .memory import Memory
from .retrieval import Retrieval


@register
class MemoryRetrieval(System):
    name = "memory+retrieval"
    sequential = True  # the memory prefix is shared by a history's questions
    description = "agentic memory + top-k user turns by MiniLM similarity + query"

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.memory = Memory(env)
        self.retrieval = Retrieval(env)

    def version(self) -> dict[str, Any]:
        return {"memory": self.memory.version(), "retrieval": self.retrieval.version()}

    async def prepare(self, history: ChatHistory, link: str) -> Prepared:
        mem = await self.memory.prepare(history, link)
        ret = await self.retrieval.prepare(history, link)
        build = dict(mem.build or {})
        build["embedding_seconds"] = (ret.build or {}).get("seconds")
        return Prepared(data={"memory": mem, "retrieval": ret}, build=build)

    async def context(
        self, item: QAItem, history: ChatHistory, prepared: Prepared, mode: str
    ) -> Context:
        mem = await self.memory.context(item, history, prepared.data["memory"], mode)
        ret = await self.retrieval.context(item, history, prepared.data["retrieval"], mode)
        return Context(kwargs={**mem.kwargs, **ret.kwargs}, info={**mem.info, **ret.info})
