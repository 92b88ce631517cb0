"""Export a peft LoRA adapter as a GGUF adapter that llama.cpp loads on the original GGUF.

The layout follows llama.cpp's ``convert_lora_to_gguf.py``: ``general.type = adapter``,
``adapter.type = lora``, ``adapter.lora.alpha``; per adapted weight ``W`` (llama.cpp name, e.g.
``blk.3.attn_q.weight``) two tensors ``W.lora_a`` (peft's ``lora_A``, torch shape ``(r, in)``) and
``W.lora_b`` (``lora_B``, ``(out, r)``), stored as they are (GGUF reverses the dimensions, which is
the orientation llama.cpp checks). llama.cpp scales the product by ``alpha / r``, as peft does.
Qwen2's attention weights are not permuted by the GGUF converter, so no reordering is needed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel


class ExportError(ValueError):
    """The adapter cannot be exported; the message says why."""


class AdapterInfo(BaseModel):
    """What was written: the file, its digest and what it adapts."""

    path: str
    sha256: str
    bytes: int
    arch: str
    rank: int
    alpha: float
    tensors: int
    base: str = ""


def _arch_name(model_type: str) -> str:
    import gguf

    names = set(gguf.MODEL_ARCH_NAMES.values())
    if model_type not in names:
        raise ExportError(f"model type {model_type!r} has no llama.cpp architecture")
    return model_type


def llama_cpp_name(peft_key: str, arch: str, n_blocks: int) -> tuple[str, str]:
    """(llama.cpp weight name, "a" or "b") for a peft state-dict key."""
    import gguf

    key = peft_key.removeprefix("base_model.model.")
    if ".lora_A." in key:
        which, base = "a", key.replace(".lora_A.weight", "")
    elif ".lora_B." in key:
        which, base = "b", key.replace(".lora_B.weight", "")
    else:
        raise ExportError(f"unexpected tensor {peft_key!r} in the adapter (not lora_A/lora_B)")
    arch_enum = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)
    name = gguf.get_tensor_name_map(arch_enum, n_blocks).get_name(base)
    if name is None:
        raise ExportError(f"no llama.cpp tensor for {base!r} ({arch})")
    return f"{name}.weight", which


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export_lora_gguf(
    adapter_dir: str | Path,
    out: str | Path,
    *,
    base_config: dict | None = None,
    base_gguf: str | Path | None = None,
    dtype: str = "f16",
) -> AdapterInfo:
    """Write ``adapter_dir`` (peft's ``save_pretrained`` output) as a llama.cpp GGUF adapter.

    ``base_config`` is the base model's ``config.json`` (read from the adapter's
    ``base_model_name_or_path`` when not given). With ``base_gguf``, every adapted weight is
    checked to exist in it with the matching shape, so a mismatch fails here and not in llama.cpp.
    """
    import gguf
    from safetensors.numpy import load_file

    adapter_dir = Path(adapter_dir)
    cfg_path = adapter_dir / "adapter_config.json"
    weights = adapter_dir / "adapter_model.safetensors"
    if not cfg_path.is_file() or not weights.is_file():
        raise ExportError(
            f"{adapter_dir}: expected adapter_config.json and adapter_model.safetensors"
        )
    acfg = json.loads(cfg_path.read_text())
    if acfg.get("use_rslora") or acfg.get("use_dora"):
        raise ExportError("rsLoRA/DoRA adapters are not supported by llama.cpp's LoRA loader")
    if base_config is None:
        base_path = Path(acfg.get("base_model_name_or_path") or "") / "config.json"
        if not base_path.is_file():
            raise ExportError(f"base model config not found at {base_path}; pass base_config")
        base_config = json.loads(base_path.read_text())
    arch = _arch_name(str(base_config.get("model_type", "")))
    n_blocks = int(base_config["num_hidden_layers"])
    tensors = load_file(str(weights))
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        name, which = llama_cpp_name(key, arch, n_blocks)
        pairs.setdefault(name, {})[which] = value
    ranks = set()
    for name, ab in pairs.items():
        if set(ab) != {"a", "b"}:
            raise ExportError(f"{name}: lora_A or lora_B missing")
        if ab["a"].shape[0] != ab["b"].shape[1]:
            raise ExportError(f"{name}: lora_A {ab['a'].shape} and lora_B {ab['b'].shape} disagree")
        ranks.add(int(ab["a"].shape[0]))
    if base_gguf is not None:
        reader = gguf.GGUFReader(str(base_gguf))
        shapes = {t.name: tuple(int(x) for x in t.shape) for t in reader.tensors}
        for name, ab in pairs.items():
            if name not in shapes:
                raise ExportError(f"{name} is not a tensor of {base_gguf}")
            want = (int(ab["a"].shape[1]), int(ab["b"].shape[0]))  # ggml ne = (in, out)
            if shapes[name][:2] != want:
                raise ExportError(f"{name}: base shape {shapes[name]} != adapter {want}")
    alpha = float(acfg.get("lora_alpha") or acfg.get("r") or 1)
    np_dtype = np.float16 if dtype == "f16" else np.float32
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    writer.add_name(adapter_dir.name)
    for name in sorted(pairs):
        for which in ("a", "b"):
            writer.add_tensor(
                f"{name}.lora_{which}", np.ascontiguousarray(pairs[name][which], dtype=np_dtype)
            )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(out)
    return AdapterInfo(
        path=str(out),
        sha256=sha256_file(out),
        bytes=out.stat().st_size,
        arch=arch,
        rank=max(ranks) if ranks else 0,
        alpha=alpha,
        tensors=2 * len(pairs),
        base=str(base_gguf or ""),
    )
