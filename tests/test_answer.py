"""Answer parsing, the MCQ answerer (rotation debiasing, generate and vote) and fit_history."""

from __future__ import annotations

import math
import random
import re
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from personamem.answer import LETTERS, Answerer, fit_history, parse_choice
from personamem.models import ScriptedModel
from personamem.models.base import Message

# --- parse_choice -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"\boxed{b}", 1),
        (r"\boxed{(C)}", 2),
        (r"\boxed{ D }", 3),
        (r"First \boxed{A}, then on reflection \boxed{D}", 3),
        ("Final Answer: B", 1),
        ("final answer: **C**", 2),
        ("The answer is (D).", 3),
        ("The answer is c", 2),
        ("Answer: [A]", 0),
        ("B", 1),
        ("B.", 1),
        ("(B)", 1),
        ("  b \n", 1),
        ("d.", 3),
        ("**C**", 2),
        ("C) Because you like hiking.", 2),
        ("A. Wear athleisure to brunch", 0),
        ("I think B fits you best.", 1),
        ("Given your love of hiking, option C suits you.", 2),
        ("Answer: (C) since you mentioned Seattle", 2),
        ("Final Answer: \\boxed{B}", 1),
        (r"\boxed{E} is not an option, so B", 1),
    ],
)
def test_parse_choice_finds_the_letter(text, expected):
    assert parse_choice(text, 4) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I don't know.",
        "None of these suit me.",
        "I cannot decide between them",
        "E",
        "Final Answer: E",
        r"\boxed{F}",
        "The answer is (G).",
    ],
)
def test_parse_choice_none_when_no_valid_letter(text):
    assert parse_choice(text, 4) is None


def test_parse_choice_respects_number_of_options():
    assert parse_choice("C", 2) is None
    assert parse_choice(r"\boxed{C}", 2) is None
    assert parse_choice("B", 2) == 1
    assert parse_choice("E", 5) == 4
    assert parse_choice("Final Answer: J", 10) == 9


@given(
    letter=st.sampled_from(LETTERS[:4]),
    lower=st.booleans(),
    before=st.text(alphabet="xyz .,:\n", max_size=30).map(lambda t: t + "\n"),
    after=st.text(alphabet="xyz .,\n", max_size=30).map(lambda t: " " + t),
    form=st.sampled_from(
        [r"\boxed{%s}", r"\boxed{(%s)}", "Final Answer: %s", "The answer is (%s)."]
    ),
)
def test_parse_choice_any_surrounding_text(letter, lower, before, after, form):
    shown = letter.lower() if lower else letter
    assert parse_choice(before + form % shown + after, 4) == LETTERS.index(letter)


# --- the answerer: scoring with rotations ---------------------------------------------------------

OPTIONS = [
    "Grab a classic latte at a big chain cafe.",
    "Try the pour-over at the small roaster near your hiking trail.",
    "Make instant coffee at home to save time.",
    "Order an energy drink from the vending machine.",
]
CORRECT = 1


def shown_options(messages: list[Message]) -> list[str]:
    """The options in the order the prompt shows them (lines 'A. ...')."""
    return re.findall(r"^[A-J]\. (.*)$", messages[-1]["content"], flags=re.M)


def biased_scorer(position_bias: float = 5.0, bonus: float = 1.0):
    """Prefers whatever sits at position A, plus a smaller bonus for the truly correct option."""

    def score(messages: list[Message], choices: list[str]) -> list[float]:
        shown = shown_options(messages)
        assert len(shown) == len(choices)
        return [
            (position_bias if p == 0 else 0.0) + (bonus if shown[p] == OPTIONS[CORRECT] else 0.0)
            for p in range(len(choices))
        ]

    return score


async def test_rotation_removes_position_bias():
    model = ScriptedModel(choice_scores=biased_scorer())
    a = await Answerer(model).mcq("Where should I get coffee?", OPTIONS, memory="- Likes hiking")
    assert a.method == "score"
    assert a.choice == CORRECT
    assert a.letter == "B" and a.text == OPTIONS[CORRECT]
    assert len(a.raw) == 4 and len(model.calls) == 4
    assert len(a.scores) == 4 and max(a.scores) == a.scores[CORRECT]
    # every option was shown at every position once
    positions = {o: set() for o in OPTIONS}
    for call in model.calls:
        for p, o in enumerate(shown_options(call)):
            positions[o].add(p)
    assert all(ps == {0, 1, 2, 3} for ps in positions.values())


async def test_without_rotation_the_bias_wins():
    """The same scorer with one rotation picks position A: the test above is not vacuous."""
    model = ScriptedModel(choice_scores=biased_scorer())
    a = await Answerer(model, rotations=1).mcq("Where should I get coffee?", OPTIONS)
    assert a.choice == 0


@pytest.mark.parametrize("correct", range(4))
async def test_choice_refers_to_options_as_given(correct):
    def score(messages, choices):
        return [3.0 if o == OPTIONS[correct] else 0.0 for o in shown_options(messages)]

    a = await Answerer(ScriptedModel(choice_scores=score)).mcq("q", OPTIONS)
    assert a.choice == correct and a.text == OPTIONS[correct] and a.letter == LETTERS[correct]


async def test_prompt_carries_context_and_options():
    model = ScriptedModel(choice_scores=lambda m, c: [0.0] * len(c))
    a = await Answerer(model).mcq("Where should I get coffee?", OPTIONS, memory="- Hikes a lot")
    first = model.calls[0]
    assert first[0]["role"] == "system"
    assert "- Hikes a lot" in first[-1]["content"]
    assert "Where should I get coffee?" in first[-1]["content"]
    assert shown_options(first) == OPTIONS  # rotation 0 shows them as given
    assert a.prompt == first[-1]["content"]


async def test_score_method_requires_a_scoring_backend():
    with pytest.raises(ValueError, match="cannot score"):
        await Answerer(ScriptedModel(), method="score").mcq("q", OPTIONS)
    with pytest.raises(ValueError):
        await Answerer(ScriptedModel()).mcq("q", ["only one"])


# --- the answerer: generate and vote -------------------------------------------------------------


def letter_of_correct(messages: list[Message]) -> str:
    return LETTERS[shown_options(messages).index(OPTIONS[CORRECT])]


@pytest.mark.parametrize(
    "template", [r"\boxed{%s}", "Final Answer: %s", "%s", "The answer is (%s).", "%s."]
)
async def test_generate_path_parses_and_votes(template):
    model = ScriptedModel(default=lambda m: template % letter_of_correct(m))
    a = await Answerer(model).mcq("Where should I get coffee?", OPTIONS)
    assert a.method == "generate"
    assert a.choice == CORRECT and a.text == OPTIONS[CORRECT]
    assert a.scores == [0.0, 4.0, 0.0, 0.0]  # four rotations, four votes for the same option
    assert len(a.raw) == 4
    assert a.tokens_in > 0


async def test_generate_majority_vote_maps_positions_back():
    replies = iter(["B", "garbage", "B", "A"])  # rotation r shows option (p + r) % 4 at p
    model = ScriptedModel(default=lambda m: next(replies))
    a = await Answerer(model, method="generate").mcq("q", OPTIONS)
    # r=0: B -> option 1; r=1: none; r=2: B -> option 3; r=3: A -> option 3
    assert a.choice == 3
    assert a.scores == [0.0, 1.0, 0.0, 2.0]


async def test_generate_unparseable_gives_no_choice():
    model = ScriptedModel(default="I really cannot say.")
    a = await Answerer(model).mcq("q", OPTIONS)
    assert a.choice is None and a.letter is None
    assert a.text == "I really cannot say."


async def test_open_answer():
    model = ScriptedModel(replies=["  Try the small roaster near the trail.  "])
    a = await Answerer(model).open("Where should I get coffee?", memory="- Hikes a lot")
    assert a.text == "Try the small roaster near the trail."
    assert "- Hikes a lot" in model.calls[0][-1]["content"]
    assert a.method == "generate"


async def test_history_context_is_prior_turns():
    hist = [
        {"role": "system", "content": "persona"},
        {"role": "user", "content": "I love hiking."},
        {"role": "assistant", "content": "Nice!"},
    ]
    model = ScriptedModel(default="B")
    await Answerer(model, rotations=1).mcq("q", OPTIONS, history=hist)
    call = model.calls[0]
    assert call[:3] == hist and len(call) == 4
    assert call[-1]["role"] == "user" and "q" in call[-1]["content"]


# --- fit_history ----------------------------------------------------------------------------------


def numbered_history(n: int, system: bool = True) -> list[Message]:
    msgs: list[Message] = [{"role": "system", "content": "You help a user. " * 3}] if system else []
    for i in range(n):
        role = "user" if i % 2 == 0 else "assistant"
        text = f"Message number {i} says something about topic {i}."
        msgs.append({"role": role, "content": text})
    return msgs


def test_fit_history_everything_fits():
    model = ScriptedModel()
    msgs = numbered_history(10)
    out, dropped = fit_history(msgs, model, 10_000)
    assert out == msgs and dropped == 0


@pytest.mark.parametrize("budget", [60, 100, 200, 333])
def test_fit_history_keeps_most_recent(budget):
    model = ScriptedModel()
    msgs = numbered_history(40)
    total = model.count_message_tokens(msgs)
    out, dropped = fit_history(msgs, model, budget)
    assert out[0] == msgs[0]  # the system message is kept
    kept = out[1:]
    assert kept == msgs[len(msgs) - len(kept) :]  # a suffix: the most recent messages
    assert model.count_message_tokens(out) <= budget
    assert dropped == total - model.count_message_tokens(out) > 0
    # as many as possible: one more message would not have fitted
    more = [msgs[0], *msgs[len(msgs) - len(kept) - 1 :]]
    assert model.count_message_tokens(more) + len(more) > budget


def test_fit_history_without_system():
    model = ScriptedModel()
    msgs = numbered_history(20, system=False)
    out, dropped = fit_history(msgs, model, 80)
    assert out and out == msgs[len(msgs) - len(out) :]
    assert model.count_message_tokens(out) <= 80 and dropped > 0


def test_fit_history_system_larger_than_budget():
    """The system message is kept only when it fits: the result never exceeds the budget."""
    model = ScriptedModel()
    msgs = [{"role": "system", "content": "persona detail " * 100}, *numbered_history(6, False)]
    out, dropped = fit_history(msgs, model, 50)
    assert model.count_message_tokens(out) <= 50
    assert dropped == model.count_message_tokens(msgs) - model.count_message_tokens(out)


@pytest.mark.parametrize("start, budget", [(0, 2000), (0, 8000), (1, 2000), (1, 8000)])
def test_fit_history_with_the_real_tokenizer(local_model, sample_history, start, budget):
    """With the embedded model's chat template the kept messages must fit the budget too."""
    msgs = sample_history[start:]
    out, dropped = fit_history(msgs, local_model, budget)
    assert out and dropped > 0
    assert local_model.count_message_tokens(out) <= budget


# --- position bias over HTTP (generate and vote) and its tie-break -------------------------------


def option_sets(k: int) -> list[list[str]]:
    return [[f"Option {j} of question {q}" for j in range(4)] for q in range(k)]


async def test_always_b_model_gets_no_position_advantage():
    """A model that always answers "B" votes once for every option (one rotation puts each
    option at B): a four-way tie. The tie is drawn from the question, so over many questions
    every original position wins sometimes (before, the option first at B always won)."""
    choices = []
    for opts in option_sets(40):
        model = ScriptedModel(default="B")
        a = await Answerer(model, method="generate").mcq("Which one?", opts)
        assert a.scores == [1.0, 1.0, 1.0, 1.0]
        assert a.tied == [0, 1, 2, 3] and a.tie_seed is not None
        assert a.choice == random.Random(a.tie_seed).choice(a.tied)  # reproducible from the answer
        choices.append(a.choice)
    counts = Counter(choices)
    assert set(counts) == {0, 1, 2, 3}, counts
    assert max(counts.values()) <= 20, counts  # no position takes half of the questions


async def test_tie_break_is_stable_and_independent_of_position_labels():
    opts = OPTIONS
    a1 = await Answerer(ScriptedModel(default="C"), method="generate").mcq("q", opts)
    a2 = await Answerer(ScriptedModel(default="C"), method="generate").mcq("q", opts)
    assert (a1.choice, a1.tie_seed) == (a2.choice, a2.tie_seed)  # same question, same draw
    # a model that always says "A" ties the same options: the draw does not depend on the letter
    a3 = await Answerer(ScriptedModel(default="A"), method="generate").mcq("q", opts)
    assert a3.choice == a1.choice and a3.tied == a1.tied


async def test_no_tie_records_nothing():
    model = ScriptedModel(default=lambda m: letter_of_correct(m))
    a = await Answerer(model, method="generate").mcq("q", OPTIONS)
    assert a.choice == CORRECT and a.tied == [] and a.tie_seed is None


async def test_partial_tie_draws_only_among_the_tied():
    replies = iter(["A", "A", "garbage", "garbage"])  # r=0: A -> option 0; r=1: A -> option 1
    model = ScriptedModel(default=lambda m: next(replies))
    a = await Answerer(model, method="generate").mcq("q", OPTIONS)
    assert a.scores == [1.0, 1.0, 0.0, 0.0] and a.tied == [0, 1] and a.choice in (0, 1)


# --- the likelihood method: context minus baseline ---------------------------------------------


def pmi_scorer(fluent: int, supported: int):
    """Option ``fluent`` is the most probable with or without context (generic, fluent);
    option ``supported`` gains the most log-probability from the context."""

    def score(messages: list[Message], continuations: list[str]) -> list[tuple[float, int]]:
        with_context = "Context" in messages[-1]["content"] or "- Hikes" in messages[-1]["content"]
        out = []
        for i, _ in enumerate(continuations):
            base = -10.0 - i  # option 0 most fluent, then 1, 2, 3
            if i == fluent:
                base = -2.0
            gain = 6.0 if (with_context and i == supported) else (1.0 if with_context else 0.0)
            out.append((base + gain, 5))
        return out

    return score


async def test_likelihood_uses_context_minus_baseline():
    """The fluent option wins on raw log-probability; the option the context supports wins on
    the gain over the context-free prompt. Scoring by the raw value fails this test."""
    model = ScriptedModel(continuation_scores=pmi_scorer(fluent=0, supported=2))
    a = await Answerer(model, method="likelihood").mcq("q", OPTIONS, memory="- Hikes a lot")
    assert a.method == "likelihood"
    assert a.choice == 2, a.scores
    assert a.scores == pytest.approx([1.0, 1.0, 6.0, 1.0])
    assert len(model.calls) == 2  # with context, then the bare baseline
    assert "- Hikes a lot" in model.calls[0][-1]["content"]
    assert "- Hikes a lot" not in model.calls[1][-1]["content"]


async def test_likelihood_without_context_is_mean_per_token():
    def score(messages, continuations):
        # option 1 has the higher total, option 3 the higher mean per token
        return [(-30.0, 10), (-8.0, 2), (-40.0, 10), (-9.0, 6)]

    model = ScriptedModel(continuation_scores=score)
    a = await Answerer(model, method="likelihood").mcq("q", OPTIONS)
    assert a.choice == 3 and len(model.calls) == 1
    assert a.scores == pytest.approx([-3.0, -4.0, -4.0, -1.5])


async def test_likelihood_falls_back_to_letters_in_auto():
    model = ScriptedModel(default="B")
    a = await Answerer(model).mcq("q", OPTIONS)
    assert a.method == "generate"
    with pytest.raises(ValueError, match="cannot score text"):
        await Answerer(ScriptedModel(), method="likelihood").mcq("q", OPTIONS)


# --- exact numbers and accounting (found by mutation testing) ------------------------------------


async def test_letter_totals_are_summed_log_softmax():
    """Each rotation's letter scores are normalised (log-softmax) and added to the option shown
    at that letter: the totals are exact log-probabilities."""
    raw = [2.0, 0.5, -1.0, 0.0]  # the same letter scores in every rotation

    model = ScriptedModel(choice_scores=lambda m, c: list(raw))
    a = await Answerer(model).mcq("q", OPTIONS)
    z = math.log(sum(math.exp(x) for x in raw))
    per_letter = [x - z for x in raw]
    # every option sat at every letter once, so every total is the same sum
    assert a.scores == pytest.approx([sum(per_letter)] * 4)
    assert all(s < 0 for s in a.scores)
    assert a.tied == [0, 1, 2, 3]  # a pure position preference carries no information
    assert a.raw[0] == "A:2.000 B:0.500 C:-1.000 D:0.000"
    assert a.tokens_out == 0 and a.prompt.count("A. ") == 1


async def test_letter_totals_with_one_rotation():
    model = ScriptedModel(choice_scores=lambda m, c: [0.0, math.log(3.0), 0.0, 0.0])
    a = await Answerer(model, rotations=1).mcq("q", OPTIONS)
    assert a.scores == pytest.approx(
        [math.log(1 / 6), math.log(3 / 6), math.log(1 / 6), math.log(1 / 6)]
    )
    assert a.choice == 1 and a.tied == []


async def test_generate_settings_are_greedy_and_short():
    model = ScriptedModel(default="B")
    await Answerer(model, method="generate", rotations=2).mcq("q", OPTIONS)
    assert [s["temperature"] for s in model.settings] == [0.0, 0.0]
    assert [s["max_tokens"] for s in model.settings] == [16, 16]
    model = ScriptedModel(default="An answer.")
    await Answerer(model, max_tokens=77).open("q")
    assert model.settings == [
        {"max_tokens": 77, "temperature": 0.0, "json_schema": None, "stop": None, "seed": None}
    ]


async def test_open_answer_accounting():
    model = ScriptedModel(default="Try the roaster near the trail.")
    a = await Answerer(model).open("Where to?", memory="- Hikes")
    assert a.raw == ["Try the roaster near the trail."]
    assert a.tokens_in == model.usage.tokens_in > 0
    assert a.tokens_out == model.count_tokens("Try the roaster near the trail.")
    assert a.prefill_tokens == model.usage.prefill_tokens
    assert a.prompt == model.calls[0][-1]["content"] and "Where to?" in a.prompt
    assert a.seconds >= 0 and a.choice is None and a.letter is None


async def test_likelihood_answer_accounting():
    def score(messages, continuations):
        return [(-1.0 * (i + 1), 2) for i in range(len(continuations))]

    model = ScriptedModel(continuation_scores=score)
    a = await Answerer(model).mcq("q", OPTIONS)
    assert a.method == "likelihood" and a.choice == 0 and a.letter == "A"
    assert a.text == OPTIONS[0]
    assert a.scores == pytest.approx([-0.5, -1.0, -1.5, -2.0])
    assert a.raw == ["A:-0.500", "B:-1.000", "C:-1.500", "D:-2.000"]
    assert a.tokens_out == 0 and a.prompt == model.calls[0][-1]["content"]
    # continuations are scored stripped
    seen: list[list[str]] = []

    def spy(messages, continuations):
        seen.append(list(continuations))
        return [(0.0, 1)] * len(continuations)

    await Answerer(ScriptedModel(continuation_scores=spy)).mcq("q", ["  a  ", "b "])
    assert seen == [["a", "b"]]


def test_fit_history_exactly_at_the_budget_keeps_everything():
    model = ScriptedModel()
    msgs = numbered_history(6)
    total = model.count_message_tokens(msgs)
    assert fit_history(msgs, model, total) == (msgs, 0)
    out, dropped = fit_history(msgs, model, total - 1)
    assert dropped > 0 and out[0] == msgs[0]


def test_fit_history_keeps_a_system_message_of_half_the_budget():
    model = ScriptedModel()
    system = {"role": "system", "content": "word " * 20}
    msgs = [system, *numbered_history(30, system=False)]
    half = model.count_message_tokens([system])
    out, _ = fit_history(msgs, model, 2 * half)
    assert out[0] == system  # exactly half the budget: kept
    out, _ = fit_history(msgs, model, 2 * half - 2)
    assert out[0] != system  # more than half: dropped
