"""Reward functions of ``personamem train grpo``: MCQ exact match and the LLM-judge reward."""

from __future__ import annotations

import pytest

from personamem.models import ModelError, ScriptedModel
from personamem.train.rewards import JudgeReward, boxed_letter, mcq_reward, mcq_score


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("The answer is B.", None),  # no box: no letter, even with a letter in the text
        ("", None),
        ("\\boxed{A} ... on reflection \\boxed{C}", "C"),  # several boxes: the last one
        ("\\boxed{b}", "B"),  # lowercase counts
        ("\\boxed{ (d) }", "D"),
        ("\\boxed{}", None),
        ("\\boxed{AB}", None),
        ("\\boxed{0.5}", None),
    ],
)
def test_boxed_letter_edge_cases(text: str, letter: str | None) -> None:
    assert boxed_letter(text) == letter


def test_mcq_score_exact_match_on_last_box() -> None:
    assert mcq_score("I think \\boxed{B}", "B") == 1.0
    assert mcq_score("I think \\boxed{B}", "b") == 1.0
    assert mcq_score("\\boxed{B} no wait \\boxed{A}", "B") == 0.0
    assert mcq_score("B", "B") == 0.0  # no box, no reward
    assert mcq_score("\\boxed{c}", "C") == 1.0


def test_mcq_reward_trl_signature_and_task_mix() -> None:
    completions = [
        [{"role": "assistant", "content": "\\boxed{A}"}],  # conversational completion
        "\\boxed{B}",
        "\\boxed{C}",
    ]
    out = mcq_reward(
        prompts=["p"] * 3,
        completions=completions,
        answer=["A", "A", "C"],
        task=["mcq", "mcq", "open"],
    )
    assert out == [1.0, 0.0, None]


def _rows(n: int) -> dict:
    return {
        "query": ["What should I cook?"] * n,
        "preference": ["Loves homemade pizza nights"] * n,
        "reference": ["Host a pizza night."] * n,
    }


def test_judge_reward_mean_of_judges_and_none_for_mcq_rows() -> None:
    a = ScriptedModel(default="Fits well. \\boxed{1.0}")
    b = ScriptedModel(default="Generic. \\boxed{0.5}")
    reward = JudgeReward([a, b])
    out = reward(
        prompts=["p", "p"], completions=["Pizza!", "\\boxed{A}"], task=["open", "mcq"], **_rows(2)
    )
    assert out == [0.75, None]
    assert len(a.calls) == 1 and "Pizza!" in a.calls[0][-1]["content"]
    assert "Loves homemade pizza nights" in a.calls[0][-1]["content"]


def test_judge_failures_give_none_or_the_other_judges_score() -> None:
    broken = ScriptedModel(default=ModelError("timeout"))
    unparsable = ScriptedModel(default="I cannot decide.")
    ok = ScriptedModel(default="\\boxed{0.0}")
    assert JudgeReward([broken, unparsable])(["p"], ["x"], task=["open"], **_rows(1)) == [None]
    assert JudgeReward([broken, ok])(["p"], ["x"], task=["open"], **_rows(1)) == [0.0]
    # several calls reuse one event loop (model locks are bound to it)
    reward = JudgeReward([ok])
    assert reward(["p"], ["x"], task=["open"], **_rows(1)) == [0.0]
    assert reward(["p"], ["x"], task=["open"], **_rows(1)) == [0.0]


def test_judge_reward_needs_a_judge() -> None:
    with pytest.raises(ValueError, match="judge"):
        JudgeReward([])
