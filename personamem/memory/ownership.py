"""Who a memory line is about: deterministic backstops for the model's ``about`` label.

A line plainly about someone else ("Her friend loves metal"), taken from a text someone else
wrote that the user pasted, copied from an assistant reply, or restating a hypothetical is not
something the user revealed about themselves (:func:`not_the_users`).
"""

from __future__ import annotations

import re

from .chunking import Chunk
from .merge import content_words
from .select import HYPOTHETICAL

# --- ownership -----------------------------------------------------------------------------------
_RELATION = (
    r"(?:best\s+friend|friends?|colleagues?|co-?workers?|boss|manager|wife|husband|partner"
    r"|girlfriend|boyfriend|fianc[eé]e?|mother|mom|mum|father|dad|sisters?|brothers?|sons?"
    r"|daughters?|aunt|uncle|cousins?|grandma|grandmother|grandpa|grandfather|niece|nephew"
    r"|neighbou?rs?|roommates?|flatmates?|clients?|customers?|classmates?|teammates?|mentor"
    r"|students?|teachers?|kids?|child|children|parents?|coach|doctor|therapist|in-laws?)"
)
_THIRD_PARTY_SUBJECT = re.compile(
    r"(?i)^(?:(?:the\s+)?user'?s\s+|my\s+|his\s+|her\s+|their\s+|a\s+|the\s+|one\s+of\s+"
    r"(?:the\s+user'?s\s+|my\s+)?)" + _RELATION + r"\b|^(?:he|she|they|his|her|their|him|them)\b"
)
_NAMED = re.compile(
    r"\b(?i:" + _RELATION + r")\s+(?:(?i:named|called)\s+)?([A-Z][a-z]{2,})\b"
    r"|\b(?:Hi|Hello|Hey|Dear)\s+([A-Z][a-z]{2,})\b"
    r"|\b(?i:for|from|to)\s+(?:my\s+\w+\s+)?([A-Z][a-z]{2,})(?:'s)?\b"
)
_NOT_NAMES = {
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "the",
    "this",
    "that",
    "our",
    "your",
    "their",
    "english",
}


def third_party(line: str, chat: str) -> str | None:
    """Who a memory line is about when that is plainly someone other than the user: a line whose
    subject is a relation or pronoun ("Her friend ...", "She loves ..."), or a person the chat
    names as a third party ("my friend Marco", "Hi Sarah", "for Marco") ("Marco loves metal")."""
    text = line.strip().lstrip("-•* ").strip()
    m = _THIRD_PARTY_SUBJECT.match(text)
    if m:
        return m.group(0)
    first = re.match(r"([A-Za-z]+)(?:'s)?\b", text)
    if not first:
        return None
    names = {n.lower() for g in _NAMED.findall(chat) for n in g if n} - _NOT_NAMES
    return first.group(1) if first.group(1).lower() in names else None


_SIGNOFF = re.compile(
    r"(?i:best|best\s+regards|best\s+wishes|thanks|thank\s+you|cheers|regards|kind\s+regards"
    r"|warm(?:est)?\s+regards|sincerely|love|yours(?:\s+truly)?|all\s+the\s+best|xo+|-+|—)"
    r"\s*,?\s*\n?\s*([A-Z][a-z]{2,})\W*$"
)
_AUTHOR = re.compile(
    r"\bfrom\s+(?:my\s+)?(?i:" + _RELATION + r")\s+([A-Z][a-z]{2,})\b"
    r"|\b([A-Z][a-z]{2,})'s\s+(?i:email|e-mail|message|note|letter|text|post|essay|draft|speech"
    r"|bio|review|reply|answer)\b"
    r"|\b([A-Z][a-z]{2,})\s+(?:wrote|sent|texted|posted)\b"
)


def written_by_others(text: str, chat: str) -> str:
    """The part of a user message that someone else wrote: the text the user pastes to have it
    polished or translated, when the message names its author ("from my colleague Yuki",
    "Marco's email", or a sign-off "Best, Marco" by a person the chat names as a third party)."""
    names = {n.lower() for g in _NAMED.findall(chat) for n in g if n} - _NOT_NAMES
    author = next((n for g in _AUTHOR.findall(text) for n in g if n), None)
    sign = _SIGNOFF.search(text.strip())
    if author is None and not (sign and sign.group(1).lower() in names):
        return ""
    quoted = re.findall(r"«([^»]{10,})»|\u201c([^\u201d]{10,})\u201d|\"([^\"]{10,})\"", text)
    if quoted:
        return " ".join(q for g in quoted for q in g if q)
    parts = re.split(r"\n\s*\n|:\s*\n", text.strip(), maxsplit=1)
    return parts[1] if len(parts) == 2 else ""


def _containment(words: set[str], text: str) -> float:
    """Share of ``words`` that occur in ``text`` (content words, stemmed)."""
    return len(words & content_words(text)) / len(words) if words else 0.0


def not_the_users(line: str, chunk: Chunk) -> str | None:
    """Why a memory line is plainly not something the user revealed about themselves, or None.

    Deterministic backstops for the model's ``about`` label: the line's subject is a third party
    (:func:`third_party`); it comes from a text someone else wrote that the user pasted
    (:func:`written_by_others`); it copies a sentence of an assistant reply (a translation, a
    suggestion) that no user message says; or it restates a hypothetical ("Imagine I were a
    surfer ...") that no other user message supports.
    """
    chat = chunk.render()
    who = third_party(line, chat)
    if who:
        return f"about {who!r}, not the user"
    words = content_words(line)
    user = [p.content for p in chunk.pieces if p.role == "user"]
    pasted = [written_by_others(u, chat) for u in user]
    own = [u.replace(o, " ") if o else u for u, o in zip(user, pasted, strict=True)]
    said = " ".join(u for u in own if not HYPOTHETICAL.match(u))
    others = " ".join(o for o in pasted if o)
    if others and _containment(words, others) >= 0.8 and _containment(words, said) < 0.5:
        return "from a text someone else wrote, not about the user"
    if len(words) >= 5 and _containment(words, said) < 0.5:
        for p in chunk.pieces:
            if p.role == "assistant" and _containment(words, p.content) >= 0.8:
                return "copied from an assistant reply, not said by the user"
    hypo = " ".join(u for u in user if HYPOTHETICAL.match(u))
    if hypo and _containment(words, hypo) >= 0.5 > _containment(words, said):
        return "from a hypothetical, not the user's situation"
    return None


__all__ = ["not_the_users", "third_party", "written_by_others"]
