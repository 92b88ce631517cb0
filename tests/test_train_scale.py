"""Scale-out recipes: the accelerate configs parse, and GRPO settings map onto TRL's GRPOConfig
(vLLM colocate / server modes) without a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("trl")

from accelerate.commands.config.config_args import ClusterConfig  # noqa: E402

from personamem.train.grpo import GRPOTrainConfig, grpo_args  # noqa: E402

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "accelerate"


@pytest.mark.parametrize(
    ("name", "kind", "procs", "machines"),
    [
        ("zero2", "DEEPSPEED", 8, 1),
        ("zero3", "DEEPSPEED", 8, 1),
        ("fsdp", "FSDP", 8, 1),
        ("multinode", "DEEPSPEED", 16, 2),
    ],
)
def test_accelerate_configs_parse(name: str, kind: str, procs: int, machines: int) -> None:
    cfg = ClusterConfig.from_yaml_file(str(CONFIGS / f"{name}.yaml"))
    assert cfg.distributed_type.name == kind
    assert (cfg.num_processes, cfg.num_machines) == (procs, machines)


def test_grpo_args_map_our_settings(tmp_path: Path) -> None:
    cfg = GRPOTrainConfig(data="", num_generations=8, max_completion_length=256, beta=0.04)
    args = grpo_args(cfg, tmp_path, cuda=False)
    assert (args.num_generations, args.per_device_train_batch_size) == (8, 8)
    assert args.max_completion_length == 256 and args.beta == 0.04
    assert args.use_vllm is False and args.use_cpu is True


@pytest.mark.parametrize("mode", ["colocate", "server"])
def test_grpo_args_vllm_modes(tmp_path: Path, mode: str) -> None:
    cfg = GRPOTrainConfig(
        data="", use_vllm=True, vllm_mode=mode, vllm_server_url="http://gen-node:8000"
    )
    args = grpo_args(cfg, tmp_path, cuda=False)
    assert args.use_vllm is True and args.vllm_mode == mode
    if mode == "server":
        assert args.vllm_server_base_url == "http://gen-node:8000"
