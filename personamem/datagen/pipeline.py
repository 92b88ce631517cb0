"""The whole pipeline, stage by stage, resumable; returns and saves a report."""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel

from ..models import get_model
from ..models.base import Model
from .config import GenerateConfig
from .conversations import run_conversations, run_fillers
from .filters import pass_rates, run_filters
from .histories import run_histories
from .llm import LLM
from .personas import run_personas
from .preferences import run_preferences
from .qa import run_qa
from .release import write_release
from .run import Events, Run
from .store import Artifacts, write_json

STAGES = (
    "personas",
    "preferences",
    "stereotype_check",
    "conversations",
    "fillers",
    "histories",
    "qa",
    "filters",
)


class GenerateReport(BaseModel):
    """What a run produced and what it cost (also in ``OUT/work/report.json``)."""

    out: str
    personas: int
    questions_generated: int
    questions_kept: int
    split_questions: dict[str, int]
    split_personas: dict[str, str]
    pass_rates: dict[str, dict[str, float]]
    usage: dict[str, dict[str, float]]
    """Per stage, cumulative over resumed runs: calls, tokens_in/out, retries, repairs, seconds, cost."""
    tokens_per_kept_question: float
    seconds_this_run: float
    kept_per_hour: float
    dropped_preferences: int
    relabelled_preferences: int
    failures: dict[str, list[str]]


def _llm(model: Model, cfg: GenerateConfig) -> LLM:
    return LLM(
        model,
        concurrency=cfg.concurrency,
        max_retries=cfg.max_retries,
        max_repairs=cfg.max_repairs,
        backoff_seconds=cfg.backoff_seconds,
    )


async def generate(
    cfg: GenerateConfig,
    *,
    model: Model | None = None,
    judge: Model | None = None,
    events: Events | None = None,
) -> GenerateReport:
    """Run (or resume) every stage into ``cfg.out``. ``model``/``judge`` override the specs
    (tests pass the scripted model)."""
    t0 = time.perf_counter()
    out = Path(cfg.out)
    art = Artifacts(out)
    art.check_config(cfg.content_key(), cfg.to_json())
    writer_model = model or get_model(cfg.model)
    judge_model = judge or (get_model(cfg.judge_model) if cfg.judge_model else writer_model)
    tokens_model = get_model(cfg.tokens_model) if cfg.tokens_model else writer_model
    writer = _llm(writer_model, cfg)
    jl = writer if judge_model is writer_model else _llm(judge_model, cfg)
    run = Run(cfg, writer, jl, tokens_model, art, events or Events())

    personas = await run_personas(run)
    prefs = await run_preferences(run, personas)
    convs = await run_conversations(run, personas, prefs)
    fillers = await run_fillers(run)
    histories = await run_histories(run, personas, convs, fillers)
    qa = await run_qa(run, personas, convs, histories)
    sensitive = {
        f"{pid}-{b['block_id']}": b["sensitive"]["value"]
        for pid, bs in convs.items()
        for b in bs
        if b.get("sensitive")
    }
    verdicts = await run_filters(run, qa, sensitive)
    rel = write_release(run, personas, prefs, convs, histories, qa, verdicts)

    usage = art.root / "usage.json"
    import json

    totals: dict[str, dict[str, float]] = json.loads(usage.read_text()) if usage.is_file() else {}
    for u in totals.values():
        u["cost"] = round(
            u.get("tokens_in", 0) * cfg.price_in_per_mtok / 1e6
            + u.get("tokens_out", 0) * cfg.price_out_per_mtok / 1e6,
            4,
        )
    kept = sum(1 for v in verdicts.values() if v["kept"])
    all_tokens = sum(u.get("tokens_in", 0) + u.get("tokens_out", 0) for u in totals.values())
    all_seconds = sum(u.get("seconds", 0) for u in totals.values())
    report = GenerateReport(
        out=str(out),
        personas=len(personas),
        questions_generated=len(qa),
        questions_kept=kept,
        split_questions=rel["questions"],
        split_personas=rel["splits"],
        pass_rates=pass_rates(verdicts),
        usage=totals,
        tokens_per_kept_question=round(all_tokens / kept, 1) if kept else 0.0,
        seconds_this_run=round(time.perf_counter() - t0, 1),
        kept_per_hour=round(kept / all_seconds * 3600, 1) if all_seconds else 0.0,
        dropped_preferences=sum(len(p["dropped"]) for p in prefs.values()),
        relabelled_preferences=sum(p["relabelled"] for p in prefs.values()),
        failures=run.failures,
    )
    write_json(art.root / "report.json", report.model_dump())
    return report
