"""memory-grpo: rollout assembly (causal memory updates, then the answer), reward sharing and
group-normalized advantages; the policy-gradient sign; SFT's reply-only loss."""

from __future__ import annotations

from pathlib import Path

import pytest

from personamem.train.memory_grpo import (
    NO_MEMORY,
    MemoryGRPOConfig,
    Rollout,
    Segment,
    Task,
    build_tasks,
    group_advantages,
    rollout,
    shared_segments,
)
from tests.conftest import make_row

TASK = Task(
    id="q1",
    chunks=["[0] user: CHUNK-ONE hiking", "[0] user: CHUNK-TWO opera"],
    question="QUESTION what to do?",
    options=["opt a", "opt b", "opt c", "opt d"],
    answer="C",
)


def _scripted(replies: list[str], seen: list[list[dict]]):
    def generate(messages: list[dict], max_new: int) -> tuple[list[int], list[int], str]:
        seen.append(messages)
        text = replies[len(seen) - 1]
        return [len(seen)] * 3, [7] * max(1, len(text.split())), text

    return generate


def test_rollout_is_causal_and_the_answer_sees_only_the_last_memory() -> None:
    seen: list[list[dict]] = []
    replies = ["- Likes hiking", "- Likes hiking\n- Likes opera", "Opera fits. \\boxed{c}"]
    r = rollout(TASK, _scripted(replies, seen), MemoryGRPOConfig(data=""))
    assert [s.kind for s in r.segments] == ["update", "update", "answer"]
    first, second, answer = (m[-1]["content"] for m in seen)
    # update i sees chunk i and the memory of update i-1, never a later chunk nor the question
    assert NO_MEMORY in first and "CHUNK-ONE" in first
    assert "CHUNK-TWO" not in first and "QUESTION" not in first
    assert "CHUNK-TWO" in second and "- Likes hiking" in second and "CHUNK-ONE" not in second
    assert "QUESTION" not in second
    # the answer sees the final memory and the question, not the chunks
    assert "- Likes opera" in answer and "QUESTION" in answer and "CHUNK" not in answer
    assert r.memories == replies[:2]
    assert r.reward == 1.0  # last box, lowercase c == C


def test_rollout_without_a_box_gets_no_reward() -> None:
    r = rollout(TASK, _scripted(["m1", "m2", "C"], []), MemoryGRPOConfig(data=""))
    assert r.reward == 0.0


def test_group_advantages_normalize_over_the_group() -> None:
    adv = group_advantages([1.0, 0.0, 0.0, 1.0])
    assert adv == pytest.approx([1.0, -1.0, -1.0, 1.0], abs=1e-3)
    assert group_advantages([1.0, 1.0, 1.0]) == [0.0, 0.0, 0.0]  # no signal when all agree
    assert sum(group_advantages([0.2, 0.9, 0.4])) == pytest.approx(0.0, abs=1e-9)


def _rollout(reward: float, k: int) -> Rollout:
    segs = [Segment(kind="update", prompt_ids=[1], completion_ids=[2], text="m") for _ in range(k)]
    segs.append(Segment(kind="answer", prompt_ids=[1], completion_ids=[3], text="a"))
    return Rollout(segments=segs, memories=["m"] * k, answer="a", reward=reward)


def test_every_generation_of_a_rollout_shares_its_advantage() -> None:
    group = [_rollout(1.0, 2), _rollout(0.0, 2), _rollout(0.0, 2), _rollout(0.0, 2)]
    pairs = shared_segments(group)
    assert len(pairs) == 4 * 3  # K updates + 1 answer per rollout, each its own context
    adv = group_advantages([1.0, 0.0, 0.0, 0.0])
    for i in range(4):
        assert {a for _, a in pairs[3 * i : 3 * i + 3]} == {adv[i]}
    assert pairs[0][1] > 0 > pairs[3][1]


def test_build_tasks_mixes_the_questions_snippet_with_other_snippets_of_the_persona() -> None:
    import json

    from personamem.data.loader import parse_row

    def row(p: str, n: int):  # noqa: ANN202
        snippet = json.dumps([{"role": "user", "content": f"SNIP-{p}-{n}"}])
        return parse_row(make_row(p, n, related_conversation_snippet=snippet), "train", n)

    items = [row("0", n) for n in range(4)] + [row("5", 10), row("5", 11)]
    tasks = build_tasks(items, chunks=2, seed=1)
    assert len(tasks) == 6
    for t, q in zip(tasks, items, strict=True):
        assert len(t.chunks) == 2
        assert sum(f"SNIP-{q.persona_id}-{q.row}" in c for c in t.chunks) == 1
        assert all(f"SNIP-{q.persona_id}-" in c for c in t.chunks)  # same persona only
        assert t.options[ord(t.answer) - ord("A")] == q.correct_answer
    assert build_tasks(items, chunks=3, seed=1)[-1].id == items[3].id  # persona 5 has too few


# --- torch parts on the tiny model ---------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    pytest.importorskip("peft")
    from personamem.train.hf import LoraSettings, load_for_training
    from tests.train_fixtures import make_tiny_model

    folder = make_tiny_model(Path(tmp_path_factory.mktemp("tiny")) / "hf")
    return load_for_training(folder, LoraSettings(r=4, alpha=8, dropout=0.0))


def test_policy_gradient_raises_logp_for_positive_advantage(tiny) -> None:  # noqa: ANN001
    import torch

    from personamem.train.memory_grpo import policy_loss

    model, _ = tiny
    seg = Segment(kind="answer", prompt_ids=[5, 17, 40], completion_ids=[99, 3], text="")
    for adv, sign in ((1.0, 1), (-1.0, -1)):
        state = {k: v.clone() for k, v in model.state_dict().items() if "lora_" in k}
        before = -float(policy_loss(model, seg, 1.0))  # mean log p of the completion
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
        policy_loss(model, seg, adv).backward()
        opt.step()
        opt.zero_grad()
        after = -float(policy_loss(model, seg, 1.0))
        assert sign * (after - before) > 0
        model.load_state_dict(state, strict=False)


def test_sft_loss_is_on_the_reply_only_and_the_prefix_cache_is_exact(tiny) -> None:  # noqa: ANN001
    import torch

    from personamem.memory.profile import profile_messages, profile_reply
    from personamem.train.hf import encode_example
    from personamem.train.sft import reply_loss, shared_prefix

    model, tok = tiny
    model.eval()
    a = encode_example(tok, profile_messages("I love hiking."), profile_reply("Likes hiking"))
    b = encode_example(tok, profile_messages("Tuesday works."), profile_reply(None))
    ids, labels = a
    reply = tok.decode([x for x in labels if x != -100])
    assert reply == '{"profile": "Likes hiking"}<|im_end|>\n'
    assert tok.decode(ids[: labels.index(next(x for x in labels if x != -100))]).endswith(
        "<|im_start|>assistant\n"
    )
    prefix = shared_prefix([a[0], b[0]])
    assert 0 < len(prefix) < labels.index(next(x for x in labels if x != -100))
    with torch.no_grad():
        full = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss
        mine = reply_loss(model, ids, labels)
        cached = reply_loss(model, ids, labels, len(prefix))
    assert float(mine) == pytest.approx(float(full), rel=1e-5)
    assert float(cached) == pytest.approx(float(full), rel=1e-4)
    model.train()
