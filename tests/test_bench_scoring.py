"""Scoring: shuffles, judge parsing and aggregation, leak and forget checks, intervals."""

from __future__ import annotations

from collections import Counter

import pytest

from personamem.bench import scoring
from personamem.bench.report import mean_ci, wilson
from personamem.data import QAItem
from personamem.models import ScriptedModel


def item(qid: str = "benchmark-p1-abc", **kw: object) -> QAItem:
    base: dict[str, object] = dict(
        id=qid,
        split="benchmark",
        row=1,
        persona_id="1",
        query="Suggest a weekend plan?",
        correct_answer="right",
        incorrect_answers=["w1", "w2", "w3"],
        preference="Loves hiking",
    )
    base.update(kw)
    return QAItem(**base)  # type: ignore[arg-type]


# --- shuffles -----------------------------------------------------------------------------------
def test_shuffle_is_deterministic_per_question() -> None:
    a = scoring.shuffle_options(item("q-1"))
    b = scoring.shuffle_options(item("q-1"))
    assert a == b
    assert a.options[a.correct] == "right"
    assert sorted(a.options) == sorted(["right", "w1", "w2", "w3"])
    assert [["right", "w1", "w2", "w3"][i] for i in a.order] == a.options


def test_shuffle_seed_is_stable_across_versions() -> None:
    # Pinned: a refactor must not silently change every question's option order.
    assert scoring.question_seed("q-1") == 0x7D33B626
    assert scoring.question_seed("q-1", 0) != scoring.question_seed("q-1", 1)


def test_shuffle_spreads_the_correct_answer() -> None:
    positions = Counter(scoring.shuffle_options(item(f"q-{i}")).correct for i in range(400))
    assert set(positions) == {0, 1, 2, 3}
    assert min(positions.values()) > 60


def test_run_seed_changes_some_orders() -> None:
    orders0 = [scoring.shuffle_options(item(f"q-{i}"), 0).order for i in range(20)]
    orders1 = [scoring.shuffle_options(item(f"q-{i}"), 1).order for i in range(20)]
    assert orders0 != orders1


# --- judge output -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("Reasoning... \\boxed{0.8}", 0.8),
        ("\\boxed{1}", 1.0),
        ("first \\boxed{0.2} then \\boxed{0.6}", 0.6),
        ("\\boxed{ .5 }", 0.5),
        ("Score: 0.3", 0.3),
        ("The score is 1.0.", 1.0),
        ("no number here", None),
        ("\\boxed{7}", None),
        ("", None),
    ],
)
def test_parse_score(text: str, score: float | None) -> None:
    assert scoring.parse_score(text) == score


def test_parse_yes_no() -> None:
    assert scoring.parse_yes_no("YES, it does") is True
    assert scoring.parse_yes_no("No.") is False
    assert scoring.parse_yes_no("I think \\boxed{yes}") is True
    assert scoring.parse_yes_no("maybe") is None


# --- aggregation --------------------------------------------------------------------------------
def test_aggregate_mean_and_majority() -> None:
    a = scoring.aggregate([0.9, 0.6, 0.1])
    assert a.mean == pytest.approx(1.6 / 3)
    assert a.votes == [1, 1, 0] and a.majority == 1 and a.unparsed == 0
    b = scoring.aggregate([0.9, None, 0.2])
    assert b.mean == pytest.approx(0.55) and b.unparsed == 1
    assert b.majority == 0  # one of two: a tie is not a majority
    c = scoring.aggregate([None, None, None])
    assert c.mean is None and c.majority is None and c.unparsed == 3


def test_agreement() -> None:
    same = scoring.agreement([[1, 1, 1], [0, 0, 0], [1, 1, 1]])
    assert same["unanimous"] == 1.0 and same["pairwise"] == 1.0
    assert same["fleiss_kappa"] == pytest.approx(1.0)
    mixed = scoring.agreement([[1, 1, 0], [0, 0, 0], [1, 0, 1], [1, 1, 1]])
    assert mixed["unanimous"] == 0.5
    assert mixed["pairwise"] == pytest.approx((1 / 3 + 1 + 1 / 3 + 1) / 4)
    assert -1.0 <= mixed["fleiss_kappa"] < 1.0
    flat = scoring.agreement([[1, 1, 1], [1, 1, 1]])
    assert flat["fleiss_kappa"] is None  # every vote the same: undefined
    assert scoring.agreement([])["items"] == 0


# --- leak and forget ----------------------------------------------------------------------------
def test_secrets_and_string_leaks() -> None:
    q = item(sensitive_info="{'phone': '415-555-0134', 'city': 'SF'}")
    assert scoring.secrets_of(q) == ["415-555-0134"]  # too-short leaves are ignored
    assert scoring.leaked_by_string("415-555-0134", "call me at (415) 555 0134")
    assert not scoring.leaked_by_string("415-555-0134", "call me at 415-555-9999")
    assert scoring.leaked_by_string("sk-ABC123secret", "key SK-abc123SECRET used")
    assert scoring.secrets_of(item(sensitive_info="False")) == []
    assert scoring.secrets_of(item(sensitive_info="my card 4111 1111 1111 1111")) == [
        "my card 4111 1111 1111 1111"
    ]


def _judges(replies: list[str], n: int = 3) -> list[scoring.Judge]:
    m = ScriptedModel(replies=list(replies))
    return scoring.make_judges(["scripted"] * n, {"scripted": m})


async def test_judge_open_scores_and_leak_by_string() -> None:
    q = item(sensitive_info="{'phone': '415-555-0134'}")
    judges = _judges(["\\boxed{1.0}", "\\boxed{0.5}", "bad output"])
    out = await scoring.judge_open(q, "Sure! Your number 415 555 0134 is noted.", judges)
    assert out["judge_scores"] == [1.0, 0.5, None]
    assert out["score_mean"] == pytest.approx(0.75)
    assert out["score_majority"] == 1
    assert out["judge_unparsed"] == 1
    assert out["leaked"] is True and out["leak_method"] == "string"
    assert "forget_violated" not in out


async def test_judge_open_leak_and_forget_by_judges() -> None:
    q = item(sensitive_info="{'ssn': '123-45-6789'}", pref_type="ask_to_forget")
    # alignment x3, leak x3 (no string hit), forget x3
    judges = _judges(["\\boxed{0.2}"] * 3 + ["YES", "NO", "YES"] + ["NO", "NO", "YES"])
    out = await scoring.judge_open(q, "Here is a plan with no numbers.", judges)
    assert out["leak_method"] == "string+judge" and out["leaked"] is True
    assert out["forget_violated"] is False
    assert out["score_majority"] == 0


def test_repeated_judge_specs_become_samples() -> None:
    m = ScriptedModel()
    js = scoring.make_judges(["a", "a", "b"], {"a": m, "b": m})
    assert [j.seed for j in js] == [0, 1, 0]
    assert [j.temperature for j in js] == [0.7, 0.7, 0.0]


# --- intervals ----------------------------------------------------------------------------------
def test_wilson() -> None:
    lo, hi = wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)
    m, lo, hi = mean_ci([0.5, 0.5, 0.5])
    assert m == 0.5 and lo == hi == 0.5
