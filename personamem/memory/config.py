"""The memory agent's settings, as explicit fields of one dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .privacy import PrivacyGuard

Strategy = Literal["select", "extract", "rewrite", "profile"]


@dataclass(frozen=True)
class MemoryConfig:
    """Knobs of the memory agent (defaults follow the paper where it says, measurement elsewhere).

    Frozen: derive a variant with :func:`dataclasses.replace` (unknown fields are a TypeError).
    """

    chunk_tokens: int = 5000
    memory_tokens: int = 2048
    strategy: str = "profile"
    """One of the agent's strategies (:data:`personamem.memory.strategies.STRATEGIES`). Default
    ``profile`` (one inferred line per user message): on the real sample it answered 38.9% of the
    MCQ against 22.2% for ``select`` with the same writer and answerer
    (benchmarks/memory_quality.md)."""
    judge_statements: bool = False
    """Select strategy: ask the model whether each statement is personal (P(yes) becomes its
    score). Off by default: with Qwen2.5-0.5B the answers did not discriminate (P(yes) 0.22-0.39
    for every statement, greetings included); turn it on for larger models."""
    select_threshold: float = 0.5
    notes: bool = True
    """Select strategy: rewrite each selected statement as a short profile note (the statement
    is kept as the line's evidence). Off: the memory holds the statements verbatim."""
    step_tokens: int = 1200
    """Extract strategy: the model reads the chunk in steps of at most this many tokens."""
    assistant_tokens: int = 40
    """Extract strategy: tokens of each assistant turn shown for context (-1: all)."""
    max_facts_per_step: int = 6
    check_replacements: bool = True
    """Ask the model whether a new fact makes a similar old one out of date."""
    max_new_tokens: int = 400
    profile_tokens: int = 400
    profile_prompt: str = "v3"
    """Profile strategy: the writer's prompt. ``v3`` (default): one line per user message.
    ``v4``: up to three, reading texts the user asks to polish as their own; better recall on
    short histories, worse on the sample's full history (benchmarks/memory_quality.md)."""
    """Profile strategy: tokens of one user message the writer reads (longer ones are cut)."""
    reply_retries: int = 2
    """Profile writer and yes/no questions: an unusable reply (empty, cut off, over-long, not
    the JSON or yes/no asked for) is asked again this many times, then the update fails like a
    model error (nothing committed, the messages stay pending for a retry)."""
    privacy: PrivacyGuard = field(default_factory=PrivacyGuard)

    def __post_init__(self) -> None:
        from .strategies import STRATEGIES

        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; use one of {sorted(STRATEGIES)}")
        if self.chunk_tokens < 16:
            raise ValueError("chunk_tokens must be at least 16")
        if self.memory_tokens < 1:
            raise ValueError("memory_tokens must be positive")
        if self.profile_prompt not in ("v3", "v4"):
            raise ValueError(f"profile_prompt must be v3 or v4, not {self.profile_prompt!r}")
        if self.reply_retries < 0:
            raise ValueError("reply_retries must be 0 or more")


__all__ = ["MemoryConfig", "Strategy"]
