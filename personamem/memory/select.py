"""Candidate statements for the ``select`` strategy: what the user said about themself.

Deterministic and cheap: split the user's turns into sentences and keep first-person statements
that are not editing requests, hypotheticals or about someone else; text the user says was
written by another person (a colleague's message to translate, a friend's email to polish) is
not the user's. The model then judges each candidate (see :mod:`personamem.memory.agent`).
"""

from __future__ import annotations

import re

_SENT = re.compile(r"(?<=[.!?…])[\"”’)]?\s+|\n+")
_FIRST_PERSON = re.compile(r"(?i)\b(?:i|i['’](?:m|ve|d|ll)|me|my|mine|myself)\b")
_EDIT_REQUEST = re.compile(
    r"(?i)\b(?:help|refine|improve|polish|translate|rewrite|proofread|edit|fix|tweak|revise|"
    r"shorten|make)\b.{0,60}\b(?:this|the|my|following|below)\s+(?:\w+\s+)?(?:email|post|message|"
    r"piece|text|paragraph|draft|letter|note|caption|bio|reply|update|story|essay|speech|"
    r"announcement|version|wording|language|tone|section|line|sentence)s?\b"
)
_META = re.compile(
    r"(?i)^(?:thanks|thank you|great|perfect|awesome|ok|okay|yes|sure|sounds good|got it|"
    r"that'?s (?:great|helpful|perfect))\b[^.!?]*[.!?]?$"
)
HYPOTHETICAL = re.compile(
    r"(?i)^\W*(?:imagine|suppose|pretend|what\s+if|if\s+i\s+(?:were|was|had|lived)"
    r"|let'?s\s+say|hypothetically|in\s+a\s+world\s+where|say\s+i\s+(?:were|was))\b"
)
"""A sentence or message that starts a hypothetical ("Imagine I were ...", "What if ...")."""
_CONDITIONAL = re.compile(r"(?i)^\W*if\b")
"""A conditional sentence ("If it rains, ..."): no statement of fact about the user."""
_OTHERS = (
    r"friend|colleague|coworker|co-worker|sister|brother|mom|mother|dad|father|partner|wife|"
    r"husband|boss|manager|client|roommate|neighbou?r|son|daughter|cousin|aunt|uncle|team|"
    r"teammate|grandma|grandmother|grandpa|grandfather|boyfriend|girlfriend|fiancée?|kid|child"
)
_ABOUT_OTHER = re.compile(
    rf"(?i)^\s*(?:my|our)\s+(?:\w+\s+)?(?:{_OTHERS})s?\b|^\s*(?:he|she|they)\b"
)
_WRITTEN_BY_OTHER = re.compile(
    rf"(?i)\b(?:(?:my|our|a)\s+(?:\w+\s+)?(?:{_OTHERS})(?:['’]s)?\s+(?:\w+\s+)?(?:email|message|post|"
    rf"text|letter|note|essay|story|speech|draft|review|reply)|(?:wrote|written|sent|drafted)\s+by\s+"
    rf"(?:my|our|a)\s+(?:\w+\s+)?(?:{_OTHERS})|(?:from|by)\s+my\s+(?:{_OTHERS})\b|on behalf of|"
    rf"(?:my|our|a)\s+(?:\w+\s+)?(?:{_OTHERS})\s+(?:just\s+)?(?:wrote|drafted|forwarded|sent|"
    rf"shared)\s+(?:me\s+)?(?:this|the following|it|these)\b|"
    # "an email I'm writing for my friend Marco", "he asked me to fix his grammar"
    rf"\b(?:writing|wrote|drafting|drafted)\s+(?:it\s+|this\s+)?(?:for|on behalf of)\s+(?:my|our)\s+"
    rf"(?:\w+\s+)?(?:{_OTHERS})\b|\b(?:he|she|they)\s+asked\s+me\s+to\s+(?:fix|polish|edit|"
    rf"proofread|check|review|translate|improve|rewrite|clean up)\b|\b(?:fix|polish|edit|proofread|"
    rf"check|improve|correct)\s+(?:his|her|their)\s+(?:grammar|spelling|email|message|post|text|"
    rf"letter|note|essay|draft|writing|wording)\b)"
)


_BOILERPLATE = re.compile(
    r"(?i)^(?:i hope (?:you|your|this|all)|hope you|please (?:let me know|feel free)|let me know|"
    r"i (?:just )?wanted to (?:follow up|check in|see if|reach out|thank|let you know)|"
    r"i(?:['’]d| would) (?:love|like) (?:to hear|your|to get your|to schedule|to set up|to propose)|"
    r"i look forward|looking forward|thank you|thanks|best regards|kind regards|cheers|"
    r"i like your version|i (?:really )?appreciate (?:it|your|the)|can you|could you|would you|will you)"
)
_SIGNAL = re.compile(
    r"(?i)\b(?:love|loved|enjoy|enjoyed|favou?rite|prefer|always|usually|often|every|habit|"
    r"hobby|like to|can't stand|hate|allerg\w*|doctor|diagnos\w*|symptom\w*|therap\w*|anxious|"
    r"anxiety|stress\w*|since i was|grew up|i(?:['’]ve| have) been|lately|recently|my (?:own|usual)|"
    r"weekend|morning|evening|routine|diet|workout|exercise|music|read|book|film|movie|travel|"
    r"coffee|cook\w*|bak\w*|garden\w*|hik\w*|run\w*|yoga|game\w*|festival|concert)\b"
)


_SECOND_PERSON = re.compile(r"(?i)\b(?:you|your|yours|yourself|you['’](?:re|ve|d|ll))\b")


_FOLLOW_UP = re.compile(
    r"(?i)^(?:you mentioned|could you|can you|would you|will you|yes|no|that makes sense|"
    r"what about|and |but |so |how about|is that|does that|why is that)"
)


# Code and math exercises (the padding of the release's 128k histories, or a user's homework)
# say nothing about who the user is and would crowd the memory with "Asked about" lines.
_CODE = re.compile(
    r"(?m)```|Traceback \(most recent call last\)|^\s*(?:def|class|import|from\s+\S+\s+import|"
    r"#include|public\s+static|function|const|let|var|return)\b.*[:;{(=]|[;{}]\s*$"
)
_MATH = re.compile(
    r"\$[^$\n]+\$|\\(?:frac|sqrt|cdot|times|int|sum)\b|\\[(\[]|"
    r"(?<![\w.])\d*[a-z]\s*(?:\^\s*\d|[=<>]\s*-?\d)|\d\s*[-+*/^]\s*\d*[a-z]?\s*=\s*-?\d|"
    r"\b[a-z]\s*\(\s*[a-z0-9]\s*\)\s*="
)
_NUMBER = re.compile(r"(?<![\w.])\$?\d+(?:[.,]\d+)?%?(?![\w.])")
_QUANTITY_QUESTION = re.compile(
    r"(?i)\b(?:how (?:many|much|far|long|old)|what (?:is|was) the (?:total|sum|value|area|"
    r"probability|average|difference|ratio|remainder)|calculate|compute|solve)\b"
)


def is_exercise(text: str) -> bool:
    """Whether a turn is a code or math exercise rather than the user talking about themself:
    code (fences, tracebacks, code lines), formulas, or a word problem (numbers and a question,
    no "I" or "my" anywhere)."""
    if _CODE.search(text) or _MATH.search(text):
        return True
    numbers = len(_NUMBER.findall(text))
    word_problem = "?" in text and (numbers >= 2 or (numbers and _QUANTITY_QUESTION.search(text)))
    return word_problem and not _FIRST_PERSON.search(text)


def signal(sentence: str) -> float:
    """How strongly a statement looks like a preference or habit (more cue words, higher)."""
    return len(_SIGNAL.findall(sentence)) + (0.5 if _FIRST_PERSON.match(sentence) else 0.0)


def split_sentences(text: str) -> list[str]:
    return [s.strip(' \t-•*"“”') for s in _SENT.split(text) if s and s.strip()]


def candidates(text: str, *, min_words: int = 5, max_words: int = 60) -> list[str]:
    """First-person statements in a user turn that may reveal something about the user."""
    sentences = split_sentences(text)
    if not sentences or is_exercise(text):
        return []
    # If the user says the text they paste is someone else's, only their own framing counts.
    if _WRITTEN_BY_OTHER.search(" ".join(sentences[:2])):
        # The pasted text often follows a colon in the same sentence ("Translate this from my
        # colleague: I adore sushi ..."): only what comes before it is the user's.
        sentences = [sentences[0].split(":", 1)[0].strip()]
    # Text the user pastes to polish (their own email or post): its sentences to the reader
    # ("I can accommodate a virtual meeting if that works better for your schedule") are
    # logistics, not the user's profile, unless they carry a preference cue.
    pasted = bool(_EDIT_REQUEST.search(text))
    out = []
    for s in sentences:
        words = s.split()
        if not min_words <= len(words) <= max_words:
            continue
        # First-person statements, and the user's own questions (what a user asks about, and how,
        # often is the only sign of a changed preference).
        if not (_FIRST_PERSON.search(s) or (s.endswith("?") and not _FOLLOW_UP.match(s))):
            continue
        if _META.match(s) or HYPOTHETICAL.match(s) or _CONDITIONAL.match(s):
            continue
        if _ABOUT_OTHER.match(s):
            continue
        if _EDIT_REQUEST.search(s) and len(words) < 30:
            continue
        if _BOILERPLATE.match(s) and not _SIGNAL.search(s):
            continue
        if pasted and _SECOND_PERSON.search(s) and not _SIGNAL.search(s):
            continue
        out.append(s)
    return out


def is_question(sentence: str) -> bool:
    return sentence.rstrip(' "”’)').endswith("?")


# Second words that show the first was a noun subject: "Workshops and meetups ...", "Clouds are".
_AFTER_SUBJECT = frozenset("and are is was were have can will seem seems".split())
# Words that end like a verb ("-s") but are not one.
_NOT_VERBS = frozenset(
    "yes this thus its his hers theirs ours yours always perhaps sometimes various news less "
    "us as plus series lots".split()
)


def reads_as_profile_note(note: str) -> bool:
    """Whether a note reads as a profile line about the user, which starts with what they do:
    "Makes soups and bread at home", "Traded city for trails". Noun phrases and statements
    about the world ("Time zone differences", "Workshops and meetups are held on Saturdays",
    "Eggs, toast, yogurt") do not."""
    words = note.split()
    if not words or not words[0].isalpha():
        return False
    first = words[0].lower()
    verb_like = (
        first.endswith("s") and not first.endswith(("ss", "ous", "ics")) and first not in _NOT_VERBS
    ) or (first.endswith("ed") and len(first) > 3)
    return verb_like and (len(words) == 1 or words[1].lower() not in _AFTER_SUBJECT)
