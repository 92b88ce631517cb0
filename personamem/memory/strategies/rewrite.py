"""``rewrite`` (the paper's single call): the model rewrites the whole memory from the previous
memory and the chunk. Better for large models; used for RL training. Forget requests in the
chunk are applied first (deterministic), so the model starts from a memory without them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...models.base import Message
from .. import prompts
from ..chunking import Piece
from ..merge import forget_request
from ..state import MemoryState

if TYPE_CHECKING:
    from ..agent import ChunkReport, MemoryAgent


async def update(
    agent: MemoryAgent,
    new: MemoryState,
    previous: MemoryState,
    pieces: list[Piece],
    report: ChunkReport,
) -> None:
    for p in pieces:
        if p.role == "user" and (what := forget_request(p.content)):
            report.removed += await agent._forget(new, what)
    base = new.model_copy(deep=True)
    chat = "\n\n".join(p.render() for p in pieces)
    msgs: list[Message] = [
        {"role": "system", "content": prompts.REWRITE_SYSTEM},
        {
            "role": "user",
            "content": prompts.REWRITE_USER.format(
                memory=base.text, chat=chat, limit=agent.config.memory_tokens
            ),
        },
    ]
    g = await agent.model.generate(
        msgs, max_tokens=agent.config.memory_tokens + 64, temperature=0.0
    )
    text = g.text
    if g.finish_reason == "length":  # cut off: drop the unfinished last line
        text = text[: text.rfind("\n")] if "\n" in text else ""
    parsed = MemoryState.from_text(text)
    bulleted = sum(1 for ln in text.splitlines() if ln.lstrip().startswith(("-", "*", "•")))
    if not text.strip() or not parsed.lines or bulleted < len(parsed.lines) / 2:
        report.warnings.append("model output was not a memory; kept the previous memory")
        report.kept_previous = True
        return
    valid = {p.index for p in pieces} | {i for ln in previous.lines for i in ln.sources}
    for ln in parsed.lines:
        ln.sources = [i for i in ln.sources if i in valid]
    report.added = sum(1 for ln in parsed.lines if ln.text not in {x.text for x in base.lines})
    report.removed += sum(1 for ln in base.lines if ln.text not in {x.text for x in parsed.lines})
    new.lines = parsed.lines
