"""``personamem bench``: run the benchmark harness and report on runs."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ..models import DEFAULT_MEMORY_MODEL, DEFAULT_MODEL, ModelError, WeightsError
from .config import MODES, RunConfig, default_cache_dir
from .report import ReportError, write_report
from .runner import BenchError, RunEvents, Runner, judge_items, per_persona_subset
from .store import RunDirError, write_json_atomic
from .systems import SYSTEMS

bench_app = typer.Typer(
    help="Benchmark personalization systems on PersonaMem-v2 data.", no_args_is_help=True
)
console = Console(stderr=True)
out = Console()


def _fail(msg: str, code: int = 1) -> None:
    console.print(f"[bold red]error:[/] {msg}")
    raise typer.Exit(code)


def _csv(text: str | None) -> list[str]:
    return [x.strip() for x in (text or "").split(",") if x.strip()]


class RichEvents(RunEvents):
    """Progress bars with elapsed time and an estimate of the time left."""

    def __init__(self, progress: Progress) -> None:
        self.p = progress
        self.answers: TaskID | None = None
        self.judging: TaskID | None = None
        self.tasks: dict[str, TaskID] = {}

    def plan(self, answers: int, judgements: int, done: int) -> None:
        if done:
            self.p.console.print(f"[dim]resuming: {done} results already in the run folder[/]")
        if answers or judgements:
            self.p.console.print(
                f"[dim]to do: {answers} answers"
                + (f", {judgements} judgements" if judgements else "")
                + " (the estimate settles after the first answers of each system)[/]"
            )
        if answers:
            self.answers = self.p.add_task("answers", total=answers)
        if judgements:
            self.judging = self.p.add_task("judging", total=judgements)
        if not answers and not judgements:
            self.p.console.print("[green]nothing left to do: every question is answered[/]")

    def answered(self, row: dict[str, Any]) -> None:
        if self.answers is not None:
            self.p.update(self.answers, advance=1, description=f"answers ({row['system']})")
        if row.get("status") == "error":
            self.p.console.print(f"[yellow]{row['system']} {row['qid']}:[/] {row.get('error')}")

    def judged(self, row: dict[str, Any]) -> None:
        if self.judging is not None:
            self.p.update(self.judging, advance=1)

    def start(self, key: str, description: str, total: int | None) -> None:
        self.tasks[key] = self.p.add_task(description, total=total)

    def advance(self, key: str, steps: int = 1, description: str | None = None) -> None:
        if key in self.tasks:
            kw: dict[str, Any] = {"advance": steps}
            if description:
                kw["description"] = description
            self.p.update(self.tasks[key], **kw)

    def stop(self, key: str) -> None:
        if key in self.tasks:
            self.p.remove_task(self.tasks.pop(key))

    def note(self, message: str) -> None:
        self.p.console.print(f"[dim]{message}[/]")


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
    )


def memory_writer(model: str | None, memory_model: str | None) -> str | None:
    """The memory-writing model of ``bench run``: ``--memory-model``, else the ``--model`` given
    (None: the same), else the default writer."""
    if memory_model:
        return memory_model
    return None if model else DEFAULT_MEMORY_MODEL


@bench_app.command("run")
def run_cmd(
    data_dir: Annotated[Path, typer.Argument(help="A PersonaMem-v2 release folder.")],
    systems: Annotated[
        str, typer.Option(help=f"Comma-separated systems: {', '.join(sorted(SYSTEMS))}.")
    ] = "memory,long-context,retrieval,no-history",
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="Answering model: local/qwen2.5-0.5b (default, offline), local/qwen2.5-1.5b, "
            "local/smollm2-135m, gguf:/path.gguf, openai/<name>. Also writes the memories "
            "unless --memory-model says otherwise.",
        ),
    ] = None,
    memory_model: Annotated[
        str | None,
        typer.Option(
            "--memory-model",
            help="Model that writes the memories (memory system). Default: --model if given, "
            f"else {DEFAULT_MEMORY_MODEL} (the 0.5B model cannot write notes).",
        ),
    ] = None,
    judges: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated judge models for open-ended scoring (default: --model; "
            "one deterministic judge for a local model, three samples otherwise). Each is "
            "validated first; see `personamem bench validate-judges`."
        ),
    ] = None,
    judge_validation_items: Annotated[
        int,
        typer.Option(
            help="Open mode: validate each judge first on the run's first N questions (it must "
            "score the correct option above every wrong one on 80% of them, or it is not used)."
        ),
    ] = 20,
    context: Annotated[
        str,
        typer.Option(
            help="History: 32k, 128k, or snippet (each question's related conversation "
            "snippet as its own short history; works on train.csv, which has no full histories)."
        ),
    ] = "32k",
    distractors: Annotated[
        int,
        typer.Option(help="--context snippet: other snippets of the same persona per history."),
    ] = 0,
    mode: Annotated[str, typer.Option(help="mcq, open or both.")] = "mcq",
    limit: Annotated[int | None, typer.Option(help="Only the first N questions.")] = None,
    per_persona: Annotated[
        int | None,
        typer.Option(help="At most N questions per persona, drawn with --seed (a fixed subset)."),
    ] = None,
    personas: Annotated[
        str | None, typer.Option(help="Comma-separated persona ids to keep.")
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            help="Questions in flight at once (keep 1 with a local model: it runs one "
            "prompt at a time and concurrency would break KV-cache reuse)."
        ),
    ] = 1,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Run folder; re-running into it resumes.")
    ] = Path("runs/bench"),
    split: Annotated[str, typer.Option(help="benchmark, train or val.")] = "benchmark",
    chunk_tokens: Annotated[int, typer.Option(help="Memory: tokens per history chunk.")] = 5000,
    memory_tokens: Annotated[int, typer.Option(help="Memory: token cap of the memory.")] = 2048,
    max_chunks: Annotated[
        int | None, typer.Option(help="Memory: read only the first N chunks (quick runs).")
    ] = None,
    strategy: Annotated[
        str,
        typer.Option(help="Memory: profile (default), select, extract or rewrite."),
    ] = "profile",
    notes: Annotated[
        bool, typer.Option(help="Memory (select): short notes; --no-notes keeps statements.")
    ] = True,
    top_k: Annotated[int, typer.Option(help="Retrieval: user turns put in the prompt.")] = 8,
    snippet_tokens: Annotated[int, typer.Option(help="Retrieval: tokens kept per turn.")] = 300,
    mcq_method: Annotated[
        str,
        typer.Option(
            help="How the answerer picks an option: auto (its default), likelihood (option "
            "text scored as the reply), score (letter log-probabilities) or generate (letter "
            "parsed from \\boxed{x} / Final Answer: X)."
        ),
    ] = "auto",
    seed: Annotated[int, typer.Option(help="Mixed into every question's shuffle seed.")] = 0,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Memory cache (default ~/.cache/personamem/memories).")
    ] = None,
    report: Annotated[bool, typer.Option(help="Print and write the report at the end.")] = True,
) -> None:
    """Answer PersonaMem-v2 questions with each system, score them, record cost; resumable."""
    if context not in ("32k", "128k", "snippet"):
        _fail(f"--context must be 32k, 128k or snippet, not {context!r}", 2)
    if distractors < 0:
        _fail("--distractors must be 0 or more", 2)
    if mode not in MODES:
        _fail(f"--mode must be mcq, open or both, not {mode!r}", 2)
    names = _csv(systems)
    unknown = [s for s in names if s not in SYSTEMS]
    if not names or unknown:
        _fail(
            f"unknown system(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(sorted(SYSTEMS))}",
            2,
        )
    if strategy not in ("select", "extract", "rewrite", "profile"):
        _fail("--strategy must be select, extract, rewrite or profile", 2)
    if mcq_method not in ("auto", "likelihood", "score", "generate"):
        _fail("--mcq-method must be auto, likelihood, score or generate", 2)
    if concurrency < 1:
        _fail("--concurrency must be at least 1", 2)
    if limit is not None and limit < 1:
        _fail("--limit must be at least 1", 2)
    if judge_validation_items < 1:
        _fail("--judge-validation-items must be at least 1", 2)
    if not data_dir.is_dir():
        _fail(f"{data_dir}: not a folder; expected a PersonaMem-v2 release folder", 2)
    try:
        cfg = RunConfig(
            data_dir=str(data_dir.resolve()),
            systems=list(dict.fromkeys(names)),
            model=model or DEFAULT_MODEL,
            memory_model=memory_writer(model, memory_model),
            judges=_csv(judges),
            judge_validation_items=judge_validation_items,
            context=context,  # type: ignore[arg-type]
            modes=list(MODES[mode]),
            split=split,
            limit=limit,
            per_persona=per_persona,
            personas=_csv(personas),
            concurrency=concurrency,
            chunk_tokens=chunk_tokens,
            memory_tokens=memory_tokens,
            max_chunks=max_chunks,
            strategy=strategy,
            notes=notes,
            top_k=top_k,
            snippet_tokens=snippet_tokens,
            seed=seed,
            distractors=distractors,
            mcq_method=mcq_method,  # type: ignore[arg-type]
            cache_dir=str(cache_dir or default_cache_dir()),
        )
    except ValueError as e:
        _fail(str(e), 2)
    if concurrency > 1 and cfg.model.startswith(("local/", "gguf:")):
        console.print(
            "[yellow]note:[/] a local model answers one prompt at a time; "
            "--concurrency > 1 only interleaves histories and loses KV-cache reuse"
        )
    with _progress() as bar:
        events = RichEvents(bar)
        try:
            runner = Runner(
                cfg, out_dir, events=events, extra_manifest={"command": " ".join(sys.argv)}
            )
            bar.console.print(
                f"[bold]{out_dir}[/]: {', '.join(cfg.systems)} on {data_dir} "
                f"({cfg.context}, {mode}, model {cfg.model}"
                + (f", memories by {cfg.memory_model}" if cfg.memory_model else "")
                + ")"
            )
            summary = asyncio.run(runner.run())
        except KeyboardInterrupt:
            console.print(
                f"\n[yellow]interrupted.[/] Finished answers are saved in {out_dir}; "
                "run the same command again to resume."
            )
            raise typer.Exit(130) from None
        except (BenchError, RunDirError) as e:
            _fail(str(e), 2)
        except (ModelError, WeightsError) as e:
            _fail(str(e))
    console.print(
        f"[green]done[/] in {summary.seconds:.1f}s: {summary.answered} answered, "
        f"{summary.judged} judged, {summary.skipped} already done, {summary.errors} errors"
    )
    for msg in summary.error_messages[:5]:
        console.print(f"  [yellow]-[/] {msg}")
    if report:
        res = write_report([out_dir], console=out, on_plot_error=_plot_warning)
        console.print(
            f"report: {res.markdown_path}"
            + (f", plots in {res.markdown_path.parent / 'plots'}" if res.plots else "")
        )
    if summary.errors:
        console.print("[yellow]some questions failed; re-run the same command to retry them[/]")


def _plot_warning(e: Exception) -> None:
    console.print(f"[yellow]no plots ({e}); pip install matplotlib[/]")


@bench_app.command("report")
def report_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(help="One or more run folders.")],
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Where report.md and plots/ go (default: the run folder, "
            "or <first run>/compare for several).",
        ),
    ] = None,
    plots: Annotated[bool, typer.Option(help="Draw PNG plots.")] = True,
) -> None:
    """Tables (terminal and Markdown), plots (PNG), side by side when several runs are given."""
    try:
        res = write_report(run_dirs, out_dir, console=out, plots=plots, on_plot_error=_plot_warning)
    except ReportError as e:
        _fail(str(e), 2)
    console.print(
        f"report: {res.markdown_path}"
        + (f", {len(res.plots)} plots in {res.markdown_path.parent / 'plots'}" if res.plots else "")
    )


def _prior_validations(path: Path, ids: list[str]) -> dict[str, Any]:
    """Validations already in ``path`` for the same questions, by judge key (the partial one
    of an interrupted run included), so re-running the command resumes."""
    from .validation import JudgeValidation

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("questions") != ids:
        return {}
    out: dict[str, Any] = {}
    for raw in [*(data.get("validations") or []), data.get("partial")]:
        if not raw:
            continue
        try:
            v = JudgeValidation.model_validate(raw)
        except ValueError:
            continue
        if v.item_ids == ids[: len(v.item_ids)]:
            out.setdefault(v.key, v)
    return out


@bench_app.command("validate-judges")
def validate_judges_cmd(
    data_dir: Annotated[Path, typer.Argument(help="A PersonaMem-v2 release folder.")],
    judges: Annotated[
        str,
        typer.Option(
            help="Comma-separated judge models: local/qwen2.5-0.5b, local/qwen2.5-1.5b, "
            "gguf:/path.gguf, openai/<name>. A spec named twice becomes two samples."
        ),
    ],
    out_file: Annotated[
        Path, typer.Option("--out", help="JSON file for the validations (every item's scores).")
    ],
    split: Annotated[str, typer.Option(help="benchmark, train or val.")] = "benchmark",
    personas: Annotated[
        str | None, typer.Option(help="Comma-separated persona ids to keep.")
    ] = None,
    per_persona: Annotated[
        int | None,
        typer.Option(help="At most N questions per persona, drawn with --seed (a fixed subset)."),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N questions.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the --per-persona draw.")] = 0,
) -> None:
    """Check judges before trusting them: each question's correct option and its wrong options
    are scored as responses with the benchmark's rubric; a judge must score the correct one
    strictly above every wrong one on at least 80% of the questions, or it is not used."""
    from ..data import DataError, load_release
    from ..models import get_model
    from .scoring import Judge, make_judges
    from .validation import ItemCheck, JudgeValidation, validate_judge

    specs = _csv(judges)
    if not specs:
        _fail("--judges names no model", 2)
    if limit is not None and limit < 1:
        _fail("--limit must be at least 1", 2)
    if not data_dir.is_dir():
        _fail(f"{data_dir}: not a folder; expected a PersonaMem-v2 release folder", 2)
    try:
        items = judge_items(load_release(data_dir, splits=(split,)), split, _csv(personas))
    except (DataError, BenchError) as e:
        _fail(str(e), 2)
    if per_persona is not None:
        items = per_persona_subset(items, per_persona, seed)
    if limit is not None:
        items = items[:limit]
    try:
        models = {s: get_model(s) for s in dict.fromkeys(specs)}
    except (ValueError, ModelError, WeightsError) as e:
        _fail(str(e), 2)
    results: list[JudgeValidation] = []
    ids = [q.id for q in items]
    prior = _prior_validations(out_file, ids)

    def save(partial: JudgeValidation | None = None) -> None:
        done = [v.model_dump(mode="json") for v in results]
        write_json_atomic(
            out_file,
            {
                "command": " ".join(sys.argv),
                "data_dir": str(data_dir.resolve()),
                "split": split,
                "questions": ids,
                "validations": done,
                "partial": None if partial is None else partial.model_dump(mode="json"),
            },
        )

    with _progress() as bar:
        for j in make_judges(specs, models):
            old = prior.get(j.key)
            if old is not None and old.item_ids == ids:
                bar.console.print(f"[dim]already in {out_file}:[/] {old.summary()}")
                results.append(old)
                continue
            # a partial validation of this judge (an interrupted run) goes on where it stopped
            checks = list(old.checks) if old is not None else []
            before = old.seconds if old is not None else 0.0
            rest = items[len(checks) :]
            task = bar.add_task(f"judge {j.spec}", total=len(items), completed=len(checks))
            start = time.perf_counter() - before

            def step(
                c: ItemCheck, t: TaskID = task, j: Judge = j, checks: list = checks, t0=start
            ) -> None:
                checks.append(c)
                bar.update(t, advance=1)
                partial = JudgeValidation.of(j, checks, seconds=time.perf_counter() - t0)
                save(partial)  # an interrupted run keeps its items and resumes from them

            try:
                part = asyncio.run(validate_judge(j, rest, on_item=step))
            except KeyboardInterrupt:
                console.print(
                    f"\n[yellow]interrupted[/]; the questions done are in {out_file}: "
                    "the same command goes on from there"
                )
                raise typer.Exit(130) from None
            v = JudgeValidation.of(
                j, checks, method=part.method or "distribution", seconds=before + part.seconds
            )
            results.append(v)
            save()
            bar.console.print(v.summary())
    table = Table(title=f"Judge validation: {len(items)} questions of {data_dir} ({split})")
    for col in ("judge", "method", "correct first", "95% CI", "ties", "unparsed", "s/item", "used"):
        table.add_column(col)
    for v in results:
        table.add_row(
            v.judge,
            v.method,
            f"{v.correct_first}/{v.items} ({100 * (v.share or 0):.1f}%)",
            f"{100 * v.ci[0]:.1f}-{100 * v.ci[1]:.1f}%",
            str(v.ties),
            f"{v.unparsed}/{v.responses}",
            f"{v.seconds / max(1, v.items):.1f}",
            "yes" if v.passed else "no",
        )
    out.print(table)
    console.print(f"written: {out_file}")
    if not any(v.passed for v in results):
        console.print(
            "[bold red]no judge passed[/]: open-ended scores from these judges are not "
            "trustworthy; try a stronger judge (e.g. openai/<model>)"
        )
        raise typer.Exit(1)
