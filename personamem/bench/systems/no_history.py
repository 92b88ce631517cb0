"""``no-history``: the query alone. What the model guesses about a user it knows nothing of."""

from __future__ import annotations

from ...data import ChatHistory, QAItem
from .base import Context, Prepared, System, register


@register
class NoHistory(System):
    name = "no-history"
    description = "the query alone"

    async def context(
        self, item: QAItem, history: ChatHistory, prepared: Prepared, mode: str
    ) -> Context:
        return Context()
