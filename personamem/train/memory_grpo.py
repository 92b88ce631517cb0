"""``personamem train memory-grpo``: RL for the memory agent, rollouts that share one reward.

A rollout for one question is the paper's agent run at snippet scale: starting from "No
previous memory", the policy rewrites the memory once per conversation chunk
(``M_i = f(C_i, M_{i-1})``, the ``rewrite`` prompt of ``personamem.memory.prompts``), then answers
the question from the last memory alone. The answer's reward (MCQ exact match on the last
``\\boxed{}`` letter) is the reward of every generation of that rollout; advantages are
normalized over the G rollouts of the same question (GRPO), and each of the K + 1 generations
(K updates, one answer) is trained in its own context with its rollout's advantage.

Why not TRL: ``GRPOTrainer`` trains one (prompt, completion) pair per row and normalizes rewards
per prompt. A rollout here is K + 1 separate conversations whose prompts depend on earlier
completions, all sharing one advantage. The only way to push that through TRL is to concatenate
the contexts into one sequence, which would train the memory updates on tokens conditioned on a
context the policy never saw at generation time. This loop is small instead: sample, score,
normalize per group, and a policy-gradient step (one update per batch, so the PPO ratio is 1
and no clipping is needed; ``beta`` = 0: no reference model).
"""

from __future__ import annotations

import json
import math
import os
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..answer import LETTERS
from ..answer.prompts import MCQ, MEMORY_PREFIX, SYSTEM, format_options
from ..data import QAItem, load_release
from ..data.render import render_messages
from ..memory.prompts import REWRITE_SYSTEM, REWRITE_USER
from .data import TRAIN_PERSONAS, TrainDataError, check_personas
from .grpo import BOXED_INSTRUCTION
from .hf import LoraSettings, load_for_training, peak_rss_mb, resolve_base
from .rewards import mcq_score

NO_MEMORY = "No previous memory"


@dataclass
class MemoryGRPOConfig:
    """Settings of ``personamem train memory-grpo``.

    Paper: chunks of 5,000 tokens, up to 8 per history, memory capped at 2,048 tokens, 8 rollouts.
    CPU defaults (snippet scale): chunks of about 512 tokens, 2 per rollout, memory of at most
    96 new tokens per update, 4 rollouts per question, one question per step.
    """

    data: str
    model: str = "local/qwen2.5-0.5b"
    out: str = "runs/train/memory-grpo"
    adapter: str | None = None
    personas: tuple[str, ...] = TRAIN_PERSONAS
    max_steps: int = 20
    group_size: int = 4
    """G: rollouts per question."""
    chunks: int = 2
    """K: conversation chunks per rollout (the question's own snippet plus K - 1 distractors)."""
    chunk_tokens: int = 512
    memory_tokens: int = 96
    answer_tokens: int = 48
    temperature: float = 1.0
    lr: float = 1e-5
    max_grad_norm: float = 1.0
    seed: int = 0
    threads: int = 1
    save_every: int = 10
    lora: LoraSettings = field(default_factory=LoraSettings)
    adapter_name: str = "memory-grpo"


class Task(BaseModel):
    """One question with its chunks (rendered conversation sections) and the correct letter."""

    id: str
    chunks: list[str]
    question: str
    options: list[str]
    answer: str


class Segment(BaseModel):
    """One generation of a rollout: its prompt and completion token ids."""

    kind: str  # "update" or "answer"
    prompt_ids: list[int]
    completion_ids: list[int]
    text: str


class Rollout(BaseModel):
    segments: list[Segment]
    memories: list[str]
    answer: str
    reward: float


class StepLog(BaseModel):
    step: int
    task: str
    rewards: list[float]
    mean_reward: float
    loss: float
    seconds: float
    rss_mb: float


# --- data ---------------------------------------------------------------------------------------
def build_tasks(
    items: Sequence[QAItem],
    *,
    chunks: int = 2,
    seed: int = 0,
    truncate: Callable[[str], str] = lambda s: s,
) -> list[Task]:
    """Tasks for items with a snippet: the item's own snippet and ``chunks - 1`` snippets of other
    items of the same persona, in a seeded random order (the answer may be in any chunk)."""
    from ..bench.scoring import shuffle_options

    rng = random.Random(seed)
    by_persona: dict[str, list[QAItem]] = {}
    for q in items:
        if q.related_snippet and q.pref_type != "ask_to_forget":
            by_persona.setdefault(q.persona_id, []).append(q)
    tasks = []
    for q in items:
        pool = [o for o in by_persona.get(q.persona_id, []) if o.id != q.id]
        if q not in by_persona.get(q.persona_id, []) or len(pool) < chunks - 1:
            continue
        parts = [q, *rng.sample(pool, chunks - 1)]
        rng.shuffle(parts)
        shown = shuffle_options(q, seed)
        tasks.append(
            Task(
                id=q.id,
                chunks=[truncate(render_messages(p.related_snippet)) for p in parts],
                question=q.query,
                options=shown.options,
                answer=LETTERS[shown.correct],
            )
        )
    return tasks


def update_messages(memory: str, chunk: str, limit: int) -> list[dict[str, str]]:
    """The memory-update conversation ``f(C_i, M_{i-1})`` (the agent's rewrite prompt)."""
    return [
        {"role": "system", "content": REWRITE_SYSTEM},
        {"role": "user", "content": REWRITE_USER.format(memory=memory, chat=chunk, limit=limit)},
    ]


def answer_messages(memory: str, task: Task) -> list[dict[str, str]]:
    """The answer conversation ``f(M_K, q)``: the memory alone, the question and its options."""
    body = MCQ.format(
        prefix=MEMORY_PREFIX.format(memory=memory),
        query=task.question,
        options=format_options(task.options),
    ).replace("Reply with the letter only.", BOXED_INSTRUCTION)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": body}]


# --- rollouts and advantages -------------------------------------------------------------------
Generate = Callable[[list[dict[str, str]], int], tuple[list[int], list[int], str]]
"""(messages, max new tokens) -> (prompt ids, completion ids, completion text)."""


def rollout(task: Task, generate: Generate, cfg: MemoryGRPOConfig) -> Rollout:
    """Run the agent once: K memory updates, each seeing only its chunk and the last memory, then
    the answer from the final memory; the reward is the answer's MCQ exact match."""
    memory = NO_MEMORY
    segments, memories = [], []
    for chunk in task.chunks:
        p, c, text = generate(update_messages(memory, chunk, cfg.memory_tokens), cfg.memory_tokens)
        segments.append(Segment(kind="update", prompt_ids=p, completion_ids=c, text=text))
        memory = text.strip() or NO_MEMORY
        memories.append(memory)
    p, c, text = generate(answer_messages(memory, task), cfg.answer_tokens)
    segments.append(Segment(kind="answer", prompt_ids=p, completion_ids=c, text=text))
    return Rollout(
        segments=segments, memories=memories, answer=text, reward=mcq_score(text, task.answer)
    )


def group_advantages(rewards: Sequence[float], eps: float = 1e-4) -> list[float]:
    """GRPO advantages: rewards normalized over the G rollouts of one question (all 0 if equal)."""
    mean = statistics.fmean(rewards)
    std = statistics.pstdev(rewards) if len(rewards) > 1 else 0.0
    return [(r - mean) / (std + eps) for r in rewards]


def shared_segments(rollouts: Sequence[Rollout]) -> list[tuple[Segment, float]]:
    """Every generation of every rollout with its rollout's advantage (one reward, shared)."""
    adv = group_advantages([r.reward for r in rollouts])
    return [(s, a) for r, a in zip(rollouts, adv, strict=True) for s in r.segments]


def policy_loss(model: Any, segment: Segment, advantage: float) -> Any:
    """``-A * mean log p(completion | prompt)`` for one generation, in its own context."""
    import torch

    if not segment.completion_ids:
        return None
    ids = segment.prompt_ids + segment.completion_ids
    n = len(segment.completion_ids)
    logits = model(input_ids=torch.tensor([ids]), logits_to_keep=n + 1).logits[0, :-1]
    logp = torch.log_softmax(logits.float(), dim=-1)
    target = torch.tensor(segment.completion_ids)
    token_logp = logp.gather(1, target[:, None]).squeeze(1)
    return -advantage * token_logp.mean()


# --- the loop -----------------------------------------------------------------------------------
class MemoryGRPOResult(BaseModel):
    out: str
    steps: int
    tasks: int
    rewards: list[float]
    seconds_per_step: float
    peak_rss_mb: float
    adapter_dir: str
    gguf_adapter: str | None = None
    gguf_sha256: str | None = None


def hf_generator(model: Any, tok: Any, temperature: float) -> Generate:
    """Sample a completion with transformers (chat template, end at the end-of-turn token)."""
    import torch

    def generate(messages: list[dict[str, str]], max_new: int) -> tuple[list[int], list[int], str]:
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        prompt = tok(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = model.generate(
                input_ids=torch.tensor([prompt]),
                attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                max_new_tokens=max_new,
                do_sample=True,
                temperature=temperature,
                top_p=1.0,
                top_k=0,
                eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id or tok.eos_token_id,
            )
        completion = out[0, len(prompt) :].tolist()
        return prompt, completion, tok.decode(completion, skip_special_tokens=True)

    return generate


def run_memory_grpo(
    cfg: MemoryGRPOConfig,
    *,
    tasks: list[Task] | None = None,
    log: Callable[[str], None] = print,
    on_step: Callable[[StepLog], None] | None = None,
) -> MemoryGRPOResult:
    os.environ.setdefault("OMP_NUM_THREADS", str(cfg.threads))
    import torch

    from .sft import export_if_gguf

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    folder = resolve_base(cfg.model, progress=log)
    model, tok = load_for_training(folder, cfg.lora, adapter=cfg.adapter)

    def truncate(text: str) -> str:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        return text if len(ids) <= cfg.chunk_tokens else tok.decode(ids[: cfg.chunk_tokens])

    if tasks is None:
        wanted = set(check_personas(cfg.personas))
        rel = load_release(cfg.data, splits=("train", "val"))
        items = [q for q in rel.items if q.persona_id in wanted]
        tasks = build_tasks(items, chunks=cfg.chunks, seed=cfg.seed, truncate=truncate)
    if not tasks:
        raise TrainDataError("no memory-grpo tasks: the personas need questions with snippets")
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    generate = hf_generator(model, tok, cfg.temperature)
    order = list(range(len(tasks)))
    random.Random(cfg.seed).shuffle(order)
    mean_rewards: list[float] = []
    t_start = time.perf_counter()
    with open(out / "log.jsonl", "a") as log_file:
        for step in range(1, cfg.max_steps + 1):
            t0 = time.perf_counter()
            task = tasks[order[(step - 1) % len(order)]]
            model.eval()  # sampling without dropout
            group = [rollout(task, generate, cfg) for _ in range(cfg.group_size)]
            model.train()
            pairs = [(s, a) for s, a in shared_segments(group) if a != 0.0]
            total = 0.0
            for seg, adv in pairs:  # one backward per generation keeps memory flat
                loss = policy_loss(model, seg, adv)
                if loss is not None:
                    (loss / len(pairs)).backward()
                    total += float(loss.detach()) / len(pairs)
            if pairs:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                opt.step()
                opt.zero_grad(set_to_none=True)
            rewards = [r.reward for r in group]
            entry = StepLog(
                step=step,
                task=task.id,
                rewards=rewards,
                mean_reward=statistics.fmean(rewards),
                loss=total,
                seconds=time.perf_counter() - t0,
                rss_mb=peak_rss_mb(),
            )
            mean_rewards.append(entry.mean_reward)
            log_file.write(entry.model_dump_json() + "\n")
            log_file.write(
                json.dumps({"step": step, "example": group[0].model_dump(exclude={"segments"})})
                + "\n"
            )
            log_file.flush()
            if on_step:
                on_step(entry)
            if step % cfg.save_every == 0 and step != cfg.max_steps:
                model.save_pretrained(str(out / f"checkpoint-{step}"))
    adapter_dir = out / "adapter"
    model.save_pretrained(str(adapter_dir))
    result = MemoryGRPOResult(
        out=str(out),
        steps=cfg.max_steps,
        tasks=len(tasks),
        rewards=mean_rewards,
        seconds_per_step=(time.perf_counter() - t_start) / max(cfg.max_steps, 1),
        peak_rss_mb=peak_rss_mb(),
        adapter_dir=str(adapter_dir),
    )
    result = export_if_gguf(
        cfg.model, folder, adapter_dir, out / f"{cfg.adapter_name}.gguf", result
    )
    (out / "result.json").write_text(result.model_dump_json(indent=2))
    if not all(math.isfinite(r) for r in mean_rewards):  # pragma: no cover - defensive
        log("warning: non-finite rewards")
    return result
