"""Training: LoRA SFT, GRPO (TRL) and memory-agent RL, exported as llama.cpp GGUF adapters.

| module | what |
|---|---|
| ``data`` | writer and answer examples from a release folder (train personas only) |
| ``hf`` | base models: HF folders, embedded GGUFs converted once; LoRA; tokenization |
| ``sft`` | ``personamem train sft`` (:class:`SFTTrainConfig`) |
| ``grpo`` | ``personamem train grpo`` on TRL's GRPOTrainer (:class:`GRPOTrainConfig`) |
| ``memory_grpo`` | ``personamem train memory-grpo``: rollouts of memory updates sharing one reward |
| ``rewards`` | MCQ exact match and LLM-judge rewards |
| ``export`` | peft adapter -> GGUF adapter for ``Llama(lora_path=...)`` |

Heavy dependencies (torch, transformers, peft, trl) are imported only when a command runs.
"""

from __future__ import annotations

from .data import HELD_OUT_PERSONAS, TRAIN_PERSONAS, Example, TrainDataError, build_examples
from .rewards import JudgeReward, boxed_letter, mcq_reward, mcq_score

__all__ = [
    "HELD_OUT_PERSONAS",
    "TRAIN_PERSONAS",
    "Example",
    "JudgeReward",
    "TrainDataError",
    "boxed_letter",
    "build_examples",
    "mcq_reward",
    "mcq_score",
]
