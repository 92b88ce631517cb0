"""Open-ended judging: the preference-based rubric, score-token reading, judge validation, and
how a run uses (and drops) validated judges."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bench_fixtures import make_release, mentions_preference, oracle_model

from personamem.bench import RunConfig, Runner, RunStore, scoring
from personamem.bench.embed import HashingEmbedder
from personamem.bench.report import build_sections, load_run
from personamem.bench.runner import BenchError
from personamem.bench.validation import validate_judge
from personamem.data import QAItem
from personamem.models import ScriptedModel
from personamem.models.base import Message


def item(k: int, **kw: Any) -> QAItem:
    base: dict[str, Any] = dict(
        id=f"q-{k}",
        split="benchmark",
        row=k,
        persona_id="1",
        query="Suggest a weekend plan?",
        correct_answer=f"A weekend of hiking in the mountains, trail {k}.",
        incorrect_answers=[f"A day at the mall {k}.", f"Opera night {k}.", f"Golf {k}."],
        preference="Loves hiking in the mountains",
    )
    base.update(kw)
    return QAItem(**base)


def rubric_judge(msgs: list[Message]) -> str:
    """Scores 1 when the response names the preference, else 0 (a judge that reads the rubric)."""
    return "\\boxed{1.0}" if mentions_preference(msgs[-1]["content"]) else "\\boxed{0}"


def judge(model: Any, spec: str = "j") -> scoring.Judge:
    return scoring.make_judges([spec], {spec: model})[0]


# --- the rubric ---------------------------------------------------------------------------------
def test_rubric_is_the_preference_not_a_reference_answer() -> None:
    q = item(1, correct_answer="UNIQUE-REFERENCE-TEXT", updated=True, prev_pref="Hated hiking")
    for reasoning in (True, False):
        text = scoring.align_messages(q, "some response", reasoning=reasoning)[-1]["content"]
        assert "UNIQUE-REFERENCE-TEXT" not in text
        assert "Loves hiking in the mountains" in text
        assert "Hated hiking" in text and "out of date" in text  # the update note stays
        assert text.rstrip().endswith(("in \\boxed{}.", "\\boxed{0.5}."))
        assert text.index("<response>") > text.index("<preference>")  # shared prefix first
    assert "others" not in scoring.align_messages(q, "r")[-1]["content"]
    assert "other people" in scoring.align_messages(item(2, who="others"), "r")[-1]["content"]
    assert scoring.JUDGE_PROMPT_VERSION != "judge-v1"


def test_expected_score_from_score_tokens() -> None:
    n = len(scoring.SCORE_TOKENS)
    certain_one = [-50.0] * n
    certain_one[list(scoring.SCORE_TOKENS).index("1}")] = 0.0
    assert scoring.expected_score(certain_one) == pytest.approx(1.0)
    half = [-50.0] * n
    half[list(scoring.SCORE_TOKENS).index("0}")] = -0.6931
    half[list(scoring.SCORE_TOKENS).index("1.0}")] = -0.6931
    assert scoring.expected_score(half) == pytest.approx(0.5)


@dataclass
class ScoringModel(ScriptedModel):
    """A scripted backend that can score: it puts its mass on "1}" when the response names the
    preference and on "0}" otherwise, and fails the test if asked to generate."""

    scored: int = 0

    async def score_continuations(
        self, messages: list[Message], continuations: list[str], *, prefix: str = ""
    ) -> list[tuple[float, int]] | None:
        self.scored += 1
        assert prefix == "\\boxed{" and "Reply with the score only" in messages[-1]["content"]
        want = "1}" if mentions_preference(messages[-1]["content"]) else "0}"
        return [(0.0 if c == want else -6.0, 2) for c in continuations]


async def test_a_scoring_backend_is_read_from_its_distribution() -> None:
    m = ScoringModel(default=AssertionError("generated"))
    j = judge(m)
    good, raw, how = await j.align(item(1), "Let's go hiking in the mountains.")
    bad, _, _ = await j.align(item(1), "Let's go shopping.")
    assert how == "distribution" and "logp" in raw
    assert good is not None and bad is not None and good > 0.95 and bad < 0.05
    assert m.scored == 2 and not m.calls


async def test_http_like_backends_generate_and_parse() -> None:
    m = ScriptedModel(default=rubric_judge)
    s, raw, how = await judge(m).align(item(1), "Hiking in the mountains it is.")
    assert (s, how) == (1.0, "generate") and "\\boxed{1.0}" in raw
    assert "one short sentence of reasoning" in m.calls[-1][-1]["content"]


# --- validation ---------------------------------------------------------------------------------
async def test_a_judge_that_always_says_09_fails_on_ties() -> None:
    items = [item(k) for k in range(10)]
    v = await validate_judge(judge(ScriptedModel(default="\\boxed{0.9}")), items)
    assert v.items == 10 and v.correct_first == 0 and v.ties == 10
    assert not v.passed and v.share == 0.0 and v.responses == 40 and v.unparsed == 0
    assert "FAILS" in v.summary()


async def test_a_judge_that_reads_the_preference_passes() -> None:
    items = [item(k) for k in range(10)]
    v = await validate_judge(judge(ScriptedModel(default=rubric_judge)), items)
    assert v.passed and v.correct_first == 10 and v.ties == 0
    assert v.ci[0] > 0.65 and v.ci[1] == 1.0  # Wilson interval of 10/10
    assert [c.qid for c in v.checks] == [q.id for q in items]


async def test_unparsed_replies_and_the_threshold() -> None:
    items = [item(k) for k in range(5)]

    def flaky(msgs: list[Message]) -> str:
        if "trail 4" in msgs[-1]["content"]:
            return "I cannot judge this."
        return rubric_judge(msgs)

    v = await validate_judge(judge(ScriptedModel(default=flaky)), items)
    assert v.correct_first == 4 and v.unparsed == 1 and v.share == pytest.approx(0.8)
    assert v.passed  # 80% is enough; one more miss would not be
    v2 = await validate_judge(judge(ScriptedModel(default=flaky)), items, threshold=0.81)
    assert not v2.passed


# --- the run ------------------------------------------------------------------------------------
def open_config(data: Path, tmp: Path, judges: list[str], **kw: Any) -> RunConfig:
    return RunConfig(
        data_dir=str(data),
        model="scripted",
        cache_dir=str(tmp / "cache"),
        systems=["no-history"],
        modes=["open"],
        judges=judges,
        judge_validation_items=3,
        **kw,
    )


def run(cfg: RunConfig, out: Path, judges: dict[str, Any], model: Any = None) -> Any:
    runner = Runner(
        cfg,
        out,
        model=model or oracle_model(),
        judge_models=judges,
        embedder_factory=HashingEmbedder,
    )
    return asyncio.run(runner.run())


def rubric_calls(m: ScriptedModel) -> int:
    return sum(1 for c in m.calls if "<preference>" in c[-1]["content"])


def test_the_run_drops_a_failing_judge(tmp_path: Path) -> None:
    data = make_release(tmp_path / "release", personas=1)
    out = tmp_path / "run"
    good = ScriptedModel(default=rubric_judge)
    bad = ScriptedModel(default="\\boxed{0.9}")
    s = run(open_config(data, tmp_path, ["good", "bad"]), out, {"good": good, "bad": bad})
    rows = list(RunStore(out).results().values())
    assert s.judged == 4 and all(r["judges"] == ["good"] for r in rows)
    assert rubric_calls(bad) == 3 * 4  # validated (3 items x 4 options), then never used
    recorded = json.loads((out / "judge_validation.json").read_text())
    by_spec = {v["judge"]: v for v in recorded.values()}
    assert by_spec["good"]["passed"] and not by_spec["bad"]["passed"]
    assert by_spec["bad"]["ties"] == 3
    manifest = RunStore(out).read_manifest() or {}
    assert manifest["judges_used"] == [by_spec["good"]["key"]]
    section = next(x for x in build_sections([load_run(out)]) if x.title == "Judge validation")
    table = {row[0]: row for row in section.rows}
    assert table["good"][2] == "3/3" and table["good"][-1] == "yes"
    assert table["bad"][2] == "0/3" and table["bad"][5] == "3" and table["bad"][-1] == "no"


def test_the_run_stops_when_no_judge_passes(tmp_path: Path) -> None:
    data = make_release(tmp_path / "release", personas=1)
    out = tmp_path / "run"
    bad = ScriptedModel(default="\\boxed{0.9}")
    with pytest.raises(BenchError, match=r"no judge passed validation.*--judges openai/"):
        run(open_config(data, tmp_path, ["bad"]), out, {"bad": bad})
    assert rubric_calls(bad) == 12
    assert not (out / "results.jsonl").exists() or not RunStore(out).results()  # nothing judged


def test_resume_reuses_the_recorded_validation(tmp_path: Path) -> None:
    data = make_release(tmp_path / "release", personas=1)
    out = tmp_path / "run"
    cfg = open_config(data, tmp_path, ["good"])

    def stops_at_answers(msgs: list[Message]) -> str:
        if "A tailored answer" in msgs[-1]["content"]:
            raise KeyboardInterrupt  # killed while judging the answers
        return rubric_judge(msgs)

    with pytest.raises(KeyboardInterrupt):
        run(cfg, out, {"good": ScriptedModel(default=stops_at_answers)})
    assert {r["status"] for r in RunStore(out).results().values()} == {"answered"}
    assert len(json.loads((out / "judge_validation.json").read_text())) == 1
    again = ScriptedModel(default=rubric_judge)
    s = run(cfg, out, {"good": again})
    assert s.judged == 4 and s.answered == 0
    assert rubric_calls(again) == 4  # the 4 answers only: validation was not redone
    # More validation items is another validation: it is redone.
    more = ScriptedModel(default=rubric_judge)
    cfg2 = cfg.model_copy(update={"judge_validation_items": 4})
    rows = RunStore(out).results()
    RunStore(out).append_result({**next(iter(rows.values())), "status": "answered"})
    run(cfg2, out, {"good": more})
    assert rubric_calls(more) == 4 * 4 + 1


def test_answers_judged_with_an_older_rubric_are_judged_again(tmp_path: Path) -> None:
    data = make_release(tmp_path / "release", personas=1)
    out = tmp_path / "run"
    cfg = open_config(data, tmp_path, ["good"])
    run(cfg, out, {"good": ScriptedModel(default=rubric_judge)})
    store = RunStore(out)
    for r in list(store.results().values())[:2]:
        store.append_result({**r, "judge_prompt_version": "judge-v1", "score": 0.77})
    answerer = oracle_model()
    again = ScriptedModel(default=rubric_judge)
    s = run(cfg, out, {"good": again}, model=answerer)
    assert s.judged == 2 and s.answered == 0 and s.skipped == 2
    assert not any("My request:" in c[-1]["content"] for c in answerer.calls)
    assert rubric_calls(again) == 2
    rows = store.results().values()
    assert {r["judge_prompt_version"] for r in rows} == {scoring.JUDGE_PROMPT_VERSION}
    assert not any(r["score"] == 0.77 for r in rows)


def test_local_models_default_to_one_deterministic_judge() -> None:
    assert RunConfig(data_dir="d", model="local/qwen2.5-0.5b").judge_specs() == [
        "local/qwen2.5-0.5b"
    ]
    assert RunConfig(data_dir="d", model="openai/x").judge_specs() == ["openai/x"] * 3
    assert re.fullmatch(r"a\|t=0\.0\|seed=0\|judge-v\d+", judge(ScriptedModel(), "a").key)


# --- the command --------------------------------------------------------------------------------
def test_validate_judges_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import personamem.models
    from personamem.cli import app

    data = make_release(tmp_path / "release", personas=2)
    judges = {"good": ScriptedModel(default=rubric_judge), "bad": ScriptedModel()}
    monkeypatch.setattr(personamem.models, "get_model", lambda spec: judges[spec])
    out = tmp_path / "judges.json"
    args = ["bench", "validate-judges", str(data), "--out", str(out), "--personas", "2"]
    res = CliRunner().invoke(app, [*args, "--judges", "good,bad", "--per-persona", "3"])
    assert res.exit_code == 0, res.output
    saved = json.loads(out.read_text())
    assert len(saved["questions"]) == 3 and all("-p2-" in q for q in saved["questions"])
    good, bad = saved["validations"]
    assert good["passed"] and good["correct_first"] == 3 and saved["partial"] is None
    assert not bad["passed"] and bad["unparsed"] == 12  # "I don't know." has no score
    res = CliRunner().invoke(app, [*args, "--judges", "bad"])
    assert res.exit_code == 1 and "no judge passed" in res.output
    res = CliRunner().invoke(app, [*args, "--judges", "good", "--personas", "99"])
    assert res.exit_code == 2 and "no questions" in " ".join(res.output.split())


def test_validate_judges_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import personamem.models
    from personamem.cli import app

    data = make_release(tmp_path / "release", personas=2)
    seen: list[str] = []

    def interrupted(msgs: list[Message]) -> str:
        seen.append(msgs[-1]["content"])
        if len(seen) > 4 * 3:  # killed during the 4th question
            raise KeyboardInterrupt
        return rubric_judge(msgs)

    model = ScriptedModel(default=interrupted)
    monkeypatch.setattr(personamem.models, "get_model", lambda spec: model)
    out = tmp_path / "judges.json"
    args = ["bench", "validate-judges", str(data), "--judges", "good", "--out", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 130
    saved = json.loads(out.read_text())
    assert saved["validations"] == [] and saved["partial"]["items"] == 3
    model.default = rubric_judge
    model.calls.clear()
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    v = json.loads(out.read_text())["validations"][0]
    assert v["items"] == 8 and v["correct_first"] == 8 and v["responses"] == 32
    assert rubric_calls(model) == 4 * 5  # only the 5 questions left were scored again
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0 and rubric_calls(model) == 4 * 5  # all done: nothing to score
