"""``personamem train sft``: supervised LoRA fine-tuning (the paper's cold start).

A plain torch loop over peft (rather than TRL's SFTTrainer) so every step is logged with its
seconds and the process's peak memory, one example per step fits a 2-core CPU, and the loss is
exactly "reply tokens only, the model's own chat template" (see :func:`hf.encode_example`).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .data import TRAIN_PERSONAS, Example, build_examples, split_holdout
from .hf import LoraSettings, encode_example, load_for_training, peak_rss_mb, resolve_base


@dataclass
class SFTTrainConfig:
    """Settings of ``personamem train sft``.

    The paper's cold start is 300 steps of batch 64 on Qwen3-4B (8 H100s). The CPU defaults are
    one example per step, so ``max_steps`` counts examples; lr 2e-4 is the usual LoRA rate.
    """

    data: str
    """A release folder (``benchmark/text/train.csv``, optionally ``val.csv``)."""
    model: str = "local/qwen2.5-0.5b"
    """Base: ``local/<name>``, ``gguf:PATH`` (converted once to a HF folder) or a HF folder."""
    out: str = "runs/train/sft"
    kinds: tuple[str, ...] = ("writer",)
    """Example kinds: ``writer`` (profile lines) and/or ``answer`` (memory + MCQ -> \\boxed{})."""
    personas: tuple[str, ...] = TRAIN_PERSONAS
    max_steps: int = 200
    batch_size: int = 1
    """Examples per optimizer step (gradients accumulated one example at a time)."""
    lr: float = 2e-4
    warmup_steps: int = 10
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_tokens: int = 1024
    """Longer examples are skipped (and counted), not truncated: a cut reply teaches nothing."""
    holdout: int = 8
    """Examples held out of training, for the loss check."""
    prefix_grad: bool = False
    """Backpropagate through the prompt prefix every example shares (the writer's system prompt
    and few-shot turns, ~80% of its tokens). False: the prefix is encoded each step with the
    current adapter but without gradient (exact forward; the gradient ignores the adapter's
    effect on the prefix's keys and values), about 3x less compute per step on a CPU."""
    eval_every: int = 50
    save_every: int = 50
    seed: int = 0
    threads: int = 1
    """torch CPU threads (1 leaves the other core to llama.cpp runs)."""
    lora: LoraSettings = field(default_factory=LoraSettings)
    adapter_name: str = "writer"
    """File stem of the exported GGUF adapter."""


class StepLog(BaseModel):
    step: int
    loss: float
    lr: float
    tokens: int
    seconds: float
    rss_mb: float


class SFTResult(BaseModel):
    out: str
    steps: int
    train_examples: int
    holdout_examples: int
    skipped_long: int
    eval_loss: dict[int, float]
    seconds_per_step: float
    peak_rss_mb: float
    adapter_dir: str
    gguf_adapter: str | None = None
    gguf_sha256: str | None = None


def shared_prefix(seqs: list[list[int]]) -> list[int]:
    """The longest token prefix common to every sequence, keeping at least one token of each."""
    if not seqs:
        return []
    first = seqs[0]
    n = min(len(x) for x in seqs) - 1
    for x in seqs[1:]:
        k = 0
        while k < n and x[k] == first[k]:
            k += 1
        n = k
    return first[: max(n, 0)]


def reply_loss(model: Any, ids: list[int], labels: list[int], prefix_len: int = 0) -> Any:
    """Mean cross-entropy over the labelled (reply) tokens.

    Logits are computed only from the first labelled position on (the vocabulary projection is
    a quarter of a small model's compute). With ``prefix_len``, the first ``prefix_len`` tokens
    are encoded without gradient into a KV cache that the rest attends to.
    """
    import torch

    first = next(i for i, x in enumerate(labels) if x != -100)
    if not 0 < prefix_len < first:
        prefix_len = 0
    past = None
    if prefix_len:
        with torch.no_grad():
            pre = model(input_ids=torch.tensor([ids[:prefix_len]]), use_cache=True)
            past = pre.cache
    rest = ids[prefix_len:]
    keep = len(ids) - first + 1  # logits at positions first-1 .. end predict labels first .. end
    out = model(
        input_ids=torch.tensor([rest]),
        cache=past,
        use_cache=past is not None,
        logits_to_keep=keep,
    )
    logits = out.logits[0, :-1]
    target = torch.tensor(labels[first:])
    return torch.nn.functional.cross_entropy(logits.float(), target)


def _eval_loss(model: Any, batches: list[tuple[list[int], list[int]]]) -> float:
    import torch

    if not batches:
        return float("nan")
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for ids, labels in batches:
            k = sum(1 for x in labels if x != -100)
            total += float(reply_loss(model, ids, labels)) * k
            n += k
    model.train()
    return total / max(n, 1)


def run_sft(
    cfg: SFTTrainConfig,
    *,
    examples: list[Example] | None = None,
    log: Callable[[str], None] = print,
    on_step: Callable[[StepLog], None] | None = None,
) -> SFTResult:
    """Train a LoRA adapter on the examples; write logs, checkpoints and the GGUF adapter."""
    os.environ.setdefault("OMP_NUM_THREADS", str(cfg.threads))
    import torch
    from transformers import get_scheduler

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if examples is None:
        examples = build_examples(cfg.data, personas=cfg.personas, kinds=cfg.kinds)  # type: ignore[arg-type]
    train, held = split_holdout(examples, cfg.holdout, cfg.seed)
    folder = resolve_base(cfg.model, progress=log)
    model, tok = load_for_training(folder, cfg.lora)
    model.train()

    def encode(exs: list[Example]) -> tuple[list[tuple[list[int], list[int]]], int]:
        done, skipped = [], 0
        for e in exs:
            try:
                done.append(encode_example(tok, e.messages, e.target, cfg.max_tokens))
            except ValueError:
                skipped += 1
        return done, skipped

    train_b, skipped = encode(train)
    held_b, _ = encode(held)
    if not train_b:
        raise ValueError(f"no training example fits in --max-tokens {cfg.max_tokens}")
    lengths = [len(i) for i, _ in train_b]
    log(
        f"{len(train_b)} train examples ({skipped} longer than {cfg.max_tokens} tokens skipped), "
        f"{len(held_b)} held out; tokens per example: mean {sum(lengths) / len(lengths):.0f}, "
        f"max {max(lengths)}"
    )
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    (out / "examples.jsonl").write_text(
        "".join(
            json.dumps({"split": s, "id": e.id, "persona": e.persona_id, "target": e.target}) + "\n"
            for s, part in (("train", train), ("holdout", held))
            for e in part
        )
    )
    prefix = shared_prefix([ids for ids, _ in train_b])
    log(
        f"shared prompt prefix: {len(prefix)} tokens"
        + ("" if cfg.prefix_grad else " (no gradient)")
    )
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = get_scheduler(
        "cosine", opt, num_warmup_steps=cfg.warmup_steps, num_training_steps=cfg.max_steps
    )
    order: list[int] = []
    rng = random.Random(cfg.seed)
    eval_loss: dict[int, float] = {0: _eval_loss(model, held_b)}
    log(f"step 0: held-out loss {eval_loss[0]:.4f}")
    log_file = open(out / "log.jsonl", "a")
    log_file.write(json.dumps({"step": 0, "eval_loss": eval_loss[0]}) + "\n")
    t_start = time.perf_counter()
    for step in range(1, cfg.max_steps + 1):
        t0 = time.perf_counter()
        loss_sum, n_tok = 0.0, 0
        for _ in range(cfg.batch_size):
            if not order:
                order = list(range(len(train_b)))
                rng.shuffle(order)
            ids, labels = train_b[order.pop()]
            loss = reply_loss(model, ids, labels, 0 if cfg.prefix_grad else len(prefix))
            (loss / cfg.batch_size).backward()
            loss_sum += float(loss.detach())
            n_tok += len(ids)
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        entry = StepLog(
            step=step,
            loss=loss_sum / cfg.batch_size,
            lr=sched.get_last_lr()[0],
            tokens=n_tok,
            seconds=time.perf_counter() - t0,
            rss_mb=peak_rss_mb(),
        )
        log_file.write(entry.model_dump_json() + "\n")
        log_file.flush()
        if on_step:
            on_step(entry)
        if step % cfg.eval_every == 0 or step == cfg.max_steps:
            eval_loss[step] = _eval_loss(model, held_b)
            log(f"step {step}: held-out loss {eval_loss[step]:.4f}")
            log_file.write(json.dumps({"step": step, "eval_loss": eval_loss[step]}) + "\n")
        if step % cfg.save_every == 0 and step != cfg.max_steps:
            model.save_pretrained(str(out / f"checkpoint-{step}"))
    log_file.close()
    elapsed = time.perf_counter() - t_start
    adapter_dir = out / "adapter"
    model.save_pretrained(str(adapter_dir))
    tok.save_pretrained(str(adapter_dir))
    result = SFTResult(
        out=str(out),
        steps=cfg.max_steps,
        train_examples=len(train_b),
        holdout_examples=len(held_b),
        skipped_long=skipped,
        eval_loss=eval_loss,
        seconds_per_step=elapsed / max(cfg.max_steps, 1),
        peak_rss_mb=peak_rss_mb(),
        adapter_dir=str(adapter_dir),
    )
    result = export_if_gguf(
        cfg.model, folder, adapter_dir, out / f"{cfg.adapter_name}.gguf", result
    )
    (out / "result.json").write_text(result.model_dump_json(indent=2))
    if not math.isfinite(eval_loss[cfg.max_steps] if held_b else 0.0):
        log("warning: held-out loss is not finite")
    return result


def export_if_gguf(spec: str, folder: Path, adapter_dir: Path, target: Path, result: Any) -> Any:
    """Export the adapter as a GGUF adapter when the base came from a GGUF file."""
    from .export import export_lora_gguf
    from .hf import gguf_source

    src = gguf_source(spec)
    if src is None:
        return result
    base_config = json.loads((folder / "config.json").read_text())
    info = export_lora_gguf(adapter_dir, target, base_config=base_config, base_gguf=src)
    Path(str(target) + ".json").write_text(
        json.dumps({"base": spec, "sha256": info.sha256, "bytes": info.bytes}, indent=2)
    )
    return result.model_copy(update={"gguf_adapter": info.path, "gguf_sha256": info.sha256})
