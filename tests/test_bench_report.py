"""Reports from a fixture run, and the ``personamem bench`` command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bench_fixtures import make_release
from typer.testing import CliRunner

from personamem.bench import RunConfig, RunStore, load_run, summarize, write_report
from personamem.bench.report import breakdown, judge_agreement, kv_reuse
from personamem.cli import app

PNG = b"\x89PNG\r\n\x1a\n"
# correct answers out of 20 per system
HITS = {"memory": 12, "long-context": 9, "retrieval": 8, "no-history": 5}
TOKENS = {"memory": 900, "long-context": 30000, "retrieval": 1500, "no-history": 300}


def fixture_run(root: Path, shift: int = 0, open_mode: bool = False) -> Path:
    """A finished run folder written row by row, as the runner would."""
    store = RunStore(root)
    cfg = RunConfig(
        data_dir="/data", model="local/test", modes=["mcq", "open"] if open_mode else ["mcq"]
    )
    store.open(cfg)
    for system, hits in HITS.items():
        for i in range(20):
            row: dict[str, Any] = {
                "qid": f"q{i}",
                "system": system,
                "mode": "mcq",
                "status": "done",
                "history_hash": f"h{i % 2}",
                "pref_type": ["stereotypical_pref", "neutral_preferences"][i % 2],
                "who": "self",
                "updated": i % 3 == 0,
                "sensitive": False,
                "scenario": "knowledge_query",
                "context": "32k",
                "distance_bucket": ["0-2k", "16-32k", "unknown"][i % 3],
                "correct": i < hits + shift,
                "score": 1.0 if i < hits + shift else 0.0,
                "parsed": i != 19,
                "method": "score",
                "tokens_in": TOKENS[system],
                "prefill_tokens": TOKENS[system] // (1 if i < 2 else 10),
                "tokens_out": 0,
                "seconds": 30.0 if (system == "long-context" and i < 2) else 2.0,
                "order_in_history": (i // 2) if system == "long-context" else None,
            }
            if system == "retrieval":
                row.update(retrieved=[1, 2], evidence_ids=[2] if i < 15 else [9])
            store.append_result(row)
            if open_mode:
                votes = [1, 1, int(i % 2 == 0)]
                store.append_result(
                    {
                        **row,
                        "mode": "open",
                        "score": 0.6,
                        "score_majority": 1,
                        "judge_votes": votes,
                        "judge_unparsed": 0,
                    }
                )
    for h in ("h0", "h1"):
        store.append_build(
            {
                "system": "memory",
                "history_hash": h,
                "tokens_in": 5000,
                "tokens_out": 1000,
                "seconds": 100.0,
                "cached": h == "h1",
            }
        )
    # an unfinished open answer and an error must not count as done
    store.append_result(
        {"qid": "qX", "system": "memory", "mode": "mcq", "status": "error", "error": "boom"}
    )
    return root


def test_summary_numbers(tmp_path: Path) -> None:
    run = load_run(fixture_run(tmp_path / "r"))
    sums = {s.system: s for s in summarize(run)}
    assert list(sums) == ["memory", "long-context", "retrieval", "no-history"]
    m = sums["memory"]
    assert m.n == 20 and m.accuracy == pytest.approx(0.6) and m.errors == 1
    assert m.ci[0] == pytest.approx(0.3866, abs=1e-3) and m.ci[1] == pytest.approx(0.7812, abs=1e-3)
    assert m.unparsed == 1
    assert m.build_tokens == pytest.approx(12000 / 20) and m.builds_cached == 1
    assert m.tokens_in == 900
    assert sums["retrieval"].retrieval_recall == pytest.approx(0.75)
    kv = kv_reuse(run)
    assert kv is not None and kv["cold_n"] == 2 and kv["speedup"] == pytest.approx(15.0)
    bd = breakdown(run, "pref_type", "mcq")
    assert set(bd) == {"stereotypical_pref", "neutral_preferences"}
    assert bd["neutral_preferences"]["memory"].n == 10


def test_report_files_and_tables(tmp_path: Path) -> None:
    root = fixture_run(tmp_path / "r", open_mode=True)
    res = write_report([root])
    md = res.markdown
    assert res.markdown_path == root / "report.md"
    for title in (
        "Accuracy (multiple choice)",
        "Open-ended (LLM judges)",
        "Cost per question",
        "Long-context KV-cache reuse",
        "By preference type",
        "By distance of the evidence",
        "Judge agreement",
    ):
        assert title in md, title
    assert "| random guess |  | 25.0% |" in md
    assert "| memory | 20 | 60.0% | 38.7% – 78.1% | 1 | score 20 | 1 |" in md
    for name in (
        "accuracy.png",
        "accuracy_vs_tokens.png",
        "open_scores.png",
        "breakdown_pref_type.png",
        "breakdown_distance_bucket.png",
    ):
        assert res.plots[name].read_bytes()[:8] == PNG
        assert f"(plots/{name})" in md
    ag = judge_agreement(load_run(root))
    assert ag is not None and ag["unanimous"] == pytest.approx(0.5)


def test_side_by_side(tmp_path: Path) -> None:
    a = fixture_run(tmp_path / "a")
    b = fixture_run(tmp_path / "b", shift=3)
    res = write_report([a, b], tmp_path / "cmp")
    assert "## Side by side" in res.markdown
    assert "| memory | 60.0% | 75.0% |" in res.markdown
    assert (tmp_path / "cmp" / "report.md").is_file()
    assert (tmp_path / "cmp" / "plots" / "accuracy.png").is_file()


# --- command line -------------------------------------------------------------------------------
cli = CliRunner()


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def test_cli_report(tmp_path: Path) -> None:
    root = fixture_run(tmp_path / "r")
    res = cli.invoke(app, ["bench", "report", str(root), "--no-plots"])
    assert res.exit_code == 0, res.output
    assert "Accuracy (multiple choice)" in flat(res.output) and "random guess" in flat(res.output)
    bad = cli.invoke(app, ["bench", "report", str(tmp_path / "nope")])
    assert bad.exit_code == 2 and "not a folder" in flat(bad.output)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--systems", "memory,telepathy"], "unknown system"),
        (["--context", "64k"], "--context must be 32k, 128k or snippet"),
        (["--mode", "essay"], "--mode must be"),
        (["--limit", "0"], "--limit must be"),
    ],
)
def test_cli_run_rejects_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    data = make_release(tmp_path / "release")
    res = cli.invoke(app, ["bench", "run", str(data), "--out", str(tmp_path / "o"), *args])
    assert res.exit_code == 2
    assert message in flat(res.output)


def test_cli_run_missing_data(tmp_path: Path) -> None:
    res = cli.invoke(app, ["bench", "run", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "not a folder" in flat(res.output)
    empty = tmp_path / "empty"
    empty.mkdir()
    res = cli.invoke(
        app, ["bench", "run", str(empty), "--out", str(tmp_path / "o"), "--model", "scripted"]
    )
    assert res.exit_code == 2 and "benchmark.csv" in flat(res.output)


def test_cli_run_end_to_end_scripted(tmp_path: Path) -> None:
    data = make_release(tmp_path / "release")
    out = tmp_path / "run"
    args = [
        "bench",
        "run",
        str(data),
        "--systems",
        "no-history,long-context",
        "--model",
        "scripted",
        "--limit",
        "2",
        "--out",
        str(out),
        "--cache-dir",
        str(tmp_path / "c"),
    ]
    res = cli.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "Accuracy (multiple choice)" in flat(res.output)
    assert (out / "report.md").is_file() and (out / "plots" / "accuracy.png").is_file()
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(not r["parsed"] for r in rows)  # scripted says "I don't know."
    again = cli.invoke(app, args)
    assert again.exit_code == 0 and "4 already done" in flat(again.output)
    other = cli.invoke(app, [*args[:-4], "--out", str(out), "--chunk-tokens", "100"])
    assert other.exit_code == 2 and "other settings" in flat(other.output)


def test_unknown_categories_get_their_own_breakdown_rows(tmp_path):
    """A PersonaMem v1 category (loaded with a warning) is reported under its own name."""
    store = RunStore(tmp_path / "run")
    store.open(RunConfig(data_dir="/data", model="local/test", modes=["mcq"]))
    for i, pref in enumerate(["factual", "factual", "sequence_of_updates", "neutral_preferences"]):
        store.append_result(
            {
                "qid": f"q{i}",
                "system": "memory",
                "mode": "mcq",
                "status": "done",
                "pref_type": pref,
                "score": float(i % 2 == 0),
                "correct": i % 2 == 0,
            }
        )
    table = breakdown(load_run(tmp_path / "run"), "pref_type", "mcq")
    assert set(table) == {"factual", "sequence_of_updates", "neutral_preferences"}
    assert (table["factual"]["memory"].k, table["factual"]["memory"].n) == (1.0, 2)
