"""The memory agent's update strategies: one coroutine per name, sharing the agent's loop.

A strategy is ``async def update(agent, new, previous, pieces, report) -> None``: it edits
``new`` (a copy of ``previous``) from the chunk's redacted ``pieces`` and records what it did in
``report``. The agent does everything else for every strategy (ownership and forget rules, the
cap, redaction, accounting). To add one, write the coroutine and add a line to
:data:`STRATEGIES` (and its prompt version to :data:`PROMPT_VERSIONS`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .. import prompts
from ..profile import PROFILE_VERSIONS, profile_update
from . import extract, rewrite, select

if TYPE_CHECKING:
    from ..config import MemoryConfig

StrategyFn = Callable[..., Awaitable[None]]

STRATEGIES: dict[str, StrategyFn] = {
    "select": select.update,
    "extract": extract.update,
    "rewrite": rewrite.update,
    "profile": lambda agent, new, previous, pieces, report: profile_update(
        agent, new, pieces, report
    ),
}

PROMPT_VERSIONS: dict[str, Callable[[MemoryConfig], str]] = {
    "select": lambda c: prompts.NOTES_VERSION if c.notes else prompts.SELECT_VERSION,
    "extract": lambda c: prompts.PROMPT_VERSION,
    "rewrite": lambda c: "rewrite-v1",
    "profile": lambda c: PROFILE_VERSIONS[c.profile_prompt],
}


def prompt_version(config: Any) -> str:
    return PROMPT_VERSIONS[config.strategy](config)


__all__ = ["PROMPT_VERSIONS", "STRATEGIES", "StrategyFn", "prompt_version"]
