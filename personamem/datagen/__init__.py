"""Data generation: build PersonaMem-v2-style implicit-persona datasets with any model.

``personamem generate`` (or :func:`generate`) runs seven resumable stages into one folder:
personas -> preferences -> conversations -> histories -> Q&A -> validation filters -> splits in
the release layout. See docs/datagen.md.
"""

from __future__ import annotations

from .config import FILTERS, PREF_KINDS, SCENARIOS, GenerateConfig
from .filters import FILTER_FUNCS, FilterResult, judge_item, pass_rates
from .llm import LLM, StructuredOutputError, extract_json
from .pipeline import GenerateReport, generate
from .run import Events, GenerationError
from .store import ResumeError

__all__ = [
    "FILTERS",
    "FILTER_FUNCS",
    "LLM",
    "PREF_KINDS",
    "SCENARIOS",
    "Events",
    "FilterResult",
    "GenerateConfig",
    "GenerateReport",
    "GenerationError",
    "ResumeError",
    "StructuredOutputError",
    "extract_json",
    "generate",
    "judge_item",
    "pass_rates",
]
