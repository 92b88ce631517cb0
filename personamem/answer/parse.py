"""Parse a multiple-choice letter out of free model output."""

from __future__ import annotations

import re

LETTERS = "ABCDEFGHIJ"


def parse_choice(text: str, n_options: int = 4) -> int | None:
    """Index of the chosen option in ``text``, or None when no letter can be found.

    Order of preference: the last ``\\boxed{x}``; "Final Answer: X" (also "answer is (X)");
    a reply that is just a letter; the last standalone capital option letter.
    """
    valid = LETTERS[:n_options]
    if not text:
        return None

    def idx(letter: str) -> int | None:
        letter = letter.strip().upper()
        return valid.index(letter) if len(letter) == 1 and letter in valid else None

    boxed = re.findall(r"\\boxed\{\s*\(?([A-Za-z])\)?\s*\}", text)
    if boxed and (i := idx(boxed[-1])) is not None:
        return i
    final = re.findall(
        r"(?i)(?:final\s+answer|the\s+answer\s+is|answer\s*:|answer\s+is|option)\s*[:\-]?\s*"
        r"\**\s*[\(\[]?([A-Za-z])[\)\]]?(?![A-Za-z])",
        text,
    )
    if final and (i := idx(final[-1])) is not None:
        return i
    m = re.fullmatch(r"\s*[\(\[]?([A-Za-z])[\)\].:]?\s*", text)
    if m and (i := idx(m.group(1))) is not None:
        return i
    m = re.match(rf"\s*[\(\[]?([{valid}])[\)\].:]\s", text)
    if m:
        return valid.index(m.group(1))
    loose = re.findall(rf"(?<![A-Za-z])[\(\[]?([{valid}])[\)\]]?(?![A-Za-z'])", text)
    if loose:
        return valid.index(loose[-1])
    return None
