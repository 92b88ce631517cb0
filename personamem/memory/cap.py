"""The token cap: a memory over ``memory_tokens`` is never accepted silently.

``select`` and ``profile`` drop whole lines, weakest first; ``extract`` and ``rewrite`` ask the model to
compress and, if that fails, keep the previous memory with a warning. Lines are never cut.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..models.base import Message
from . import prompts
from .merge import cut_at_phrase, salvage_json
from .state import MemoryState

if TYPE_CHECKING:
    from .agent import ChunkReport, MemoryAgent


async def hold_cap(
    agent: MemoryAgent, new: MemoryState, previous: MemoryState, report: ChunkReport
) -> MemoryState:
    cap = agent.config.memory_tokens
    if not new.lines or agent.count(new.text) <= cap:
        return new
    tokens = agent.count(new.text)
    if agent.config.strategy in ("select", "profile"):  # whole lines, no model call
        return drop_weakest(agent, new, tokens, report)
    msgs: list[Message] = [
        {"role": "system", "content": prompts.COMPRESS_SYSTEM},
        {
            "role": "user",
            "content": prompts.COMPRESS_USER.format(tokens=tokens, limit=cap, memory=new.text),
        },
    ]
    schema = prompts.compress_schema(max(4, len(new.lines)))
    g = await agent.model.generate(msgs, max_tokens=cap + 64, json_schema=schema, temperature=0.0)
    notes = salvage_json(g.text, "notes") or []
    limit = schema["properties"]["notes"]["items"]["maxLength"]
    notes = [cut_at_phrase(" ".join(n.split()), limit) for n in notes if isinstance(n, str)]
    compressed = MemoryState.from_text("\n".join(n for n in notes if n))
    ok_ids = {i for ln in new.lines for i in ln.sources}
    for ln in compressed.lines:
        ln.sources = [i for i in ln.sources if i in ok_ids]
    if compressed.lines and agent.count(compressed.text) <= cap:
        report.warnings.append(f"memory over the cap ({tokens} > {cap} tokens): compressed")
        compressed.forgotten = new.forgotten
        report.removed += max(0, len(new.lines) - len(compressed.lines))
        return compressed
    report.warnings.append(
        f"memory over the cap ({tokens} > {cap} tokens) and compression failed: "
        "kept the previous memory; this chunk's new facts were not stored"
    )
    report.kept_previous = True
    report.added = report.removed = 0
    kept = previous.model_copy(deep=True)
    kept.forgotten = new.forgotten
    return kept


def drop_weakest(
    agent: MemoryAgent, new: MemoryState, tokens: int, report: ChunkReport
) -> MemoryState:
    """Drop whole statements until the memory fits, weakest first: lowest personal score
    (capped at 3) plus up to 3 points for recency, so later statements (which carry updated
    preferences) survive. Never cuts a sentence."""
    cap = agent.config.memory_tokens
    newest = max((max(ln.sources, default=0) for ln in new.lines), default=0) or 1

    def keep_score(i: int) -> tuple[float, int]:
        ln = new.lines[i]
        base = min(ln.score if ln.score is not None else 3.0, 3.0)
        return base + 3.0 * max(ln.sources, default=newest) / newest, i

    order = sorted(range(len(new.lines)), key=keep_score)
    drop: set[int] = set()
    budget = tokens
    for i in order:
        if budget <= cap:
            break
        drop.add(i)
        budget -= agent.count(new.lines[i].render()) + 1
    new.lines = [ln for i, ln in enumerate(new.lines) if i not in drop]
    while new.lines and agent.count(new.text) > cap:  # the per-line estimate was short
        new.lines.pop(min(range(len(new.lines)), key=keep_score))
        drop.add(-1 - len(drop))
    report.removed += len(drop)
    report.warnings.append(
        f"memory over the cap ({tokens} > {cap} tokens): dropped {len(drop)} least personal "
        "statement(s)"
    )
    return new


__all__ = ["drop_weakest", "hold_cap"]
