"""``personamem train sft|grpo|memory-grpo``: LoRA training on a CPU or GPUs (docs/training.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .data import TRAIN_PERSONAS

train_app = typer.Typer(
    help="Train the memory writer and the answerer with LoRA (SFT, GRPO, memory-agent RL). "
    "Needs the train extra: pip install -e '.\\[train]'. See docs/training.md.",
    no_args_is_help=True,
)
console = Console(stderr=True)

DataArg = Annotated[
    Path, typer.Option("--data", help="A PersonaMem-v2 release folder (benchmark/text/train.csv).")
]
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Base model: local/qwen2.5-0.5b, local/qwen2.5-1.5b, gguf:PATH (converted once to "
        "a Hugging Face folder, cached) or a Hugging Face model folder.",
    ),
]
PersonasOpt = Annotated[
    str,
    typer.Option(
        "--personas",
        help="Comma-separated persona ids to train on (the split's train personas by default; "
        "dev and sample personas are refused).",
    ),
]
ThreadsOpt = Annotated[
    int, typer.Option("--threads", help="torch CPU threads (default 1: leaves a core free).")
]
# Shared by the RL commands (grpo, memory-grpo).
RunOutOpt = Annotated[Path, typer.Option("--out", help="Output folder (logs, adapter).")]
AdapterOpt = Annotated[
    Path | None, typer.Option("--adapter", help="Start from this peft adapter (e.g. SFT's).")
]
RLStepsOpt = Annotated[int, typer.Option("--steps")]
RLLrOpt = Annotated[float, typer.Option("--lr")]


DEFAULT_PERSONAS = ",".join(TRAIN_PERSONAS)


def _personas(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _fail(msg: str) -> None:
    console.print(f"[bold red]error:[/] {msg}")
    raise typer.Exit(1)


def _threads(n: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(n)
    os.environ.setdefault("PERSONAMEM_THREADS", str(n))


@train_app.command("sft")
def sft(
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", help="Output folder (logs, checkpoints, adapter).")],
    model: ModelOpt = "local/qwen2.5-0.5b",
    kinds: Annotated[
        str,
        typer.Option(
            "--kinds", help="writer (profile lines), answer (MCQ), or both: writer,answer"
        ),
    ] = "writer",
    personas: PersonasOpt = DEFAULT_PERSONAS,
    steps: Annotated[int, typer.Option("--steps", help="Optimizer steps.")] = 200,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Examples per step.")] = 1,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (cosine schedule).")] = 2e-4,
    rank: Annotated[int, typer.Option("--rank", help="LoRA rank r (alpha = 2r).")] = 16,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Skip longer examples.")] = 1024,
    holdout: Annotated[
        int, typer.Option("--holdout", help="Examples held out for the loss check.")
    ] = 8,
    eval_every: Annotated[int, typer.Option("--eval-every")] = 50,
    prefix_grad: Annotated[
        bool,
        typer.Option(
            "--prefix-grad/--no-prefix-grad",
            help="Backpropagate through the prompt prefix all examples share (3x slower on a CPU).",
        ),
    ] = False,
    name: Annotated[str, typer.Option("--name", help="File stem of the GGUF adapter.")] = "writer",
    threads: ThreadsOpt = 1,
) -> None:
    """Supervised LoRA fine-tuning: profile-writer lines and/or MCQ answers (loss on replies).

    Writes OUT/log.jsonl (loss, seconds and peak memory per step), OUT/adapter (peft) and, for a
    GGUF base, OUT/NAME.gguf: use it as --model local/qwen2.5-0.5b+lora:OUT/NAME.gguf.
    """
    _threads(threads)
    from .data import TrainDataError
    from .hf import BaseModelError, LoraSettings
    from .sft import SFTTrainConfig, run_sft

    cfg = SFTTrainConfig(
        data=str(data),
        model=model,
        out=str(out),
        kinds=_personas(kinds),
        personas=_personas(personas),
        max_steps=steps,
        batch_size=batch_size,
        lr=lr,
        max_tokens=max_tokens,
        holdout=holdout,
        prefix_grad=prefix_grad,
        eval_every=eval_every,
        save_every=eval_every,
        threads=threads,
        lora=LoraSettings(r=rank, alpha=2 * rank),
        adapter_name=name,
    )
    bad = set(cfg.kinds) - {"writer", "answer"}
    if bad:
        _fail(f"unknown --kinds {', '.join(sorted(bad))}; use writer, answer or writer,answer")

    def on_step(e) -> None:  # noqa: ANN001
        console.print(
            f"step {e.step}/{steps} loss {e.loss:.4f} lr {e.lr:.2e} {e.tokens} tok "
            f"{e.seconds:.1f}s rss {e.rss_mb:.0f} MiB"
        )

    try:
        res = run_sft(cfg, log=console.print, on_step=on_step)
    except (TrainDataError, BaseModelError, ValueError) as e:
        _fail(str(e))
        return
    print(res.model_dump_json(indent=2))
    if res.gguf_adapter:
        console.print(f"use it: --model {model}+lora:{res.gguf_adapter}")


@train_app.command("export")
def export(
    adapter: Annotated[Path, typer.Argument(help="A peft adapter folder (OUT/adapter).")],
    out: Annotated[Path, typer.Option("--out", help="The GGUF adapter file to write.")],
    model: ModelOpt = "local/qwen2.5-0.5b",
) -> None:
    """Write a peft LoRA adapter as a GGUF adapter for llama.cpp (checked against the base)."""
    from .export import ExportError, export_lora_gguf
    from .hf import BaseModelError, gguf_source, resolve_base

    try:
        folder = resolve_base(model, progress=console.print)
        info = export_lora_gguf(
            adapter,
            out,
            base_config=json.loads((folder / "config.json").read_text()),
            base_gguf=gguf_source(model),
        )
    except (ExportError, BaseModelError) as e:
        _fail(str(e))
        return
    print(info.model_dump_json(indent=2))


@train_app.command("grpo")
def grpo(
    data: DataArg,
    out: RunOutOpt,
    model: ModelOpt = "local/qwen2.5-0.5b",
    adapter: AdapterOpt = None,
    personas: PersonasOpt = DEFAULT_PERSONAS,
    mcq_weight: Annotated[
        float, typer.Option("--mcq-weight", help="Share of MCQ rows; the rest are open-ended.")
    ] = 0.8,
    judges: Annotated[
        str,
        typer.Option(
            "--judges",
            help="Comma-separated judge model specs for open-ended rows (e.g. openai/gpt-4o-mini). "
            "Without judges every row is MCQ.",
        ),
    ] = "",
    steps: RLStepsOpt = 20,
    generations: Annotated[
        int, typer.Option("--generations", help="Completions per question (G).")
    ] = 4,
    max_completion: Annotated[int, typer.Option("--max-completion-tokens")] = 96,
    lr: RLLrOpt = 1e-5,
    use_vllm: Annotated[
        bool, typer.Option("--vllm/--no-vllm", help="GPU: generate with vLLM through TRL.")
    ] = False,
    vllm_mode: Annotated[
        str,
        typer.Option(
            "--vllm-mode",
            help="colocate (vLLM on the training GPUs) or server (a `trl vllm-serve` process).",
        ),
    ] = "colocate",
    vllm_server_url: Annotated[
        str, typer.Option("--vllm-server-url", help="The vLLM server for --vllm-mode server.")
    ] = "http://localhost:8000",
    name: Annotated[str, typer.Option("--name", help="File stem of the GGUF adapter.")] = "grpo",
    threads: ThreadsOpt = 1,
) -> None:
    """Single-turn GRPO on TRL's GRPOTrainer: MCQ exact match on the last \\boxed{} letter,
    LLM-judge reward for open-ended rows (mixed by --mcq-weight)."""
    _threads(threads)
    from .data import TrainDataError
    from .grpo import GRPOTrainConfig, run_grpo
    from .hf import BaseModelError

    if not 0.0 <= mcq_weight <= 1.0:
        _fail("--mcq-weight must be between 0 and 1")
    if vllm_mode not in ("colocate", "server"):
        _fail("--vllm-mode must be colocate or server")
    cfg = GRPOTrainConfig(
        data=str(data),
        model=model,
        out=str(out),
        adapter=str(adapter) if adapter else None,
        personas=_personas(personas),
        mcq_weight=mcq_weight,
        judges=_personas(judges),
        max_steps=steps,
        num_generations=generations,
        max_completion_length=max_completion,
        lr=lr,
        use_vllm=use_vllm,
        vllm_mode=vllm_mode,
        vllm_server_url=vllm_server_url,
        threads=threads,
        adapter_name=name,
    )
    try:
        res = run_grpo(cfg)
    except (TrainDataError, BaseModelError, ValueError) as e:
        _fail(str(e))
        return
    print(res.model_dump_json(indent=2))


@train_app.command("memory-grpo")
def memory_grpo(
    data: DataArg,
    out: RunOutOpt,
    model: ModelOpt = "local/qwen2.5-0.5b",
    adapter: AdapterOpt = None,
    personas: PersonasOpt = DEFAULT_PERSONAS,
    steps: RLStepsOpt = 20,
    group: Annotated[int, typer.Option("--group", help="Rollouts per question (G).")] = 4,
    chunks: Annotated[int, typer.Option("--chunks", help="Chunks per rollout (K).")] = 2,
    chunk_tokens: Annotated[int, typer.Option("--chunk-tokens")] = 512,
    memory_tokens: Annotated[
        int, typer.Option("--memory-tokens", help="New tokens per memory update.")
    ] = 96,
    lr: RLLrOpt = 1e-5,
    name: Annotated[str, typer.Option("--name")] = "memory-grpo",
    threads: ThreadsOpt = 1,
) -> None:
    """RL for the memory agent: K memory updates then an answer per rollout; the answer's reward
    is shared by every update; advantages normalized over the G rollouts of a question."""
    _threads(threads)
    from .data import TrainDataError
    from .hf import BaseModelError
    from .memory_grpo import MemoryGRPOConfig, run_memory_grpo

    cfg = MemoryGRPOConfig(
        data=str(data),
        model=model,
        out=str(out),
        adapter=str(adapter) if adapter else None,
        personas=_personas(personas),
        max_steps=steps,
        group_size=group,
        chunks=chunks,
        chunk_tokens=chunk_tokens,
        memory_tokens=memory_tokens,
        lr=lr,
        threads=threads,
        adapter_name=name,
    )

    def on_step(e) -> None:  # noqa: ANN001
        console.print(
            f"step {e.step}/{steps} rewards {e.rewards} loss {e.loss:.4f} {e.seconds:.1f}s "
            f"rss {e.rss_mb:.0f} MiB"
        )

    try:
        res = run_memory_grpo(cfg, log=console.print, on_step=on_step)
    except (TrainDataError, BaseModelError, ValueError) as e:
        _fail(str(e))
        return
    print(res.model_dump_json(indent=2))
