"""Defects of the memory path, each once reproduced on main: silent skips, the cap, forget."""

from __future__ import annotations

from pathlib import Path

import pytest
from memory_fakes import echo_model, word

from personamem.store import Memory

SENTENCES = [f"I enjoy {word(i)} {word(i + 100)} {word(i + 200)}." for i in range(16)]
LONG = " ".join(SENTENCES)
LAST = f"I enjoy {word(500)} {word(600)} {word(700)}."


def store(tmp_path: Path, chunk_tokens: int, **kw: object) -> Memory:
    return Memory(
        f"sqlite:///{tmp_path / 'm.db'}",
        echo_model(),
        chunk_tokens,
        5000,
        strategy="select",
        notes=False,
        **kw,
    )


@pytest.mark.parametrize(("first", "then"), [(40, 25), (25, 60), (40, 40)])
def test_changing_chunk_size_mid_message_skips_nothing(
    tmp_path: Path, first: int, then: int
) -> None:
    with store(tmp_path, first) as mem:
        mem.add([{"role": "user", "content": LONG}], user_id="u")
        info = mem.store.user("u")
        assert info is not None and info.cursor == 0 and info.cursor_part > 0  # inside LONG
    with store(tmp_path, then) as mem:
        mem.add([{"role": "user", "content": LAST}], user_id="u", update=False)
        mem.flush("u")
        text = mem.get("u").text
        assert mem.store.check() == []
    for sentence in SENTENCES:
        assert sentence.rstrip(".") in text, f"skipped: {sentence}"
    assert LAST.rstrip(".") in text
