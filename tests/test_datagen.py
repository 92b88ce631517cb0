"""Data generation on the fake writer/judge: every stage, resume, malformed output, the loader."""

from __future__ import annotations

import asyncio
import csv
import json
import re
from pathlib import Path

import pytest
from conftest import SAMPLE_ROOT
from datagen_fakes import Kill, fake_model

from personamem.data import load_release
from personamem.datagen import (
    LLM,
    GenerateConfig,
    GenerationError,
    ResumeError,
    StructuredOutputError,
    extract_json,
    generate,
)
from personamem.datagen import filters as F
from personamem.datagen.histories import order_blocks
from personamem.datagen.preferences import near_duplicate
from personamem.datagen.release import COLUMNS, assign_splits
from personamem.datagen.schemas import PreferenceList
from personamem.models import ModelError, ScriptedModel

SMALL = dict(
    personas=3,
    prefs_per_kind=3,
    history_tokens_32k=100000,
    history_tokens_128k=3000,
    filler_dialogues=3,
    backoff_seconds=0.0,
    update_fraction=0.3,
    forget_fraction=0.2,
    others_fraction=0.15,
    sensitive_fraction=0.3,
    concurrency=3,
)


def cfg(tmp: Path, **kw) -> GenerateConfig:
    return GenerateConfig(out=tmp, model="scripted", **{**SMALL, **kw})


def run(c: GenerateConfig, model=None, judge=None):
    return asyncio.run(generate(c, model=model or fake_model(), judge=judge))


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in ("usage.json", "report.json")
    }


# --- structured replies -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        '{"preferences": ["a"]}',
        'Sure! ```json\n{"preferences": ["a"],}\n```',
        "Here it is: {'preferences': ['a']} hope it helps",
        '{"preferences": ["a"]',  # cut before the closing brace
    ],
)
def test_extract_json_repairs_common_damage(text):
    assert extract_json(text) == {"preferences": ["a"]}


def test_extract_json_rejects_prose():
    with pytest.raises(ValueError, match="no JSON"):
        extract_json("I cannot help with that.")


def test_structured_feeds_the_error_back_and_repairs():
    m = ScriptedModel(
        replies=['{"preferences": []}', "nonsense", '{"preferences": ["Bakes bread"]}']
    )
    llm = LLM(m, max_repairs=3, backoff_seconds=0)
    out = asyncio.run(
        llm.structured("s", "unit", [{"role": "user", "content": "x"}], PreferenceList)
    )
    assert out.preferences == ["Bakes bread"]
    assert llm.usage["s"].repairs == 2
    assert "not usable" in m.calls[1][-1]["content"]  # the validation error went back to the model


def test_structured_gives_a_clear_error_after_repairs():
    llm = LLM(ScriptedModel(default="no json here"), max_repairs=2, backoff_seconds=0)
    with pytest.raises(
        StructuredOutputError, match=r"s \(persona 7\): no valid reply after 2 attempts"
    ):
        asyncio.run(
            llm.structured("s", "persona 7", [{"role": "user", "content": "x"}], PreferenceList)
        )


def test_transport_errors_are_retried_then_reported():
    m = ScriptedModel(replies=[ModelError("503"), ModelError("timeout"), '{"preferences": ["a"]}'])
    llm = LLM(m, max_retries=3, backoff_seconds=0)
    asyncio.run(llm.structured("s", "u", [{"role": "user", "content": "x"}], PreferenceList))
    assert llm.usage["s"].retries == 2
    llm2 = LLM(ScriptedModel(default=ModelError("down")), max_retries=2, backoff_seconds=0)
    with pytest.raises(ModelError, match="failed 2 times"):
        asyncio.run(llm2.text("s", [{"role": "user", "content": "x"}]))


# --- the pipeline -------------------------------------------------------------------------------
def test_pipeline_writes_a_release_the_loader_reads(tmp_path):
    rep = run(cfg(tmp_path))
    rel = load_release(tmp_path, strict=True)
    assert rel.issues == []
    assert len(rel.items) == rep.questions_kept > 0
    # no persona in two splits, and every split file exists only when it has rows
    per_split = {}
    for q in rel.items:
        per_split.setdefault(q.persona_id, set()).add(q.split)
    assert all(len(s) == 1 for s in per_split.values())
    assert {q.split for q in rel.items} <= {"benchmark", "train", "val"}
    assert rel.split("benchmark")
    # each row: 3 wrong options, a ground-truth preference, both histories load
    for q in rel.items:
        assert len(q.incorrect_answers) == 3 and q.correct_answer not in q.incorrect_answers
        assert q.preference and q.conversation_scenario
        assert rel.history(q.history_32k).messages[0]["role"] == "system"
        h128 = rel.history(q.history_128k)
        assert len(h128.messages) > len(rel.history(q.history_32k).messages)  # padded
        assert q.distance_32k is not None and q.related_snippet
    kinds = {(q.who, q.pref_type, q.updated) for q in rel.items}
    assert any(w == "others" for w, _, _ in kinds)
    assert any(t == "ask_to_forget" for _, t, _ in kinds)
    assert any(u for _, t, u in kinds if t != "ask_to_forget")
    assert any(q.has_sensitive for q in rel.items)
    # raw data mirrors the real generator's file
    raw_file = next((tmp_path / "data" / "raw_data").glob("*.json"))
    raw = json.loads(raw_file.read_text())
    ((pid, p),) = raw.items()
    for key in (
        "short_persona",
        "name",
        "location",
        "personality",
        "education",
        "employment",
        "technology_profile",
        "speaking_style",
        "sensitive_information",
        "stereotypical_preferences",
        "anti_stereotypical_preferences",
        "neutral_preferences",
        "therapy_background",
        "health_and_medical_conditions",
        "preference_updates",
        "conversations",
    ):
        assert key in p, key
    entry = next(e for L in p["conversations"].values() for e in L)
    assert {"preference", "pref_type", "who", "conversations", "updated"} <= set(entry)
    # the report has per-stage usage and filter pass rates
    assert rep.usage["personas"]["calls"] == 3
    assert rep.usage["filters"]["calls"] > 0
    assert set(rep.pass_rates) == {
        "no_leak",
        "correct_reflects",
        "wrong_not_reflect",
        "clean_format",
        "all",
    }
    assert (tmp_path / "work" / "report.json").is_file()


def test_release_columns_are_the_samples_header():
    # The fixture releases (conftest.RELEASE_COLUMNS) use COLUMNS, so check it against real data.
    with (SAMPLE_ROOT / "benchmark" / "text" / "benchmark.csv").open(newline="") as f:
        assert next(csv.reader(f)) == COLUMNS


def test_stereotype_check_relabels_by_inferring_the_persona(tmp_path):
    run(cfg(tmp_path, personas=1))
    prefs = json.loads(next((tmp_path / "work" / "preferences").glob("*.json")).read_text())
    ballet = [p for p in prefs["preferences"] if "ballet" in p["text"]]
    assert ballet and all(p["pref_type"] == "anti_stereotypical_pref" for p in ballet)
    assert ballet[0]["original_pref_type"] == "stereotypical_pref"
    assert ballet[0]["label_check"]["votes"] == ["atypical"] * 3
    moved = [p for p in prefs["preferences"] if "original_pref_type" in p]
    assert prefs["relabelled"] == len(moved) > 1
    # the fake judge calls everything else typical: anti/neutral labels move to stereotypical
    assert all(p["pref_type"] == "stereotypical_pref" for p in moved if "ballet" not in p["text"])
    # therapy and health items are not stereotype-checked
    assert all(
        "label_check" not in p
        for p in prefs["preferences"]
        if p["pref_type"] in ("therapy_background", "health_and_medical_conditions")
    )


def test_history_order_and_budget(tmp_path):
    run(cfg(tmp_path, personas=1, history_tokens_32k=100000))
    h = json.loads((tmp_path / "work" / "histories" / "0.json").read_text())
    order = h["order"]
    for i, b in enumerate(order):
        if b.endswith(("u", "f")):
            assert b[:-1] in order[:i], "updates and forget requests follow their original"
    # a tight budget drops whole blocks, never a dependency of a kept block
    out2 = tmp_path / "tight"
    run(cfg(out2, personas=1, history_tokens_32k=400, history_tokens_128k=0))
    h2 = json.loads((out2 / "work" / "histories" / "0.json").read_text())
    assert h2["dropped_over_budget"] and h2["tokens32"] <= 400
    kept = set(h2["order"])
    assert all(b[:-1] in kept for b in kept if b.endswith(("u", "f")))
    assert not (out2 / "data" / "chat_history_128k").exists()


def test_order_blocks_puts_forget_after_the_last_mention():
    import random

    blocks = [{"block_id": f"q{i}", "pref_id": f"q{i}", "after": None} for i in range(6)]
    blocks.append({"block_id": "q2f", "pref_id": "q2", "after": "q2"})
    for s in range(30):
        order = [b["block_id"] for b in order_blocks(blocks, random.Random(s))]
        assert order.index("q2f") > order.index("q2")


def test_resume_after_a_kill_redoes_nothing_finished(tmp_path):
    full = tmp_path / "full"
    run(cfg(full))
    part = tmp_path / "part"
    with pytest.raises(Kill):
        run(cfg(part), model=fake_model(kill_after=40))
    before = {
        p: p.stat().st_mtime_ns for p in (part / "work").rglob("*.json") if p.parent.name != "work"
    }
    assert before, "some units finished before the kill"
    assert not list((part / "work").rglob("*.tmp*")), "no half-written artifact"
    counting = fake_model()
    run(cfg(part), model=counting)
    after = {p: p.stat().st_mtime_ns for p in before}
    assert after == before, "finished artifacts were not rewritten"
    persona_done = {p.stem for p in (part / "work" / "personas").glob("*.json") if p in before}
    redone = [c for c in counting.calls if "Expand this one-line description" in c[-1]["content"]]
    assert len(redone) == 3 - len(persona_done)
    assert snapshot(part) == {
        k: v for k, v in snapshot(full).items() if k != "work/config.json"
    } | {"work/config.json": (part / "work/config.json").read_bytes()}
    # a third run has nothing left to do
    idle = fake_model()
    run(cfg(part), model=idle)
    assert idle.calls == []


def test_resume_refuses_other_settings(tmp_path):
    run(cfg(tmp_path, personas=1))
    with pytest.raises(ResumeError, match="different settings"):
        run(cfg(tmp_path, personas=1, seed=5))


def test_malformed_replies_are_repaired(tmp_path):
    seen = {"n": 0}

    def damage(messages, text):
        seen["n"] += 1
        if messages[-1]["content"].startswith("That reply was not usable"):
            return text
        if seen["n"] % 3 == 0:
            return "Sure, here you go:\n```json\n" + text[: len(text) // 2]  # truncated
        if seen["n"] % 3 == 1:
            return f"```json\n{text}\n```"  # fenced, still parseable
        return text

    rep = run(cfg(tmp_path, personas=1), model=fake_model(wrap=damage))
    assert sum(u["repairs"] for u in rep.usage.values()) > 0
    assert load_release(tmp_path, strict=True).items


def test_a_unit_that_never_parses_stops_the_stage_with_its_name(tmp_path):
    def break_forget(messages, text):
        return "I refuse." if "Please forget that I" in messages[1]["content"] else text

    with pytest.raises(
        GenerationError, match=r"stage 'conversations' failed.*\n.*conversations \d+-q\d+f"
    ):
        run(cfg(tmp_path), model=fake_model(wrap=break_forget))
    rep = run(cfg(tmp_path, keep_going=True), model=fake_model(wrap=break_forget))
    assert rep.failures["conversations"]
    rel = load_release(tmp_path, strict=True)
    assert rel.items and all(q.pref_type != "ask_to_forget" for q in rel.items)


def test_a_wrong_sensitive_value_is_not_accepted(tmp_path):
    def drop_value(messages, text):
        if "copy it exactly" in messages[1]["content"]:
            return re.sub(r"Pasted: [^\"]+", "Pasted: ***", text)
        return text

    with pytest.raises(GenerationError, match="must contain the"):
        run(cfg(tmp_path, sensitive_fraction=1.0, personas=1), model=fake_model(wrap=drop_value))


# --- filters --------------------------------------------------------------------------------------
ITEM = {
    "user_query": "What should I cook for dinner on a busy weeknight?",
    "correct_answer": "Since you enjoy spicy ramen, make a quick bowl with chili oil and greens.",
    "incorrect_answers": [
        "Since people like you love salads, toss greens with grilled chicken tonight.",
        "Since you enjoy long museum visits, grab takeout near the gallery tonight.",
        "Make a simple pasta with vegetables; it is quick and filling for a weeknight.",
    ],
    "preference": "Enjoys spicy ramen",
    "kind": "self",
}


def judge() -> LLM:
    return LLM(fake_model(), backoff_seconds=0)


def test_filters_pass_a_good_item():
    res = asyncio.run(F.judge_item(judge(), ITEM, votes=3))
    assert res["kept"], res


def test_leak_filter_fails_when_the_preference_is_pasted_into_the_query():
    leaked = {**ITEM, "user_query": ITEM["user_query"] + " I enjoy spicy ramen."}
    assert not asyncio.run(F.no_leak(judge(), leaked, 3)).passed


def test_leak_filter_counts_judge_votes():
    def knows_the_answer(messages):
        line = next(x for x in messages[-1]["content"].splitlines() if "spicy ramen" in x)
        return json.dumps({"answer": line[0]})

    r = asyncio.run(
        F.no_leak(LLM(ScriptedModel(default=knows_the_answer), backoff_seconds=0), ITEM, 3)
    )
    assert not r.passed and r.votes == [False] * 4  # 3 votes -> one full rotation of 4


def test_swapped_correct_option_fails_the_preference_filters():
    swapped = {
        **ITEM,
        "correct_answer": ITEM["incorrect_answers"][0],
        "incorrect_answers": [ITEM["correct_answer"], *ITEM["incorrect_answers"][1:]],
    }
    assert not asyncio.run(F.correct_reflects(judge(), swapped, 3)).passed
    assert not asyncio.run(F.wrong_not_reflect(judge(), swapped, 3)).passed


def test_format_rules():
    assert F.format_problems(ITEM) == []
    bad = {
        **ITEM,
        "incorrect_answers": ["B. " + ITEM["incorrect_answers"][0], *ITEM["incorrect_answers"][1:]],
    }
    assert any("labels" in p for p in F.format_problems(bad))
    cut = {**ITEM, "correct_answer": "Since you enjoy spicy ramen, make a quick bowl with the"}
    assert any("cut off" in p for p in F.format_problems(cut))
    sens = {
        **ITEM,
        "sensitive_value": "555-12-3456",
        "correct_answer": ITEM["correct_answer"] + " Call 555-12-3456.",
    }
    assert any("sensitive" in p for p in F.format_problems(sens))
    assert not asyncio.run(F.clean_format(judge(), bad, 3)).passed


def test_dedupe_and_splits_helpers():
    assert near_duplicate("Enjoys spicy ramen", "enjoys Spicy Ramen.")
    assert not near_duplicate("Enjoys spicy ramen", "Enjoys trail running")
    import random

    s = assign_splits(
        [str(i) for i in range(10)], {"benchmark": 0.2, "train": 0.7, "val": 0.1}, random.Random(0)
    )
    assert sorted(s.values()).count("benchmark") == 2 and list(s.values()).count("val") == 1
    assert assign_splits(["0"], {"benchmark": 0.2, "train": 0.8}, random.Random(0)) == {
        "0": "benchmark"
    }


def test_cli_generate_reports_a_missing_seeds_file(tmp_path):
    from typer.testing import CliRunner

    from personamem.cli import app

    r = CliRunner().invoke(
        app,
        [
            "generate",
            "--out",
            str(tmp_path / "o"),
            "--model",
            "scripted",
            "--seeds-file",
            str(tmp_path / "nope.txt"),
        ],
    )
    assert r.exit_code == 1
    assert "seeds file not found" in r.output


def test_a_unit_failing_midway_keeps_its_finished_sub_calls(tmp_path):
    from personamem.datagen import prompts

    def break_ballet(messages, text):
        return (
            "no"
            if messages[0]["content"] == prompts.STEREO_SYSTEM
            and "ballet" in messages[1]["content"]
            else text
        )

    with pytest.raises(GenerationError, match="stereotype_check"):
        run(cfg(tmp_path, personas=1), model=fake_model(wrap=break_ballet))
    again = fake_model()
    run(cfg(tmp_path, personas=1), model=again)
    systems = [c[0]["content"] for c in again.calls]
    assert prompts.PREFS_SYSTEM not in systems  # the preference lists were not asked again
    stereo = [c for c in again.calls if c[0]["content"] == prompts.STEREO_SYSTEM]
    assert stereo and all("ballet" in c[1]["content"] for c in stereo)  # only the failed check


def test_rotations_cancel_a_judges_position_bias():
    """A judge that loves position A, with a slight taste for the preference, still ranks
    the options by that taste; a blind judge with only position bias leaks nothing."""

    def scores(messages, choices):
        lines = [
            x for x in messages[-1]["content"].splitlines() if x[:2] in ("A.", "B.", "C.", "D.")
        ]
        return [
            (3.0 if c == "A" else 0.0) + (0.5 if "spicy ramen" in lines[i] else 0.0)
            for i, c in enumerate(choices)
        ]

    biased = LLM(ScriptedModel(choice_scores=scores), backoff_seconds=0)
    assert asyncio.run(F.correct_reflects(biased, ITEM, 3)).passed
    assert asyncio.run(F.wrong_not_reflect(biased, ITEM, 3)).passed
    swapped = {
        **ITEM,
        "correct_answer": ITEM["incorrect_answers"][2],
        "incorrect_answers": [*ITEM["incorrect_answers"][:2], ITEM["correct_answer"]],
    }
    assert not asyncio.run(F.correct_reflects(biased, swapped, 3)).passed
    assert not asyncio.run(F.wrong_not_reflect(biased, swapped, 3)).passed
    only_position = LLM(
        ScriptedModel(choice_scores=lambda m, c: [3.0 if x == "A" else 0.0 for x in c]),
        backoff_seconds=0,
    )
    r = asyncio.run(F.no_leak(only_position, ITEM, 3))
    assert r.passed and "0.25" in r.reason


def test_keep_going_skips_a_kind_the_model_cannot_write_and_records_it(tmp_path):
    from personamem.datagen import prompts

    def one_word_therapy(messages, text):
        if (
            messages[0]["content"] == prompts.PREFS_SYSTEM
            and "therapy background" in messages[1]["content"]
        ):
            return '{"preferences": ["amazing"]}'
        return text

    with pytest.raises(GenerationError, match="phrase of 3-12 words"):
        run(cfg(tmp_path, personas=1), model=fake_model(wrap=one_word_therapy))
    rep = run(cfg(tmp_path, personas=1, keep_going=True), model=fake_model(wrap=one_word_therapy))
    prefs = json.loads((tmp_path / "work" / "preferences" / "0.json").read_text())
    assert list(prefs["failed_kinds"]) == ["therapy_background"]
    assert not any(p["pref_type"] == "therapy_background" for p in prefs["preferences"])
    assert rep.failures["preferences"] and rep.questions_kept > 0
