"""``long-context``: the whole history as prior turns, then the query.

A history longer than the model's window keeps its most recent part that fits; the cut is made
once per history (the same for all its questions, so their prompts share the history as a common
prefix and the local backend reuses its KV cache), and every row records the tokens dropped.
"""

from __future__ import annotations

from typing import Any

from ...answer import Answerer, fit_history
from ...data import ChatHistory, QAItem
from .base import Context, Prepared, System, conversation, register

MCQ_REPLY_TOKENS = 16
MARGIN = 32


@register
class LongContext(System):
    name = "long-context"
    description = "full history (most recent part that fits) + query"
    sequential = True

    def version(self) -> dict[str, Any]:
        return {"context_window": self.env.model.context_window}

    def reserve(self, items: list[QAItem]) -> int:
        """Tokens to keep free for the request turn and the reply, for the largest question."""
        model, cfg = self.env.model, self.env.config
        need = 0
        for q in items:
            options = [q.correct_answer, *q.incorrect_answers]
            if "mcq" in cfg.modes:
                msgs = Answerer.messages(q.query, options=options)
                need = max(need, model.count_message_tokens(msgs) + MCQ_REPLY_TOKENS)
            if "open" in cfg.modes:
                msgs = Answerer.messages(q.query)
                need = max(need, model.count_message_tokens(msgs) + cfg.open_max_tokens)
        return need + MARGIN

    async def prepare(self, history: ChatHistory, link: str) -> Prepared:
        model = self.env.model
        items = self.env.items_by_history.get(link, [])
        msgs = conversation(history)
        total = model.count_message_tokens(msgs)
        budget = model.context_window - self.reserve(items)
        if budget <= 0:
            kept, dropped = [], total
        else:
            kept, dropped = fit_history(msgs, model, budget)
        if dropped:
            self.env.progress.note(
                f"long-context: {link}: {dropped} of {total} history tokens do not fit the "
                f"{model.context_window}-token window and are dropped (oldest first)"
            )
        return Prepared(
            data={"messages": kept, "dropped": dropped, "history_tokens": total - dropped}
        )

    async def context(
        self, item: QAItem, history: ChatHistory, prepared: Prepared, mode: str
    ) -> Context:
        d = prepared.data
        return Context(
            kwargs={"history": d["messages"]},
            info={
                "history_tokens": d["history_tokens"],
                "history_tokens_dropped": d["dropped"],
                "history_messages": len(d["messages"]),
            },
        )
