"""LoRA adapters exported as GGUF: llama.cpp on the base GGUF + adapter == transformers + peft."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("gguf")
pytest.importorskip("llama_cpp")

from personamem.train.export import ExportError, export_lora_gguf, llama_cpp_name  # noqa: E402
from personamem.train.hf import LoraSettings, load_for_training  # noqa: E402
from tests.train_fixtures import make_tiny_model, write_tiny_gguf  # noqa: E402

IDS = [5, 17, 40, 99, 3, 250, 12, 7]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tiny")
    folder = make_tiny_model(root / "hf")
    return folder, write_tiny_gguf(folder, root / "tiny.gguf")


def _peft_with_random_adapter(folder: Path, out: Path) -> np.ndarray:
    """Save a LoRA adapter with non-zero A and B; return the peft model's logits on IDS."""
    torch.manual_seed(1)
    model, _ = load_for_training(folder, LoraSettings(r=4, alpha=8, dropout=0.0))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.normal_(0.0, 0.3)
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([IDS])).logits[0].numpy()
    model.save_pretrained(str(out))
    return logits


def _llama_logits(base: Path, lora: Path | None) -> np.ndarray:
    from llama_cpp import Llama

    kw = {"lora_path": str(lora)} if lora else {}
    llm = Llama(model_path=str(base), n_ctx=64, logits_all=True, verbose=False, n_threads=1, **kw)
    llm.eval(IDS)
    return np.array(llm.scores[: len(IDS)])


def test_llama_cpp_with_exported_adapter_matches_peft(
    tiny: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, base = tiny
    want = _peft_with_random_adapter(folder, tmp_path / "adapter")
    cfg = json.loads((folder / "config.json").read_text())
    info = export_lora_gguf(
        tmp_path / "adapter", tmp_path / "a.gguf", base_config=cfg, base_gguf=base, dtype="f32"
    )
    assert info.rank == 4 and info.alpha == 8 and info.tensors == 2 * 7 * 2
    plain = _llama_logits(base, None)
    adapted = _llama_logits(base, Path(info.path))
    assert np.abs(adapted - plain).max() > 0.5  # the adapter changes the outputs ...
    assert np.abs(adapted - want).max() < 0.02  # ... exactly as peft computes them
    # f16 (the default) stays close too
    half = export_lora_gguf(tmp_path / "adapter", tmp_path / "h.gguf", base_config=cfg)
    assert half.bytes < info.bytes
    assert np.abs(_llama_logits(base, Path(half.path)) - want).max() < 0.05


def test_export_refuses_a_mismatched_base(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    import transformers

    folder, _ = tiny
    _peft_with_random_adapter(folder, tmp_path / "adapter")
    cfg = json.loads((folder / "config.json").read_text())
    # a base GGUF whose MLP is wider than the one the adapter was trained on
    transformers.Qwen2ForCausalLM(
        transformers.Qwen2Config(**{**cfg, "intermediate_size": 96})
    ).save_pretrained(str(tmp_path / "wide"))
    (tmp_path / "wide" / "tokenizer.json").write_bytes((folder / "tokenizer.json").read_bytes())
    wide = write_tiny_gguf(tmp_path / "wide", tmp_path / "wide.gguf")
    with pytest.raises(ExportError, match="shape"):
        export_lora_gguf(tmp_path / "adapter", tmp_path / "x.gguf", base_config=cfg, base_gguf=wide)
    assert not (tmp_path / "x.gguf").exists()
    with pytest.raises(ExportError, match="adapter_config"):
        export_lora_gguf(tmp_path, tmp_path / "y.gguf", base_config=cfg)


def test_llama_cpp_names() -> None:
    key = "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight"
    assert llama_cpp_name(key, "qwen2", 24) == ("blk.3.attn_q.weight", "a")
    key = "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"
    assert llama_cpp_name(key, "qwen2", 24) == ("blk.0.ffn_down.weight", "b")
    with pytest.raises(ExportError):
        llama_cpp_name("base_model.model.lm_head.weight", "qwen2", 24)


def test_lora_specs_need_a_gguf_base_and_an_existing_adapter(tiny: tuple[Path, Path]) -> None:
    from personamem.models import ModelError, get_model

    _, base = tiny
    with pytest.raises(ValueError, match="lora"):
        get_model("openai/some-model+lora:/x.gguf")
    with pytest.raises(ModelError, match="adapter not found"):
        get_model(f"gguf:{base}+lora:/nonexistent/adapter.gguf")
    plain, adapted = get_model(f"gguf:{base}"), get_model(f"gguf:{base}+lora:{base}")
    assert plain is not adapted and adapted.lora_path == str(base) and plain.path == str(base)
