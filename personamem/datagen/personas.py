"""Stage 1: expand seed one-liners into structured personas (plus fake sensitive data)."""

from __future__ import annotations

import random
import string
from pathlib import Path
from typing import Any

from . import prompts
from .run import Run
from .schemas import PersonaDraft

STAGE = "personas"


def read_seeds(path: Path | None) -> list[str]:
    """One-line persona descriptions from a file, or the built-in examples."""
    if path is None:
        return list(prompts.SEED_PERSONAS)
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: seeds file not found (one persona description a line)")
    lines = [x.strip() for x in Path(path).read_text(encoding="utf-8").splitlines()]
    seeds = [x for x in lines if x and not x.startswith("#")]
    if not seeds:
        raise ValueError(f"{path}: no persona descriptions (one a line; # starts a comment)")
    return seeds


def fake_sensitive(rng: random.Random, name: str, city: str) -> dict[str, str]:
    """Obviously fake but well-formed sensitive items (never real people's data)."""

    def digits(n: int) -> str:
        return "".join(rng.choice(string.digits) for _ in range(n))

    handle = ".".join(name.lower().split()[:2]) or "user"
    handle = "".join(c for c in handle if c.isalnum() or c == ".")
    return {
        "physical_address": f"{rng.randint(100, 9999)} {rng.choice(['Maple', 'Cedar', 'Lake', 'Hill', 'Oak'])} "
        f"{rng.choice(['Street', 'Avenue', 'Road', 'Lane'])}, {city}",
        "email_address": f"{handle}{rng.randint(10, 99)}@examplemail.com",
        "phone_number": f"+1-555-{digits(3)}-{digits(4)}",
        "ssn": f"9{digits(2)}-{digits(2)}-{digits(4)}",
        "passport_number": f"X{digits(8)}",
        "driver_license_number": f"DL-{digits(9)}",
        "bank_account_number": digits(12),
        "credit_card_number": f"4000 {digits(4)} {digits(4)} {digits(4)}",
        "vehicle_plate_number": f"{rng.choice(string.ascii_uppercase)}{rng.choice(string.ascii_uppercase)}-{digits(4)}",
        "llm_api_key": "sk-test-"
        + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(24)),
    }


async def make_persona(run: Run, pid: str, seed_line: str) -> dict[str, Any]:
    msgs = [
        {"role": "system", "content": prompts.PERSONA_SYSTEM},
        {"role": "user", "content": prompts.PERSONA_USER.format(seed=seed_line)},
    ]
    draft = await run.writer.structured(
        STAGE,
        f"persona {pid}",
        msgs,
        PersonaDraft,
        max_tokens=run.config.max_tokens,
        temperature=run.config.temperature,
        seed=run.seed_of(STAGE, pid),
    )
    d = draft.model_dump()
    persona: dict[str, Any] = {"persona_id": pid, "short_persona": seed_line, **d}
    persona["sensitive_information"] = fake_sensitive(
        run.rng(STAGE, pid, "sensitive"), draft.name, draft.location.city
    )
    return persona


async def run_personas(run: Run) -> dict[str, dict[str, Any]]:
    seeds = read_seeds(run.config.seeds_file)
    pids = [str(i) for i in range(run.config.personas)]
    return await run.units(
        STAGE, pids, lambda pid: make_persona(run, pid, seeds[int(pid) % len(seeds)])
    )
