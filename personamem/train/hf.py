"""Trainable base models: Hugging Face folders, and the embedded GGUFs converted once to one.

transformers reads a Q4_K_M GGUF (``gguf_file=``, needs the ``gguf`` package) by dequantizing it
to float32, but keeps the loaded model marked as coming from a quantized file, which the
trainers refuse. :func:`resolve_base` therefore converts the GGUF once to a plain Hugging Face
folder (``$PERSONAMEM_CACHE/hf/<gguf name>-<sha12>/``) and every command trains LoRA adapters
(peft) on that folder. The dequantized weights are exactly the ones llama.cpp computes with,
so an adapter trained here and exported with :mod:`personamem.train.export` runs on top of the
original GGUF.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..models.weights import cache_dir


class BaseModelError(ValueError):
    """The base model cannot be found or converted; the message says what to pass instead."""


def _hf_cache() -> Path:
    return cache_dir().parent / "hf"


def _file_key(path: Path) -> str:
    st = path.stat()
    h = hashlib.sha256(f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


def gguf_source(spec: str) -> Path | None:
    """The GGUF file a ``local/<name>`` or ``gguf:PATH`` spec names (None for other specs)."""
    if spec.startswith("local/"):
        from ..models.weights import embedded_path

        return embedded_path(spec.removeprefix("local/").split("+", 1)[0])
    if spec.startswith("gguf:"):
        path = Path(spec.removeprefix("gguf:").split("+lora:", 1)[0])
        if not path.is_file():
            raise BaseModelError(f"GGUF file not found: {path}")
        return path
    return None


def resolve_base(spec: str, *, progress: Any = print) -> Path:
    """A Hugging Face model folder for a spec: converts (once, cached) a GGUF spec."""
    src = gguf_source(spec)
    if src is None:
        folder = Path(spec)
        if not (folder / "config.json").is_file():
            raise BaseModelError(
                f"{spec!r} is neither a model spec (local/qwen2.5-0.5b, gguf:PATH) nor a Hugging "
                "Face model folder with a config.json (nothing is downloaded from a hub)"
            )
        return folder
    out = _hf_cache() / f"{src.stem}-{_file_key(src)}"
    if (out / "config.json").is_file() and (out / ".complete").is_file():
        return out
    progress(f"converting {src.name} to a Hugging Face folder (once) -> {out}")
    convert_gguf(src, out)
    return out


def convert_gguf(src: Path, out: Path) -> None:
    """Dequantize a GGUF into a float32 Hugging Face folder (model, tokenizer, chat template)."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:  # pragma: no cover - depends on the install
        raise BaseModelError("training needs the train extra: pip install -e '.[train]'") from e
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(src.parent), gguf_file=src.name, dtype=torch.float32
    )
    # Drop what marks the weights as coming from a quantized file, so peft/trl train them.
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(model.config, attr):
            delattr(model.config, attr)
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    model.save_pretrained(str(tmp), safe_serialization=True)
    tok.save_pretrained(str(tmp))
    (tmp / "source.txt").write_text(f"converted from {src}\n")
    (tmp / ".complete").write_text("ok\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)


@dataclass
class LoraSettings:
    """LoRA hyper-parameters (peft). Defaults: r=16, alpha=32 on every linear layer."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )


def load_for_training(
    folder: str | Path, lora: LoraSettings | None, *, adapter: str | Path | None = None
) -> tuple[Any, Any]:
    """(peft model, tokenizer): float32 weights on the CPU, a fresh or resumed LoRA adapter."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter), is_trainable=True)
    elif lora is not None:
        cfg = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=list(lora.target_modules),
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, cfg)
    return model, tok


def encode_example(
    tok: Any, messages: list[dict[str, str]], target: str, max_tokens: int | None = None
) -> tuple[list[int], list[int]]:
    """(input ids, labels) for one chat: labels are -100 on the prompt, loss on the reply.

    The prompt is the tokenizer's chat template with the generation prompt (what llama.cpp
    renders from the same GGUF template); the reply is what the template writes after it for
    the assistant turn, including its end-of-turn token.
    """
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(
        [*messages, {"role": "assistant", "content": target}], tokenize=False
    )
    if not full.startswith(prompt):
        raise ValueError("the chat template does not render the prompt as a prefix of the chat")
    reply = full[len(prompt) :]
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    r_ids = tok(reply, add_special_tokens=False)["input_ids"]
    if max_tokens is not None and len(p_ids) + len(r_ids) > max_tokens:
        raise ValueError(f"example has {len(p_ids) + len(r_ids)} tokens > max {max_tokens}")
    return p_ids + r_ids, [-100] * len(p_ids) + r_ids


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
