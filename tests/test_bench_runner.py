"""The runner: every system on the scripted model, resume after a crash, caches, errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from bench_fixtures import kv_model, make_release, oracle_model

from personamem.bench import SYSTEMS, RunConfig, Runner, RunStore, get_system
from personamem.bench.embed import HashingEmbedder
from personamem.bench.runner import BenchError, distance_bucket
from personamem.bench.store import RunDirError
from personamem.data import load_release
from personamem.models import ModelError, ScriptedModel


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_release(tmp_path / "release")


def config(data: Path, tmp: Path, **kw: Any) -> RunConfig:
    base: dict[str, Any] = dict(
        data_dir=str(data),
        model="scripted",
        cache_dir=str(tmp / "cache" / "memories"),
        chunk_tokens=400,
        memory_tokens=300,
        top_k=4,
        strategy="extract",  # the scripted model answers extraction prompts
    )
    base.update(kw)
    return RunConfig(**base)


def run(cfg: RunConfig, out: Path, model: ScriptedModel, **kw: Any) -> Any:
    runner = Runner(cfg, out, model=model, embedder_factory=HashingEmbedder, **kw)
    return asyncio.run(runner.run())


def rows(out: Path) -> list[dict[str, Any]]:
    return list(RunStore(out).results().values())


def acc(rs: list[dict[str, Any]], system: str) -> float:
    sel = [r for r in rs if r["system"] == system]
    return sum(r["correct"] for r in sel) / len(sel)


def test_registry_has_the_four_systems() -> None:
    assert {"memory", "long-context", "retrieval", "no-history"} <= set(SYSTEMS)
    with pytest.raises(ValueError, match="unknown system"):
        get_system("telepathy")


def test_each_system_on_the_scripted_model(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    model = oracle_model()
    s = run(config(data, tmp_path), out, model)
    rs = rows(out)
    assert s.errors == 0 and s.answered == len(rs) == 8 * 4
    # memory and long-context see the preferences; no-history sees nothing.
    assert acc(rs, "memory") == 1.0
    assert acc(rs, "long-context") == 1.0
    nh = [r for r in rs if r["system"] == "no-history"]
    assert all(r["prompt"].startswith("My request:") for r in nh)
    assert acc(rs, "no-history") < 1.0
    assert acc(rs, "retrieval") > acc(rs, "no-history")
    r = next(r for r in rs if r["system"] == "memory")
    for key in (
        "qid",
        "system",
        "prompt",
        "raw",
        "answer",
        "correct_letter",
        "score",
        "tokens_in",
        "tokens_out",
        "seconds",
        "method",
        "shuffle_seed",
        "options_order",
    ):
        assert key in r, key
    assert r["method"] == "score" and r["parsed"] is True
    assert "loves" in r["prompt"]  # the memory reached the prompt
    ret = next(r for r in rs if r["system"] == "retrieval")
    assert len(ret["retrieved"]) == 4 and "Excerpts" in ret["prompt"]
    # evidence located in the history, distance measured from the end
    assert all(r["evidence_ids"] and r["distance_source"] == "computed" for r in rs)
    assert {r["distance_bucket"] for r in rs} == {"0-2k"}
    # persona system message never reaches a long-context prompt
    assert not any("secret persona" in m["content"] for c in model.calls for m in c)


def test_generate_method_and_unparseable(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(config(data, tmp_path, systems=["long-context"]), out, oracle_model(generate=True))
    rs = rows(out)
    assert all(r["method"] == "generate" and r["parsed"] for r in rs)
    assert acc(rs, "long-context") == 1.0
    out2 = tmp_path / "run2"
    mute = ScriptedModel(default="I would rather not say.")
    run(config(data, tmp_path, systems=["no-history"]), out2, mute)
    rs2 = rows(out2)
    assert all(not r["parsed"] and not r["correct"] and r["score"] == 0.0 for r in rs2)


def test_resume_after_a_crash(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = config(data, tmp_path, systems=["no-history", "long-context"])
    answered = {"n": 0}
    base = oracle_model(generate=True)
    inner = base.default

    def crashing(msgs: list[Any]) -> str:
        if "Which of these" in msgs[-1]["content"]:
            answered["n"] += 1
            if answered["n"] > 4 * 5:  # 4 rotations per question: crash in the 6th question
                raise KeyboardInterrupt
        return inner(msgs)  # type: ignore[operator]

    base.default = crashing
    with pytest.raises(KeyboardInterrupt):
        run(cfg, out, base)
    first = rows(out)
    assert len(first) == 5
    # a torn last line, as a kill during a write would leave
    with open(out / "results.jsonl", "a") as f:
        f.write('{"qid": "torn", "sys')
    fresh = oracle_model(generate=True)
    s = run(cfg, out, fresh)
    assert s.skipped == 5 and s.answered == 16 - 5
    final = rows(out)
    assert len(final) == 16
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 16 and all(json.loads(x) for x in lines)
    asked = [c for c in fresh.calls if "Which of these" in c[-1]["content"]]
    assert len(asked) == 4 * 11  # only the unfinished questions were asked
    # third run: nothing left
    again = oracle_model()
    s3 = run(cfg, out, again)
    assert s3.answered == 0 and s3.skipped == 16 and not again.calls


def memory_builds(out: Path) -> list[dict[str, Any]]:
    builds = [b for b in RunStore(out).builds().values() if b.get("kind") == "memory"]
    assert len(builds) == 1
    return builds


def test_a_cached_memory_keeps_its_cost_beside_the_baselines(data: Path, tmp_path: Path) -> None:
    """The memory build and the no-context baselines are two build records of one history: the
    report counts both, also when the memory came from the cache."""
    from personamem.bench.report import load_run, summarize

    cfg = config(data, tmp_path, systems=["memory"], limit=4, chunk_tokens=80)
    run(cfg, tmp_path / "a", kv_model())  # scores continuations: baselines are warmed
    run(cfg, tmp_path / "b", kv_model())  # same settings: memory from the cache
    for out in (tmp_path / "a", tmp_path / "b"):
        builds = RunStore(out).builds()
        kinds = sorted(k[2] for k in builds)
        assert kinds == ["baselines", "memory"], kinds
        mem = memory_builds(out)[0]
        s = next(x for x in summarize(load_run(out)) if x.system == "memory")
        total = sum((b.get("tokens_in") or 0) + (b.get("tokens_out") or 0) for b in builds.values())
        assert mem["tokens_in"] > 0 and s.builds == 2
        assert s.build_tokens == pytest.approx(total / 4)
    assert memory_builds(tmp_path / "b")[0]["cached"] is True


def test_memory_cache_and_build_resume(data: Path, tmp_path: Path) -> None:
    cfg = config(data, tmp_path, systems=["memory"], limit=4, chunk_tokens=80)
    calls = {"n": 0}
    model = oracle_model()
    inner = model.default

    def flaky(msgs: list[Any]) -> str:
        if "My request:" not in msgs[-1]["content"]:
            calls["n"] += 1
            if calls["n"] == 3:  # crash inside the memory build, after some chunks
                raise KeyboardInterrupt
        return inner(msgs)  # type: ignore[operator]

    model.default = flaky
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "a", model)
    partial = list((tmp_path / "cache" / "memories").glob("*.partial.json"))
    assert len(partial) == 1
    done_chunks = len(json.loads(partial[0].read_text())["reports"])
    assert done_chunks >= 1
    m2 = oracle_model()
    run(cfg, tmp_path / "a", m2)
    builds = memory_builds(tmp_path / "a")
    assert builds[0]["resumed"] is True and builds[0]["cached"] is False
    assert not list((tmp_path / "cache" / "memories").glob("*.partial.json"))
    assert acc(rows(tmp_path / "a"), "memory") == 1.0
    assert (tmp_path / "a" / "memories").is_dir()
    # another run folder, same settings: the memory comes from the cache, no model call to build
    m3 = oracle_model()
    run(cfg, tmp_path / "b", m3)
    b = memory_builds(tmp_path / "b")[0]
    assert b["cached"] is True and b["tokens_in"] == builds[0]["tokens_in"]
    assert all("My request:" in c[-1]["content"] for c in m3.calls)
    # a different memory size is another cache entry
    m4 = oracle_model()
    run(cfg.model_copy(update={"memory_tokens": 250}), tmp_path / "c", m4)
    assert memory_builds(tmp_path / "c")[0]["cached"] is False


def test_long_context_truncation_and_kv_order(data: Path, tmp_path: Path) -> None:
    model = oracle_model()
    model.context_window = 400
    out = tmp_path / "run"
    run(config(data, tmp_path, systems=["long-context"], personas=["1"]), out, model)
    rs = sorted(rows(out), key=lambda r: r["order_in_history"])
    assert [r["order_in_history"] for r in rs] == [0, 1, 2, 3]
    assert all(r["history_tokens_dropped"] > 0 for r in rs)
    assert len({r["history_tokens_dropped"] for r in rs}) == 1  # one cut per history
    for c in model.calls:
        assert model.count_message_tokens(c) <= 400
    # every prompt starts with the same history: a shared prefix for the KV cache
    prefixes = {json.dumps(c[:-1]) for c in model.calls}
    assert len(prefixes) == 1


def test_open_mode_is_judged(tmp_path: Path) -> None:
    data = make_release(tmp_path / "release", personas=1, sensitive=True)
    out = tmp_path / "run"
    s = run(config(data, tmp_path, systems=["no-history"], modes=["open"]), out, oracle_model())
    rs = rows(out)
    assert s.judged == 4 and all(r["status"] == "done" for r in rs)
    # no history: the answer cannot name the preference, and the (validated) judges see that
    assert all(r["score"] == pytest.approx(0.1) and r["score_majority"] == 0 for r in rs)
    assert all(len(r["judge_scores"]) == 3 for r in rs)
    validation = json.loads((out / "judge_validation.json").read_text())
    assert len(validation) == 3 and all(v["passed"] for v in validation.values())
    leak = [r for r in rs if "leaked" in r]
    assert len(leak) == 1 and leak[0]["leaked"] is False


def test_open_answers_are_judged_on_resume(tmp_path: Path) -> None:
    data = make_release(tmp_path / "release", personas=1)
    out = tmp_path / "run"
    cfg = config(data, tmp_path, systems=["no-history"], modes=["open"])
    model = oracle_model()
    inner = model.default

    def no_judging(msgs: list[Any]) -> str:
        body = msgs[-1]["content"]
        if "<response>\nA tailored answer" in body:  # judging an answer (validation passed)
            raise KeyboardInterrupt
        return inner(msgs)  # type: ignore[operator]

    model.default = no_judging
    with pytest.raises(KeyboardInterrupt):
        run(cfg, out, model)
    assert {r["status"] for r in rows(out)} == {"answered"}
    m2 = oracle_model()
    s = run(cfg, out, m2)
    assert s.answered == 0 and s.judged == 4
    assert not any("My request:" in c[-1]["content"] for c in m2.calls)  # not re-answered


def test_errors_are_recorded_and_retried(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = config(data, tmp_path, systems=["no-history"], limit=3)
    bad = ScriptedModel(default=ModelError("server down"))
    s = run(cfg, out, bad)
    assert s.errors == 3 and all(r["status"] == "error" for r in rows(out))
    assert "server down" in rows(out)[0]["error"]
    s2 = run(cfg, out, oracle_model())
    assert s2.answered == 3 and all(r["status"] == "done" for r in rows(out))


def test_other_settings_refuse_to_resume(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = config(data, tmp_path, systems=["no-history"], limit=1)
    run(cfg, out, oracle_model())
    with pytest.raises(RunDirError, match="chunk_tokens"):
        run(cfg.model_copy(update={"chunk_tokens": 999}), out, oracle_model())
    # adding a system is fine: it extends the run
    run(cfg.model_copy(update={"systems": ["long-context"]}), out, oracle_model())
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["config"]["systems"] == ["no-history", "long-context"]
    assert manifest["resumes"] == 1


def test_selection(data: Path, tmp_path: Path) -> None:
    rel = load_release(data)
    from personamem.bench import select_items

    assert len(select_items(rel, config(data, tmp_path))) == 8
    assert len(select_items(rel, config(data, tmp_path, limit=3))) == 3
    two = select_items(rel, config(data, tmp_path, personas=["2"]))
    assert {q.persona_id for q in two} == {"2"}
    with pytest.raises(BenchError, match="128k"):
        select_items(rel, config(data, tmp_path, context="128k"))
    with pytest.raises(BenchError, match="persona"):
        select_items(rel, config(data, tmp_path, personas=["99"]))


def test_distance_buckets() -> None:
    assert distance_bucket(None) == "unknown"
    assert distance_bucket(100) == "0-2k"
    assert distance_bucket(5000) == "4-8k"
    assert distance_bucket(31000) == "16-32k"
    assert distance_bucket(200_000) == "128k+"


def test_likelihood_baselines_are_shared_and_keep_the_kv_cache(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    model = kv_model()
    cfg = config(data, tmp_path, systems=["long-context", "memory", "no-history"])
    run(cfg, out, model)
    rs = rows(out)
    assert {r["method"] for r in rs} == {"likelihood"}
    assert acc(rs, "long-context") == 1.0 and acc(rs, "memory") == 1.0
    # the context-free baseline of each question was scored once, for all systems
    bare = [c for c in model.scored if len(c) == 2 and "past conversations" not in c[-1]["content"]]
    assert len(bare) == 8
    # long-context: baselines were scored before the history, so every later question of a
    # history only prefills its own tail
    lc = [r for r in rs if r["system"] == "long-context"]
    for r in lc:
        if r["order_in_history"] > 0:
            assert r["prefill_tokens"] < 0.3 * r["tokens_in"], r
    warm = [b for b in RunStore(out).builds().values() if b.get("kind") == "baselines"]
    # one baselines record per (system, history), beside the memory's own build record
    assert sorted({b["system"] for b in warm}) == ["long-context", "memory", "no-history"]
    assert len(warm) == 6 and all(b["tokens_in"] > 0 for b in warm)


def test_a_separate_memory_model_writes_the_memories(data: Path, tmp_path: Path) -> None:
    from personamem.memory import prompts as memory_prompts

    out = tmp_path / "run"
    answerer, writer = oracle_model(), oracle_model()
    cfg = config(data, tmp_path, systems=["memory"], memory_model="writer-spec")
    s = run(cfg, out, answerer, memory_model=writer)
    assert s.errors == 0 and acc(rows(out), "memory") == 1.0

    def wrote(m: ScriptedModel) -> int:
        return sum(c[0]["content"] == memory_prompts.EXTRACT_SYSTEM for c in m.calls)

    assert wrote(writer) > 0 and wrote(answerer) == 0
    assert writer.calls and all(len(c) == 2 for c in writer.calls)  # no answer prompts
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["memory_model_name"] == "writer-spec"
    # The writer is part of the run's settings: the same folder will not resume without it.
    with pytest.raises(RunDirError, match="memory_model"):
        run(config(data, tmp_path, systems=["memory"]), out, answerer)


def test_bench_cli_picks_the_memory_writer() -> None:
    from personamem.bench.cli import memory_writer
    from personamem.models import DEFAULT_MEMORY_MODEL

    assert memory_writer(None, None) == DEFAULT_MEMORY_MODEL  # all defaults: the 1.5B writer
    assert memory_writer("openai/gpt-4o", None) is None  # --model writes memories too
    assert memory_writer("openai/gpt-4o", "local/qwen2.5-1.5b") == "local/qwen2.5-1.5b"


def test_a_changed_system_version_redoes_only_its_answers(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resuming after a system's prompts changed: its answers are stale and redone, the other
    systems' answers are kept."""
    from personamem.memory import prompts

    out = tmp_path / "run"
    cfg = config(data, tmp_path, systems=["memory", "no-history"])
    first = run(cfg, out, oracle_model())
    assert first.answered == 16
    old = {r["qid"]: r["system_version"] for r in rows(out) if r["system"] == "memory"}
    monkeypatch.setattr(prompts, "PROMPT_VERSION", "extract-v0-changed")
    second = run(cfg, out, oracle_model())
    assert second.answered == 8 and second.skipped == 8
    new = {r["qid"]: r["system_version"] for r in rows(out) if r["system"] == "memory"}
    assert new.keys() == old.keys() and all(new[q] != old[q] for q in new)
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["systems_versions"]["memory"]["prompt_version"] == "extract-v0-changed"
    assert set(manifest["systems_versions"]) == {"memory", "no-history"}
    # Nothing changed since: nothing to redo.
    assert run(cfg, out, oracle_model()).answered == 0


def test_rows_of_an_older_run_without_versions_use_the_recorded_one(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from personamem.memory import prompts

    out = tmp_path / "run"
    cfg = config(data, tmp_path, systems=["memory"], limit=2)
    run(cfg, out, oracle_model())
    # An older run folder: rows carry no version; the manifest recorded the system's version.
    path = out / "results.jsonl"
    legacy = [json.loads(x) for x in path.read_text().splitlines()]
    for r in legacy:
        del r["system_version"]
    path.write_text("".join(json.dumps(r) + "\n" for r in legacy))
    assert run(cfg, out, oracle_model()).answered == 0  # same version as recorded: kept
    monkeypatch.setattr(prompts, "PROMPT_VERSION", "extract-v0-changed")
    assert run(cfg, out, oracle_model()).answered == 2  # recorded version differs: redone
