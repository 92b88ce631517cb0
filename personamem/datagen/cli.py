"""``personamem generate``: build a PersonaMem-v2-style dataset, resumably."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ..models import ModelError, WeightsError
from .config import GenerateConfig
from .run import Events, GenerationError
from .store import ResumeError

console = Console(stderr=True)
out = Console()
D = GenerateConfig()


class _Bars(Events):
    def __init__(self, p: Progress) -> None:
        self.p = p
        self.tasks: dict[str, TaskID] = {}

    def stage(self, name: str, total: int, done: int) -> None:
        if done:
            self.p.console.print(f"[dim]{name}: {done}/{total} already done, resuming[/]")
        self.tasks[name] = self.p.add_task(name, total=total, completed=done)

    def advance(self, name: str) -> None:
        if name in self.tasks:
            self.p.update(self.tasks[name], advance=1)

    def note(self, message: str) -> None:
        self.p.console.print(f"[yellow]{message}[/]")


def generate_cmd(
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Output folder (release layout + work/ artifacts). Rerun to resume."
        ),
    ],
    personas: Annotated[int, typer.Option(help="Personas to generate.")] = D.personas,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="Model that writes: local/qwen2.5-0.5b, local/qwen2.5-1.5b, gguf:/path.gguf, openai/<name> (OPENAI_BASE_URL, OPENAI_API_KEY).",
        ),
    ] = D.model,
    judge_model: Annotated[
        str | None, typer.Option(help="Model that votes in the filters (default: --model).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = D.seed,
    concurrency: Annotated[
        int, typer.Option(help="Model calls in flight at once.")
    ] = D.concurrency,
    seeds_file: Annotated[
        Path | None,
        typer.Option(help="Persona one-liners, one a line (default: built-in examples)."),
    ] = None,
    prefs_per_kind: Annotated[
        int, typer.Option(help="Preferences per kind (5 kinds).")
    ] = D.prefs_per_kind,
    history_tokens_32k: Annotated[
        int, typer.Option(help="Token budget of the short history.")
    ] = D.history_tokens_32k,
    history_tokens_128k: Annotated[
        int, typer.Option(help="Token budget of the padded history (0: none).")
    ] = D.history_tokens_128k,
    filler_dialogues: Annotated[
        int, typer.Option(help="Unrelated dialogues generated for padding.")
    ] = D.filler_dialogues,
    votes: Annotated[int, typer.Option(help="Judge calls per filter decision.")] = D.votes,
    message_words: Annotated[
        int, typer.Option(help="Max words per generated message.")
    ] = D.message_words,
    max_tokens: Annotated[int, typer.Option(help="Max tokens per writing call.")] = D.max_tokens,
    price_in: Annotated[
        float, typer.Option(help="Price per million input tokens (cost report).")
    ] = 0.0,
    price_out: Annotated[float, typer.Option(help="Price per million output tokens.")] = 0.0,
    keep_going: Annotated[
        bool,
        typer.Option(
            help="Skip units that fail after all retries (listed in the report) instead of stopping."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Generate an implicit-persona dataset: personas, preferences, conversations, histories,
    Q&A, validation filters, splits. Every stage saves its work under OUT/work, so rerunning the
    same command after a stop redoes nothing finished. The output is a release folder that
    `personamem data inspect` and `personamem bench run` read directly."""
    from .pipeline import generate

    cfg = GenerateConfig(
        out=out_dir,
        model=model,
        judge_model=judge_model,
        personas=personas,
        seeds_file=seeds_file,
        seed=seed,
        concurrency=concurrency,
        prefs_per_kind=prefs_per_kind,
        history_tokens_32k=history_tokens_32k,
        history_tokens_128k=history_tokens_128k,
        filler_dialogues=filler_dialogues,
        votes=votes,
        stereotype_votes=votes,
        message_words=message_words,
        max_tokens=max_tokens,
        price_in_per_mtok=price_in,
        price_out_per_mtok=price_out,
        keep_going=keep_going,
    )
    if personas < 1:
        console.print("[bold red]error:[/] --personas must be at least 1")
        raise typer.Exit(1)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    try:
        with progress:
            report = asyncio.run(generate(cfg, events=_Bars(progress)))
    except (
        GenerationError,
        ResumeError,
        ModelError,
        WeightsError,
        ValueError,
        FileNotFoundError,
    ) as e:
        console.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(1) from None
    if as_json:
        out.print_json(json.dumps(report.model_dump()))
        return
    t = Table(title="cost per stage (cumulative over resumed runs)", title_justify="left")
    for c in ("stage", "calls", "tokens in", "tokens out", "retries", "repairs", "seconds", "cost"):
        t.add_column(c)
    for stage, u in report.usage.items():
        t.add_row(
            stage,
            *(
                str(round(u.get(k, 0), 2))
                for k in (
                    "calls",
                    "tokens_in",
                    "tokens_out",
                    "retries",
                    "repairs",
                    "seconds",
                    "cost",
                )
            ),
        )
    out.print(t)
    f = Table(title="validation filters", title_justify="left")
    for c in ("filter", "items", "passed", "rate"):
        f.add_column(c)
    for name, r in report.pass_rates.items():
        f.add_row(name, str(int(r["items"])), str(int(r["passed"])), f"{r['rate']:.0%}")
    out.print(f)
    out.print(
        f"{report.personas} personas, {report.questions_kept}/{report.questions_generated} questions kept "
        f"{report.split_questions}; {report.tokens_per_kept_question:.0f} tokens per kept question; "
        f"release in {report.out}"
    )
    for stage, errs in report.failures.items():
        console.print(f"[yellow]{stage}: {len(errs)} unit(s) skipped[/]")
