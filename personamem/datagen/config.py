"""Settings of one ``personamem generate`` run (every default documented here)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: The ten conversation scenarios of PersonaMem-v2 (multimodal is text-only here: the user
#: describes a photo instead of attaching one).
SCENARIOS = (
    "personal_email",
    "professional_email",
    "creative_writing",
    "professional_writing",
    "chat_message",
    "social_media_post",
    "translation",
    "knowledge_query",
    "trouble_consult",
    "multimodal",
)

#: Preference kinds generated per persona (the release's ``pref_type`` values).
PREF_KINDS = (
    "stereotypical_pref",
    "anti_stereotypical_pref",
    "neutral_preferences",
    "therapy_background",
    "health_and_medical_conditions",
)

FILTERS = ("no_leak", "correct_reflects", "wrong_not_reflect", "clean_format")


@dataclass
class GenerateConfig:
    """Everything that shapes a generated dataset. Saved in ``OUT/work/config.json``; a resumed
    run must use the same content settings (model, seed, sizes) or start a new folder."""

    out: Path = Path("generated")
    """Output folder: the release layout plus ``work/`` (per-stage artifacts, the report)."""
    model: str = "local/qwen2.5-0.5b"
    """Model spec that writes everything (``personamem.models.get_model``)."""
    judge_model: str | None = None
    """Model that votes in the validation filters and the stereotype check (default: ``model``)."""
    personas: int = 2
    """Personas to generate; seeds cycle through ``seeds_file`` (or the built-in examples)."""
    seeds_file: Path | None = None
    """A text file of one-line persona descriptions, one a line (blank lines and # ignored)."""
    seed: int = 0
    """Random seed: scenario choice, which preferences get updates/forget/others/sensitive, splits."""
    concurrency: int = 4
    """Model calls in flight at once (an HTTP endpoint serves them in parallel; llama.cpp queues)."""
    prefs_per_kind: int = 4
    """Preferences asked for per kind (stereotypical, anti-stereotypical, neutral, therapy, health)."""
    update_fraction: float = 0.25
    """Share of own preferences that later change (the update is often the opposite)."""
    forget_fraction: float = 0.15
    """Share of own preferences the user later asks the chatbot to forget."""
    others_fraction: float = 0.1
    """Share of preferences rewritten as someone else's (``who = others``)."""
    sensitive_fraction: float = 0.1
    """Share of conversations where the user pastes a sensitive item (SSN, card, API key...)."""
    min_turns: int = 2
    max_turns: int = 4
    """Messages per preference conversation (user and assistant alternate, user first)."""
    message_words: int = 120
    """Rough upper bound on words per generated message (keeps histories and cost in check)."""
    history_tokens_32k: int = 32000
    """Token budget of the short history (the release's 32k); counted with ``tokens_model``."""
    history_tokens_128k: int = 128000
    """Token budget of the long history, padded with unrelated dialogues between blocks."""
    filler_dialogues: int = 8
    """Unrelated (code, math, trivia) dialogues generated once and reused as 128k padding."""
    tokens_model: str | None = None
    """Tokenizer for history budgets and token columns (default: ``model``)."""
    votes: int = 3
    """Judge calls per filter decision (distinct prompt wordings and option orders); majority wins."""
    stereotype_votes: int = 3
    """Judge calls per stereotype-label check."""
    splits: dict[str, float] = field(
        default_factory=lambda: {"benchmark": 0.2, "train": 0.72, "val": 0.08}
    )
    """Share of personas per split (whole personas: no persona is in two splits)."""
    max_retries: int = 4
    """Attempts per model call on transport errors (exponential backoff)."""
    max_repairs: int = 3
    """Attempts per structured reply when it does not parse or validate (the error is fed back)."""
    backoff_seconds: float = 1.0
    """First backoff delay; doubles each retry."""
    temperature: float = 0.7
    """Sampling temperature of the writing calls (judges use 0 and vary the prompt instead)."""
    max_tokens: int = 1200
    """Cap on tokens per writing call."""
    price_in_per_mtok: float = 0.0
    price_out_per_mtok: float = 0.0
    """Price per million input/output tokens, for the cost column of the report."""
    keep_going: bool = False
    """On a unit that fails after all retries: False stops after the stage (naming every failure);
    True continues without it and lists it in the report (never silently)."""

    def content_key(self) -> str:
        """Hash of the settings that change generated content (a resumed run must match)."""
        keep = {
            k: v
            for k, v in asdict(self).items()
            if k
            not in (
                "out",
                "personas",
                "concurrency",
                "max_retries",
                "backoff_seconds",
                "price_in_per_mtok",
                "price_out_per_mtok",
                "keep_going",
            )
        }
        blob = json.dumps(keep, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self), default=str))
