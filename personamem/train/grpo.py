"""``personamem train grpo``: single-turn GRPO on TRL's ``GRPOTrainer``.

Each row is one question of a training persona with the conversation that reveals the
preference as context (the paper's long-context RL, at snippet scale): 80% of rows (``mcq_weight``)
ask for the best option, rewarded by exact match of the last ``\\boxed{}`` letter; the others ask
for a free answer, scored 0-1 by LLM judges. Each reward function returns None for the other
task type, so TRL sums only the one that applies (the paper found the mix matters: MCQ-only
training collapsed open-ended skill and the reverse hurt MCQ).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..answer import LETTERS
from ..answer.prompts import MCQ, OPEN, RETRIEVAL_PREFIX, SYSTEM, format_options
from ..data import load_release
from .data import TRAIN_PERSONAS, TrainDataError, check_personas, user_text
from .hf import LoraSettings, peak_rss_mb, resolve_base

BOXED_INSTRUCTION = "Think briefly, then give the letter of your choice in \\boxed{}."


@dataclass
class GRPOTrainConfig:
    """Settings of ``personamem train grpo``.

    Paper: GRPO for one epoch (~500 steps, batch 32, 8 rollouts, thinking on), 80% MCQ / 20%
    open-ended. CPU defaults: 4 completions of at most 96 tokens per question, one question per
    step, lr 1e-5 as in the paper's recipe family, no KL term (beta 0, as in recent GRPO work).
    """

    data: str
    model: str = "local/qwen2.5-0.5b"
    out: str = "runs/train/grpo"
    adapter: str | None = None
    """A peft adapter to start from (e.g. the SFT run's OUT/adapter); a fresh LoRA otherwise."""
    personas: tuple[str, ...] = TRAIN_PERSONAS
    mcq_weight: float = 0.8
    judges: tuple[str, ...] = ()
    """Judge model specs for the open-ended reward; without judges every row is MCQ."""
    max_steps: int = 20
    num_generations: int = 4
    max_completion_length: int = 96
    lr: float = 1e-5
    beta: float = 0.0
    temperature: float = 1.0
    seed: int = 0
    threads: int = 1
    save_steps: int = 10
    lora: LoraSettings = field(default_factory=LoraSettings)
    use_vllm: bool = False
    """GPU only: generate with vLLM (``vllm_mode`` colocate or server, see docs/training.md)."""
    vllm_mode: str = "colocate"
    """``colocate``: vLLM shares each training GPU; ``server``: a separate ``trl vllm-serve``."""
    vllm_server_url: str = "http://localhost:8000"
    adapter_name: str = "grpo"


class GRPOResult(BaseModel):
    out: str
    steps: int
    rows: int
    mcq_rows: int
    log: list[dict[str, Any]]
    peak_rss_mb: float
    adapter_dir: str
    gguf_adapter: str | None = None
    gguf_sha256: str | None = None


def build_grpo_rows(
    root: str | Path,
    *,
    personas: tuple[str, ...] = TRAIN_PERSONAS,
    mcq_weight: float = 0.8,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Dataset rows for TRL: ``prompt`` (chat), ``task``, ``answer``, ``query``, ``preference``,
    ``reference``. Rows without a preference or a snippet, and forget requests, are skipped."""
    from ..bench.scoring import shuffle_options

    wanted = set(check_personas(personas))
    rel = load_release(root, splits=("train", "val"))
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for q in rel.items:
        pref = q.preference.strip()
        text = user_text(q.related_snippet)
        if q.persona_id not in wanted or q.pref_type == "ask_to_forget" or not text:
            continue
        if not pref or pref == "sensitive_info":
            continue
        prefix = RETRIEVAL_PREFIX.format(snippets=text)
        if rng.random() < mcq_weight:
            shown = shuffle_options(q, seed)
            body = MCQ.format(prefix=prefix, query=q.query, options=format_options(shown.options))
            body = body.replace("Reply with the letter only.", BOXED_INSTRUCTION)
            task, answer = "mcq", LETTERS[shown.correct]
        else:
            body, task, answer = OPEN.format(prefix=prefix, query=q.query), "open", ""
        rows.append(
            {
                "prompt": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": body},
                ],
                "task": task,
                "answer": answer,
                "query": q.query,
                "preference": pref,
                "reference": q.correct_answer,
            }
        )
    if not rows:
        raise TrainDataError(f"{root}: no usable rows for persona(s) {', '.join(sorted(wanted))}")
    return rows


def grpo_args(cfg: GRPOTrainConfig, output_dir: Path, *, cuda: bool) -> Any:
    """TRL's ``GRPOConfig`` for our settings (one question of G completions per device step)."""
    from trl import GRPOConfig

    extra: dict[str, Any] = {}
    if cfg.use_vllm:
        extra = {"use_vllm": True, "vllm_mode": cfg.vllm_mode}
        if cfg.vllm_mode == "server":
            extra["vllm_server_base_url"] = cfg.vllm_server_url
    return GRPOConfig(
        output_dir=str(output_dir),
        max_steps=cfg.max_steps,
        learning_rate=cfg.lr,
        per_device_train_batch_size=cfg.num_generations,
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        beta=cfg.beta,
        seed=cfg.seed,
        logging_steps=1,
        save_steps=cfg.save_steps,
        report_to="none",
        use_cpu=not cuda,
        bf16=cuda,
        dataloader_num_workers=0,
        **extra,
    )


def run_grpo(cfg: GRPOTrainConfig, *, rows: list[dict[str, Any]] | None = None) -> GRPOResult:
    """Train with TRL's GRPOTrainer; write OUT/log.jsonl, OUT/adapter and the GGUF adapter."""
    os.environ.setdefault("OMP_NUM_THREADS", str(cfg.threads))
    import torch
    from datasets import Dataset
    from peft import LoraConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOTrainer

    from ..models import get_model
    from .rewards import JudgeReward, mcq_reward
    from .sft import export_if_gguf

    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    mcq_weight = cfg.mcq_weight if cfg.judges else 1.0
    if rows is None:
        rows = build_grpo_rows(
            cfg.data, personas=cfg.personas, mcq_weight=mcq_weight, seed=cfg.seed
        )
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    folder = resolve_base(cfg.model)
    tok = AutoTokenizer.from_pretrained(str(folder))
    base = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    peft_config = None
    if cfg.adapter:
        model: Any = PeftModel.from_pretrained(base, cfg.adapter, is_trainable=True)
    else:
        model = base
        peft_config = LoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=list(cfg.lora.target_modules),
            task_type="CAUSAL_LM",
        )
    reward_funcs: list[Any] = [mcq_reward]
    if cfg.judges:
        reward_funcs.append(JudgeReward([get_model(s) for s in cfg.judges]))
    args = grpo_args(cfg, out / "trainer", cuda=torch.cuda.is_available())
    log_path = out / "log.jsonl"

    class JsonlLog(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs:
                entry = {"step": state.global_step, **logs, "rss_mb": peak_rss_mb()}
                with open(log_path, "a") as f:
                    f.write(json.dumps(entry) + "\n")

    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=peft_config,
        callbacks=[JsonlLog()],
    )
    trainer.train()
    adapter_dir = out / "adapter"
    trainer.model.save_pretrained(str(adapter_dir))
    result = GRPOResult(
        out=str(out),
        steps=trainer.state.global_step,
        rows=len(rows),
        mcq_rows=sum(r["task"] == "mcq" for r in rows),
        log=[e for e in trainer.state.log_history if "reward" in e or "loss" in e],
        peak_rss_mb=peak_rss_mb(),
        adapter_dir=str(adapter_dir),
    )
    result = export_if_gguf(
        cfg.model, folder, adapter_dir, out / f"{cfg.adapter_name}.gguf", result
    )
    (out / "result.json").write_text(result.model_dump_json(indent=2))
    return result
