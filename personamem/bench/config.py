"""The settings of one benchmark run, saved as ``run.json`` in the run folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

Mode = Literal["mcq", "open"]
ContextSize = Literal["32k", "128k", "snippet"]
MODES: dict[str, tuple[Mode, ...]] = {"mcq": ("mcq",), "open": ("open",), "both": ("mcq", "open")}

#: Settings that change what an answer is: a run folder cannot be resumed with different ones.
FINGERPRINT = (
    "model",
    "memory_model",
    "context",
    "chunk_tokens",
    "memory_tokens",
    "max_chunks",
    "strategy",
    "notes",
    "top_k",
    "snippet_tokens",
    "seed",
    "mcq_method",
    "distractors",
)


def default_cache_dir() -> Path:
    """Where built memories are kept: $PERSONAMEM_CACHE/memories or ~/.cache/personamem/memories."""
    root = os.environ.get("PERSONAMEM_CACHE") or Path.home() / ".cache" / "personamem"
    return Path(root) / "memories"


class RunConfig(BaseModel):
    """Everything a run needs besides the data; defaults follow the paper where it says."""

    data_dir: str
    systems: list[str] = Field(
        default_factory=lambda: ["memory", "long-context", "retrieval", "no-history"]
    )
    model: str = "local/qwen2.5-0.5b"
    memory_model: str | None = None
    """Model that writes the memories (``memory`` system); None: ``model``."""
    judges: list[str] = Field(default_factory=list)
    """Judge model specs for open-ended scoring; empty means ``model`` (one deterministic judge
    for a local model, which scores from its distribution; three samples otherwise)."""
    judge_validation_items: int = 20
    """Open mode: each judge is first validated on the run's first N questions (see
    :mod:`personamem.bench.validation`); judges below the bar are not used."""
    context: ContextSize = "32k"
    modes: list[Mode] = Field(default_factory=lambda: ["mcq"])
    split: str = "benchmark"
    limit: int | None = None
    per_persona: int | None = None
    """At most N questions per persona, drawn with ``seed`` (a fixed, balanced subset)."""
    personas: list[str] = Field(default_factory=list)
    concurrency: int = 1
    chunk_tokens: int = 5000
    memory_tokens: int = 2048
    max_chunks: int | None = None
    strategy: str = "profile"
    notes: bool = True
    """Select strategy: short profile notes (False: the user's statements verbatim)."""
    top_k: int = 8
    snippet_tokens: int = 300
    distractors: int = 0
    """Snippet context: other snippets of the same persona around each question's own."""
    seed: int = 0
    """Mixed into every question's shuffle seed; 0 reproduces the default shuffles."""
    mcq_method: Literal["auto", "likelihood", "score", "generate"] = "auto"
    open_max_tokens: int = 400
    cache_dir: str = Field(default_factory=lambda: str(default_cache_dir()))

    def writer_spec(self) -> str:
        return self.memory_model or self.model

    def judge_specs(self) -> list[str]:
        if self.judges:
            return self.judges
        # A local model scores from its distribution: samples would be copies of one judge.
        return [self.model] * (1 if self.model.startswith(("local/", "gguf:")) else 3)

    def fingerprint(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in FINGERPRINT}
