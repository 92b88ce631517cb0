"""Deterministic helpers of the memory update: word overlap, forget requests, JSON salvage."""

from __future__ import annotations

import functools
import json
import re
import threading
from typing import Any

import snowballstemmer

STOP = set(
    """a an the and or but of to in on at for with from by about as is are was were be been being
    i me my mine myself you your user users they them their he she his her it its this that these
    those which who whom what when where how why not no do does did have has had will would can
    could should may might must shall also very really just more most some any all each every
    other than then so such too into over under again further once here there both few own same
    prefer prefers preferred like likes liked enjoy enjoys enjoyed love loves usually often
    sometimes always never regularly now currently lately please forget remember that preference
    preferences""".split()
) | set(
    # Verbs and nouns that start or pad notes whatever their topic ("Takes ...", "Uses ...",
    # "Asked about ..."): sharing one says nothing. Measured on the real sample, a forget request
    # for "I take martial arts classes" otherwise matched every "Takes ..." note.
    """take takes took taking taken keep keeps kept keeping use uses used using feel feels felt
    feeling make makes made making go goes went going get gets got getting find finds found
    finding try tries tried trying want wants wanted wanting need needs needed needing ask asks
    asked asking thing things way ways lot lots time times day days instead anymore longer
    switched stopped quit""".split()
)


_STEMMERS = threading.local()  # a Snowball stemmer keeps state while it works: one per thread


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The Snowball (Porter 2) English stem, so "practice", "practices" and "practicing" meet."""
    stemmer = getattr(_STEMMERS, "english", None)
    if stemmer is None:
        stemmer = _STEMMERS.english = snowballstemmer.stemmer("english")
    return stemmer.stemWord(word)


def content_words(text: str) -> set[str]:
    return {stem(w) for w in re.findall(r"[a-z][a-z'\-]+", text.lower()) if w not in STOP}


FORGET_MATCH = 0.6
"""Word overlap from which a memory line counts as the thing a user asked to forget."""


def overlap(a: str, b: str) -> float:
    """Overlap coefficient of content words: |A∩B| / min(|A|, |B|) (0 when either is empty)."""
    wa, wb = content_words(a), content_words(b)
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / min(len(wa), len(wb))


# --- updates ------------------------------------------------------------------------------------
_CHANGE = re.compile(
    r"(?i)\b(?:now|no\s+longer|not\s+anymore|anymore|any\s+more|stopped|quit|gave\s+up|"
    r"switched|moved|changed|became|become|instead|used\s+to|these\s+days|nowadays|"
    r"lost\s+interest|not\s+into|(?:don'?t|do\s+not)\s+(?:like|enjoy|want)\s+.{0,30}\s+any)\b"
)


def announces_change(text: str) -> bool:
    """Whether a statement says something changed ("I quit coffee", "no longer", "switched to",
    "these days"): only such a statement may make an older note out of date. Measured with
    Qwen2.5-1.5B, the yes/no replacement question alone said yes to unrelated notes of the same
    topic ("Uses Ubuntu" replaced by "Uses cloud-based tools")."""
    return bool(_CHANGE.search(text))


# --- forget requests ---------------------------------------------------------------------------
_FORGET_VERB = (
    r"(?:forget|erase|delete|remove|drop|wipe|stop\s+remembering|unlearn"
    r"|(?:don'?t|do\s+not|no\s+longer)\s+(?:remember|keep\s+track\s+of|store|keep|save|record))"
)
_FORGET = re.compile(
    r"(?is)^\W*(?:(?:ok(?:ay)?|hey|also|and|actually|so)\W+)*(?:please\s+|kindly\s+|just\s+)?"
    r"(?:(?:can|could|would|will)\s+you\s+(?:please\s+)?|i(?:'d|\s+would)\s+like\s+you\s+to\s+"
    r"|i\s+(?:want|need)\s+you\s+to\s+)?(?:please\s+)?" + _FORGET_VERB + r"\b"
    r"(?P<rest>.*)$"
)
_LEAD = re.compile(
    r"(?i)^\s*(?:(?:from\s+(?:your\s+)?memory|everything|all|about|that|the\s+fact\s+that"
    r"|what\s+i\s+(?:said|told\s+you|mentioned|shared)\s+(?:about|regarding)"
    r"|the\s+(?:preference|detail|info(?:rmation)?|note|part)\s+(?:about|that|regarding|on)"
    r"|my\s+preference\s+(?:for|about|regarding|of)|(?:any|all)\s+(?:info(?:rmation)?|mention)\s+"
    r"(?:about|of))\b\s*)+"
)
_TAIL = re.compile(
    r"(?i)\s*(?:,?\s*(?:please|thanks|thank\s+you|anymore|any\s+more|from\s+now\s+on)"
    r"|\s+from\s+(?:your\s+)?(?:memory|notes|records))+\s*$"
)
_SAID_ABOUT = re.compile(
    r"(?i)what\s+i\s+(?:said|told\s+you|mentioned)\s+about\s+([^,.!?;\n]{3,120})"
)
_ABOUT_USER = re.compile(r"(?i)\b(?:i|i'm|i've|i'd|me|my|mine|myself)\b|\bmemory\b")
# "remove the comma from this sentence", "delete the last paragraph": an edit, not a forget request
_EDIT = re.compile(
    r"(?i)^\s*(?:the|this|that|these|those|a|an|all|any|every)\s+(?:[\w'\-]+\s+){0,3}?"
    r"(?:commas?|words?|lines?|paragraphs?|sentences?|parts?|sections?|jargon|typos?|emojis?"
    r"|hashtags?|quotes?|intro|introduction|ending|greeting|signature|bullets?|titles?|spaces?"
    r"|headers?|footers?|links?|references?|duplicates?|filler|adjectives?|adverbs?|exclamation"
    r"|formatting|rows?|columns?|items?|steps?|names?)\b"
    r"|\b(?:from|in|of)\s+(?:this|the|that|my)\s+(?:[\w'\-]+\s+)?(?:text|sentence|email|e-mail"
    r"|paragraph|message|draft|document|essay|letter|list|code|file|post|line|title|story|poem"
    r"|caption|bio|resume|cv|slide|script|tweet|reply)s?\b"
)


def detect_forget(text: str) -> str | None:
    """What a "please forget that I ..." message asks to forget, or None.

    Stricter than the agent's detector about *what* is a request (the message must start with the
    request and be about the user: "remove the comma from this sentence" is an edit, not a forget
    request) and broader in phrasing ("don't remember that ...", "I'd like you to forget ...",
    "stop remembering ...", "erase what I said about ...").
    """
    if len(text) > 400:
        return None
    first = re.split(r"(?<=[.!?])\s+|\n", text.strip(), maxsplit=1)[0]
    m = _FORGET.match(first)
    if not m:
        said = _SAID_ABOUT.search(text)
        if said and re.search(r"(?i)\b" + _FORGET_VERB + r"\s+(?:it|that|this)\b", text):
            return said.group(1).strip(" .,:;\"'")
        return None
    rest = re.split(r"[.!?;\n]", m.group("rest"), maxsplit=1)[0]
    if _EDIT.search(rest):
        return None
    what = _TAIL.sub("", _LEAD.sub("", rest)).strip(" ,:;\"'")
    if re.fullmatch(r"(?i)(?:it|that|this|them|those|these)?", what) or not content_words(what):
        said = _SAID_ABOUT.search(text)
        return said.group(1).strip(" .,:;\"'") if said else None
    if not _ABOUT_USER.search(m.group(0)):
        return None
    return what


forget_request = detect_forget
"""The agent's name for :func:`detect_forget`."""


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


# --- length limits -----------------------------------------------------------------------------
_DANGLING = re.compile(
    r"(?:\s+(?:a|an|the|and|or|of|in|on|at|to|for|with|without|by|from|as|into|about|"
    r"\w{1,2}|\d+))+$",
    re.IGNORECASE,
)


def cut_at_phrase(text: str, limit: int | None) -> str:
    """A string a JSON schema's ``maxLength`` (``limit``) may have closed mid-word, cut back to
    its last whole phrase when it reached the limit: the last comma or semicolon when that keeps
    most of it, else without its last (maybe cut) word and dangling function words ("aligned
    with festival weekend, with a 2" -> "aligned with festival weekend"). Shorter text is
    returned unchanged; empty when nothing whole is left."""
    if not limit or len(text) < limit - 1:
        return text
    cut = max(text.rfind(","), text.rfind(";"))
    if cut >= len(text) * 0.5:
        return text[:cut]
    words = text.split()
    if len(words) > 1:
        text = " ".join(words[:-1])  # the last word may itself be cut ("coordinat")
    return _DANGLING.sub("", text)
