"""The ``personamem`` command line: a thin layer over the Python API."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .bench.cli import bench_app
from .datagen.cli import generate_cmd
from .models import DEFAULT_MEMORY_MODEL, DEFAULT_MODEL, ModelError, WeightsError, get_model
from .server.cli import keys_app, serve, worker
from .store.cli import user_app
from .store.db_cli import db_app
from .train.cli import train_app

app = typer.Typer(
    help="personamem: learn who a user is from long chat histories and personalize answers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Read and check PersonaMem-v2 data.", no_args_is_help=True)
memory_app = typer.Typer(help="Build agentic memories from chat histories.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(memory_app, name="memory")
app.add_typer(user_app, name="user")
app.add_typer(db_app, name="db")
app.add_typer(bench_app, name="bench")
app.add_typer(train_app, name="train")
app.add_typer(keys_app, name="keys")
app.command("serve")(serve)
app.command("worker")(worker)
app.command("generate")(generate_cmd)

console = Console(stderr=True)
out = Console()

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Model spec: local/qwen2.5-0.5b (default, offline), local/qwen2.5-1.5b, "
        "local/smollm2-135m, "
        "gguf:/path/model.gguf, openai/<name> (uses OPENAI_BASE_URL, OPENAI_API_KEY).",
    ),
]


def fail(msg: str, code: int = 1) -> None:
    console.print(f"[bold red]error:[/] {msg}")
    raise typer.Exit(code)


def load_model(spec: str, n_ctx: int | None = None):  # noqa: ANN201
    try:
        return get_model(spec, n_ctx=n_ctx)
    except (ValueError, WeightsError, ModelError) as e:
        fail(str(e))


def progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
    )


# --- data -------------------------------------------------------------------------------------
@data_app.command("inspect")
def data_inspect(
    root: Annotated[Path, typer.Argument(help="A PersonaMem-v2 release folder.")],
    strict: Annotated[bool, typer.Option(help="Stop at the first bad row or file.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    tokens_model: Annotated[
        str, typer.Option("--tokens-model", help="Model whose tokenizer counts history tokens.")
    ] = DEFAULT_MODEL,
) -> None:
    """Count questions per category and measure the linked chat histories."""
    from .data import DataError, load_release

    try:
        rel = load_release(root, strict=strict)
    except DataError as e:
        fail(str(e))
    fields = ["split", "pref_type", "who", "updated", "conversation_scenario"]
    counts: dict[str, dict[str, int]] = {}
    for f in fields:
        counts[f] = dict(Counter(str(getattr(q, f)) for q in rel.items).most_common())
    counts["sensitive_info"] = dict(Counter(str(q.has_sensitive) for q in rel.items).most_common())
    model = load_model(tokens_model)
    hist: dict[str, dict[str, float]] = {}
    bad_histories: list[str] = []
    for ctx in ("32k", "128k"):
        links = rel.history_paths(ctx)  # type: ignore[arg-type]
        toks, msgs = [], []
        for link in links:
            try:
                h = rel.history(link)
            except DataError as e:
                bad_histories.append(str(e))
                continue
            toks.append(sum(model.count_tokens(m["content"]) for m in h.messages))
            msgs.append(len(h.messages))
        if toks:
            hist[ctx] = {
                "histories": len(toks),
                "messages_mean": round(statistics.mean(msgs), 1),
                "tokens_min": min(toks),
                "tokens_mean": round(statistics.mean(toks), 1),
                "tokens_max": max(toks),
            }
    issues = [str(i) for i in rel.issues] + bad_histories
    if strict and bad_histories:
        fail(bad_histories[0])
    result = {
        "root": str(root),
        "questions": len(rel.items),
        "counts": counts,
        "histories": hist,
        "tokenizer": model.name,
        "issues": issues,
    }
    if as_json:
        out.print_json(json.dumps(result))
        return
    out.print(f"[bold]{root}[/]: {len(rel.items)} questions")
    for f, c in counts.items():
        t = Table(title=f, show_header=False, title_justify="left")
        for k, v in c.items():
            t.add_row(k, str(v))
        out.print(t)
    t = Table(title=f"chat histories (tokens by {model.name})", title_justify="left")
    for col in ("context", "histories", "messages_mean", "tokens_min", "tokens_mean", "tokens_max"):
        t.add_column(col)
    for ctx, s in hist.items():
        t.add_row(ctx, *(str(v) for v in s.values()))
    out.print(t)
    if issues:
        console.print(f"[yellow]{len(issues)} problem(s); those rows were skipped:[/]")
        for i in issues[:50]:
            console.print(f"  - {i}")
        if len(issues) > 50:
            console.print(f"  ... and {len(issues) - 50} more (use --json for all)")


# --- memory -----------------------------------------------------------------------------------
@memory_app.command("build")
def memory_build(
    history: Annotated[Path, typer.Argument(help="A chat-history JSON file.")],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help=f"Model that writes the memory: {DEFAULT_MEMORY_MODEL} (default, offline), "
            "local/qwen2.5-0.5b (faster; cannot write notes, use --no-notes), "
            "gguf:/path/model.gguf, openai/<name>.",
        ),
    ] = DEFAULT_MEMORY_MODEL,
    chunk_tokens: Annotated[int, typer.Option(help="Tokens per history chunk.")] = 5000,
    memory_tokens: Annotated[int, typer.Option(help="Token cap of the memory.")] = 2048,
    max_chunks: Annotated[int | None, typer.Option(help="Stop after N chunks.")] = None,
    strategy: Annotated[
        str,
        typer.Option(
            help="profile (default: one inferred profile line per user message), select (the "
            "user's own statements as short faithful notes), extract (notes listed per step) or "
            "rewrite (the paper's single call, for large models)."
        ),
    ] = "profile",
    notes: Annotated[
        bool,
        typer.Option(
            help="select: rewrite each statement as a short profile note (--no-notes: keep the "
            "statements verbatim, no generation)."
        ),
    ] = True,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the memory here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Build a user's memory from a chat history, chunk by chunk, causally."""
    from .data import DataError, load_history
    from .memory import MemoryAgent

    try:
        h = load_history(history)
    except DataError as e:
        fail(str(e))
    if strategy not in ("select", "extract", "rewrite", "profile"):
        fail("--strategy must be select, extract, rewrite or profile")
    m = load_model(model)
    agent = MemoryAgent(m, chunk_tokens, memory_tokens, strategy=strategy, notes=notes)
    chunks = agent.chunk(h.messages)
    total = len(chunks) if max_chunks is None else min(max_chunks, len(chunks))
    with progress() as bar:
        task = bar.add_task("memory update", total=total)

        def step(report, state):  # noqa: ANN001
            bar.update(task, advance=1, description=f"memory update ({state.tokens} tok)")
            for w in report.warnings:
                console.print(f"[yellow]chunk {report.chunk}:[/] {w}")

        result = asyncio.run(agent.build(h.messages, max_chunks=max_chunks, on_chunk=step))
    if out_file:
        out_file.write_text(result.memory + "\n", encoding="utf-8")
    if as_json:
        data = result.model_dump(exclude={"state"})
        out.print_json(json.dumps(data))
    else:
        out.print(result.memory)
        console.print(
            f"[dim]{result.chunks} chunks, history {result.history_tokens} tokens, memory "
            f"{result.memory_tokens} tokens, in {result.tokens_in} / out {result.tokens_out} "
            f"tokens, {result.seconds:.1f}s[/]"
        )


# --- answer -----------------------------------------------------------------------------------
@app.command("answer")
def answer_cmd(
    query: Annotated[str, typer.Option("--query", "-q", help="The user's request.")],
    memory: Annotated[Path | None, typer.Option(help="A memory file to answer from.")] = None,
    history: Annotated[
        Path | None, typer.Option(help="A chat-history JSON to answer from (long context).")
    ] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help="An MCQ option (repeat).")
    ] = None,
    model: ModelOpt = DEFAULT_MODEL,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Answer a query from a memory (or a full history): pick an option, or write freely."""
    from .answer import Answerer, fit_history
    from .data import DataError, load_history

    if memory and history:
        fail("give --memory or --history, not both")
    m = load_model(model)
    ctx: dict[str, object] = {}
    dropped = 0
    if memory:
        if not memory.is_file():
            fail(f"{memory}: file not found")
        ctx["memory"] = memory.read_text(encoding="utf-8")
    elif history:
        try:
            h = load_history(history)
        except DataError as e:
            fail(str(e))
        msgs, dropped = fit_history(h.messages, m, m.context_window - 1200)
        ctx["history"] = msgs
    answerer = Answerer(m)
    try:
        if option:
            if len(option) < 2:
                fail("give at least two --option values for a multiple-choice answer")
            a = asyncio.run(answerer.mcq(query, list(option), **ctx))
        else:
            a = asyncio.run(answerer.open(query, **ctx))
    except ModelError as e:
        fail(str(e))
    if as_json:
        d = a.model_dump()
        d["history_tokens_dropped"] = dropped
        out.print_json(json.dumps(d))
    elif option:
        out.print(f"{a.letter}. {a.text}" if a.letter else f"(no answer parsed) {a.text}")
    else:
        out.print(a.text)
    if dropped:
        console.print(
            f"[yellow]{dropped} history tokens did not fit the context and were dropped[/]"
        )


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
