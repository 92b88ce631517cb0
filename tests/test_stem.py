"""The stemmer behind content-word overlap (memory/merge.py): Snowball's English stemmer."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from personamem.memory.merge import content_words, overlap, stem


@pytest.mark.parametrize(
    "words",
    [
        ("practice", "practices", "practicing", "practiced"),
        ("run", "running", "runs"),
        ("study", "studies", "studied"),
        ("hike", "hiking", "hikes", "hiked"),
        ("swim", "swimming"),
    ],
)
def test_inflections_meet(words):
    assert len({stem(w) for w in words}) == 1, [stem(w) for w in words]


def test_different_words_stay_apart():
    assert stem("tea") != stem("team") and stem("cook") != stem("cool")


def test_overlap_across_inflections():
    assert overlap("I love running marathons", "Runs a marathon every year") == 1.0
    assert content_words("studies biology") == content_words("studying biology")


def test_stem_from_many_threads_at_once():
    """A Snowball stemmer keeps state while it works; each thread must get its own."""
    words = [
        f"{w}{suffix}" for w in ("practic", "walk", "read", "jump") for suffix in ("ing", "s", "ed")
    ]
    words = words * 1000
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: a shared stemmer fails at once
    try:
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(stem.__wrapped__, words))
    finally:
        sys.setswitchinterval(interval)
    assert got == [stem.__wrapped__(w) for w in words]
