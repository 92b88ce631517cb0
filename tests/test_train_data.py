"""Dataset building for ``personamem train``: writer and answer examples from a release folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personamem.memory.profile import profile_messages, profile_reply
from personamem.train.data import (
    HELD_OUT_PERSONAS,
    TrainDataError,
    build_examples,
    split_holdout,
    user_text,
)
from tests.conftest import make_row, write_release


def _snippet(*turns: tuple[str, str]) -> str:
    return json.dumps([{"role": r, "content": c} for r, c in turns])


@pytest.fixture
def release(tmp_path: Path) -> Path:
    rows = [
        make_row(
            0,
            0,
            preference="Enjoys trail running at dawn",
            related_conversation_snippet=_snippet(
                ("user", "Best shoes for muddy trails?"),
                ("assistant", "Try these."),
                ("user", "I head out before sunrise."),
            ),
        ),
        make_row(0, 1, preference="Her sister loves opera", who="others"),
        make_row(0, 2, preference="Wants to forget the diet", pref_type="ask_to_forget"),
        make_row(0, 3, preference="sensitive_info", pref_type=""),
        make_row(5, 4, preference="Prefers tea to coffee", updated="True", prev_pref="Coffee"),
        make_row(1, 5, preference="Dev persona preference"),  # dev persona: never used
        make_row(2, 6, preference="Sample persona preference"),
    ]
    return write_release(tmp_path / "rel", {"train": rows})


def test_writer_examples_follow_the_profile_prompt_and_rules(release: Path) -> None:
    ex = build_examples(release, personas=["0", "5"])
    by_target = {e.target: e for e in ex}
    # who=self: the preference as the profile line; prompt = the profile writer's own chat
    first = by_target[profile_reply("Enjoys trail running at dawn")]
    assert first.messages == profile_messages(
        "Best shoes for muddy trails?\n\nI head out before sunrise."
    )
    assert "Try these." not in first.messages[-1]["content"]  # assistant turns are not input
    # who=others -> none; updated -> the current preference
    assert profile_reply(None) in by_target
    assert profile_reply("Prefers tea to coffee") in by_target
    # ask_to_forget and placeholder rows are skipped; only personas 0 and 5
    assert len(ex) == 3
    assert all(e.persona_id in {"0", "5"} and e.kind == "writer" for e in ex)
    assert not any("forget" in e.target or "sensitive" in e.target for e in ex)


def test_answer_examples_end_in_the_boxed_correct_letter(release: Path) -> None:
    ex = build_examples(release, personas=["0"], kinds=["answer"])
    assert ex and all(e.kind == "answer" for e in ex)
    for e in ex:
        prompt = e.messages[-1]["content"]
        letter = e.target[-2]
        assert e.target.endswith(f"\\boxed{{{letter}}}")
        correct_line = next(line for line in prompt.splitlines() if line.startswith(f"{letter}. "))
        assert correct_line.startswith(f"{letter}. Correct answer")
        assert "What you know about me" in prompt


def test_held_out_personas_are_refused(release: Path) -> None:
    assert {"1", "2", "8", "493", "714"} <= HELD_OUT_PERSONAS
    for p in ("1", "2", "714"):
        with pytest.raises(TrainDataError, match="held out"):
            build_examples(release, personas=["0", p])
    with pytest.raises(TrainDataError, match="no rows"):
        build_examples(release, personas=["9"])


def test_user_text_keeps_text_parts_of_multimodal_turns() -> None:
    snippet = [
        {"role": "user", "content": [{"type": "image_url"}, {"type": "text", "text": "My cat!"}]},
        {"role": "assistant", "content": "Cute."},
        {"role": "user", "content": "  She is 3.  "},
    ]
    assert user_text(snippet) == "My cat!\n\nShe is 3."


def test_split_holdout_is_seeded_and_disjoint(release: Path) -> None:
    ex = build_examples(release, personas=["0", "5"])
    train, held = split_holdout(ex, 1, seed=3)
    assert len(held) == 1 and len(train) == len(ex) - 1
    assert {e.id for e in train}.isdisjoint({e.id for e in held})
    assert split_holdout(ex, 1, seed=3)[1][0].id == held[0].id
