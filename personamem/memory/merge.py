"""Deterministic helpers of the memory update: word overlap, forget requests, JSON salvage."""

from __future__ import annotations

import json
import re
from typing import Any

STOP = set(
    """a an the and or but of to in on at for with from by about as is are was were be been being
    i me my mine myself you your user users they them their he she his her it its this that these
    those which who whom what when where how why not no do does did have has had will would can
    could should may might must shall also very really just more most some any all each every
    other than then so such too into over under again further once here there both few own same
    prefer prefers preferred like likes liked enjoy enjoys enjoyed love loves usually often
    sometimes always never regularly now currently lately please forget remember that preference
    preferences""".split()
)


def stem(word: str) -> str:
    """Crude suffix stripping so "practice", "practices" and "practicing" meet."""
    for suf in ("ing", "ies", "es", "ed", "s"):
        if len(word) > len(suf) + 3 and word.endswith(suf):
            word = word[: -len(suf)]
            break
    return word[:-1] if len(word) > 4 and word.endswith("e") else word


def content_words(text: str) -> set[str]:
    return {stem(w) for w in re.findall(r"[a-z][a-z'\-]+", text.lower()) if w not in STOP}


def overlap(a: str, b: str) -> float:
    """Overlap coefficient of content words: |A∩B| / min(|A|, |B|) (0 when either is empty)."""
    wa, wb = content_words(a), content_words(b)
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / min(len(wa), len(wb))


_FORGET = re.compile(
    r"(?i)\b(?:please\s+|kindly\s+|can you\s+|could you\s+)?(?:forget|delete|erase|remove)\b"
    r"(?:\s+(?:that|about|the fact that|the preference|my preference|the detail that|"
    r"everything about|what i said about|that i told you))*\s*(?P<what>[^.!?\n]{3,200})"
)
_FORGET_CUE = re.compile(
    r"(?i)(?:^\W*(?:please\s+|kindly\s+|(?:can|could|would) you\s+(?:please\s+)?)?"
    r"(?:forget|erase|delete|remove)\b|\bdon'?t remember\b|\bstop remembering\b"
    r"|\bfrom your memory\b|\b(?:please|kindly) forget\b)"
)


def forget_request(text: str) -> str | None:
    """The statement a "please forget that I ..." message asks to drop, or None.

    Only short messages that are themselves a forget request count, so "I forget my keys a lot"
    or a long email that mentions forgetting is not taken as a request.
    """
    if len(text) > 400 or not _FORGET_CUE.search(text):
        return None
    m = _FORGET.search(text)
    if not m:
        return None
    what = re.sub(r"(?i)\s*(?:from your memory|from memory|please)\s*$", "", m.group("what"))
    return what.strip(" .,:;\"'") or None


def salvage_json(text: str, key: str) -> list[Any] | None:
    """``obj[key]`` from model output, tolerating truncation: complete items are kept."""
    try:
        obj = json.loads(text)
        if isinstance(obj, dict) and isinstance(obj.get(key), list):
            return obj[key]
        return None
    except json.JSONDecodeError:
        pass
    start = text.find("[")
    if start < 0:
        return None
    dec = json.JSONDecoder()
    items: list[Any] = []
    pos = start + 1
    while pos < len(text):
        while pos < len(text) and text[pos] in " \n\r\t,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            break
        try:
            item, pos = dec.raw_decode(text, pos)
        except json.JSONDecodeError:
            break
        items.append(item)
    return items
