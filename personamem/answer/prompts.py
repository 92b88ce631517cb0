"""Answer-time prompts: the same wording for every context (memory, history, retrieval, none)."""

from __future__ import annotations

from .parse import LETTERS

SYSTEM = "You are a helpful assistant. Personalize every answer to the user you are talking to."

MEMORY_PREFIX = "What you know about me from our past conversations:\n{memory}\n\n"
RETRIEVAL_PREFIX = "Excerpts of our past conversations:\n{snippets}\n\n"

MCQ = """{prefix}My request: {query}

Which of these responses suits me best?
{options}

Reply with the letter only."""

OPEN = """{prefix}My request: {query}

Answer my request in a way that fits me."""


def format_options(options: list[str]) -> str:
    return "\n".join(f"{LETTERS[i]}. {o.strip()}" for i, o in enumerate(options))
