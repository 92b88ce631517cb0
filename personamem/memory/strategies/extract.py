"""``extract``: the chunk is read in short steps; for each step the model lists facts about the
user as schema-constrained JSON (``about: user|other``); the agent merges them into the memory
and asks short yes/no questions when a new fact may replace an old one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...models.base import Message
from .. import prompts
from ..chunking import Piece
from ..merge import cut_at_phrase, forget_request, salvage_json
from ..state import MemoryState

if TYPE_CHECKING:
    from ..agent import ChunkReport, MemoryAgent


def _view(agent: MemoryAgent, piece: Piece) -> str:
    """How the extractor sees a piece: user turns whole, assistant turns abbreviated."""
    n = agent.config.assistant_tokens
    if piece.role != "assistant" or n < 0:
        return piece.render()
    short = agent.model.truncate_to_tokens(piece.content.strip(), n)
    if len(short) < len(piece.content.strip()):
        short = short.rstrip() + " …"
    return Piece(piece.index, piece.role, short, piece.part, piece.parts).render()


def _steps(agent: MemoryAgent, pieces: list[Piece]) -> list[list[str]]:
    steps: list[list[str]] = []
    cur: list[str] = []
    cur_tokens = 0
    for p in pieces:
        v = _view(agent, p)
        t = agent.count(v) + 2
        if cur and cur_tokens + t > agent.config.step_tokens:
            steps.append(cur)
            cur, cur_tokens = [], 0
        cur.append(v)
        cur_tokens += t
    if cur:
        steps.append(cur)
    return steps


async def update(
    agent: MemoryAgent,
    new: MemoryState,
    previous: MemoryState,
    pieces: list[Piece],
    report: ChunkReport,
) -> None:
    valid_ids = {p.index for p in pieces}
    # 1. Forget requests in this chunk (deterministic), applied in order.
    for p in pieces:
        if p.role == "user" and (what := forget_request(p.content)):
            report.removed += await agent._forget(new, what)
    # 2. Facts, step by step.
    schema = prompts.extract_schema(agent.config.max_facts_per_step)
    for step in _steps(agent, pieces):
        if not any("] user" in s[:20] for s in step):
            continue  # nothing the user wrote
        msgs: list[Message] = [
            {"role": "system", "content": prompts.EXTRACT_SYSTEM},
            {"role": "user", "content": prompts.EXTRACT_USER.format(chat="\n\n".join(step))},
        ]
        g = await agent.model.generate(
            msgs, max_tokens=agent.config.max_new_tokens, json_schema=schema, temperature=0.0
        )
        facts = salvage_json(g.text, "facts")
        if facts is None:
            report.warnings.append(f"unparseable extraction output ignored: {g.text[:80]!r}")
            continue
        for f in facts:
            if not isinstance(f, dict) or not isinstance(f.get("fact"), str):
                continue
            if f.get("about", "user") != "user":
                continue
            limit = schema["properties"]["facts"]["items"]["properties"]["fact"]["maxLength"]
            text = cut_at_phrase(" ".join(f["fact"].split()), limit).strip(" -•,;")
            if len(text) < 8:
                continue
            ids = [i for i in f.get("messages", []) if isinstance(i, int) and i in valid_ids]
            said = " ".join(p.content for p in pieces if p.index in ids and p.role == "user")
            await agent._merge_fact(new, text, ids, report, said=said or None)
