"""Smoke runs of ``personamem train sft|grpo|memory-grpo`` on a tiny random Qwen2 model given as
a GGUF (converted to a HF folder, trained, exported and loaded back by llama.cpp)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("llama_cpp")

from typer.testing import CliRunner  # noqa: E402

from personamem.cli import app  # noqa: E402
from personamem.train.export import sha256_file  # noqa: E402
from tests.conftest import make_row, write_release  # noqa: E402
from tests.train_fixtures import make_tiny_model, write_tiny_gguf  # noqa: E402

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    return write_tiny_gguf(make_tiny_model(root / "hf"), root / "tiny.gguf")


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = []
    for p in ("0", "5"):
        for n in range(4):
            snippet = [
                {"role": "user", "content": f"I love hiking {n}."},
                {"role": "assistant", "content": "Nice."},
            ]
            rows.append(
                make_row(
                    p,
                    n,
                    preference=f"Likes hiking {n}",
                    related_conversation_snippet=json.dumps(snippet),
                )
            )
    return write_release(tmp_path_factory.mktemp("rel"), {"train": rows})


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PERSONAMEM_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _logits(spec: str, ids: list[int]) -> np.ndarray:
    from personamem.models import get_model

    model = get_model(spec, n_ctx=256)
    assert model.name == spec  # caches key on the whole spec, adapter included
    llm = model._model()
    llm.reset()
    llm.eval(ids)
    return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).copy()


def test_sft_command_trains_exports_and_llama_cpp_loads_the_adapter(
    tiny_gguf: Path, release: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sft"
    res = runner.invoke(
        app,
        [
            "train", "sft", "--data", str(release), "--model", f"gguf:{tiny_gguf}",
            "--out", str(out), "--steps", "4", "--holdout", "1", "--eval-every", "2",
            "--lr", "0.01", "--rank", "4", "--name", "w", "--max-tokens", "4096",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    steps = [e for e in _jsonl(out / "log.jsonl") if "loss" in e]
    assert [e["step"] for e in steps] == [1, 2, 3, 4]
    assert all(math.isfinite(e["loss"]) and e["seconds"] > 0 and e["rss_mb"] > 0 for e in steps)
    result = json.loads((out / "result.json").read_text())
    assert set(result["eval_loss"]) == {"0", "2", "4"}
    adapter = Path(result["gguf_adapter"])
    meta = json.loads(Path(str(adapter) + ".json").read_text())
    assert meta["sha256"] == sha256_file(adapter) == result["gguf_sha256"]
    ids = [5, 17, 40, 99, 3]
    base = _logits(f"gguf:{tiny_gguf}", ids)
    adapted = _logits(f"gguf:{tiny_gguf}+lora:{adapter}", ids)
    assert np.abs(adapted - base).max() > 1e-3  # the trained adapter is applied


def test_sft_refuses_held_out_personas(tiny_gguf: Path, release: Path, tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        ["train", "sft", "--data", str(release), "--model", f"gguf:{tiny_gguf}",
         "--out", str(tmp_path / "x"), "--personas", "0,2"],
    )  # fmt: skip
    assert res.exit_code == 1 and "held out" in res.output


def test_grpo_command_smoke(tiny_gguf: Path, release: Path, tmp_path: Path) -> None:
    out = tmp_path / "grpo"
    res = runner.invoke(
        app,
        [
            "train", "grpo", "--data", str(release), "--model", f"gguf:{tiny_gguf}",
            "--out", str(out), "--steps", "2", "--generations", "2",
            "--max-completion-tokens", "8", "--name", "g",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    logged = _jsonl(out / "log.jsonl")
    rewards = [e["reward"] for e in logged if "reward" in e]
    assert len(rewards) == 2 and all(0.0 <= r <= 1.0 for r in rewards)
    assert (out / "g.gguf").is_file() and (out / "adapter" / "adapter_config.json").is_file()


def test_memory_grpo_command_smoke(tiny_gguf: Path, release: Path, tmp_path: Path) -> None:
    out = tmp_path / "mg"
    res = runner.invoke(
        app,
        [
            "train", "memory-grpo", "--data", str(release), "--model", f"gguf:{tiny_gguf}",
            "--out", str(out), "--steps", "2", "--group", "2", "--chunks", "2",
            "--chunk-tokens", "64", "--memory-tokens", "6", "--name", "m",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    steps = [e for e in _jsonl(out / "log.jsonl") if "rewards" in e]
    assert [e["step"] for e in steps] == [1, 2]
    assert all(len(e["rewards"]) == 2 for e in steps)
    examples = [e["example"] for e in _jsonl(out / "log.jsonl") if "example" in e]
    assert all(len(x["memories"]) == 2 for x in examples)
    assert (out / "m.gguf").is_file()
