"""Deterministic detection and redaction of secrets before anything reaches the memory.

Detectors: API keys and tokens, passwords, email addresses, phone numbers, payment card
numbers (Luhn-checked), IBANs (mod-97 checked), government ids (US SSN, UK NI number) and
street addresses. Ordinary numbers, dates, times, prices and years are left alone.
Every redaction is reported as a :class:`Redaction` that never contains the secret itself.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

KINDS = (
    "api_key",
    "password",
    "email",
    "phone",
    "card",
    "iban",
    "gov_id",
    "address",
)


@dataclass(frozen=True)
class Redaction:
    """One secret found and removed: its kind, where, and a short hash to recognise repeats."""

    kind: str
    start: int
    end: int
    fingerprint: str

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "start": self.start, "end": self.end, "fp": self.fingerprint}


def luhn_ok(digits: str) -> bool:
    total, alt = 0, False
    for ch in reversed(digits):
        d = ord(ch) - 48
        if alt:
            d *= 2
            if d > 9:
                d -= 9
        total += d
        alt = not alt
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    s = re.sub(r"\s+", "", iban).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", s):
        return False
    moved = s[4:] + s[:4]
    num = "".join(str(int(c, 36)) for c in moved)
    return int(num) % 97 == 1


_API_KEY = re.compile(
    r"\b(?:sk-(?:proj-|live-|test-)?[A-Za-z0-9_\-]{16,}|sk_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|pk_(?:live|test)_[A-Za-z0-9]{16,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_\-]{35}"
    r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}|xox[abposr]-[A-Za-z0-9\-]{10,}"
    r"|eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,})"
)
_KEY_ASSIGN = re.compile(
    r"(?i)\b(?:api[_\s-]?key|secret[_\s-]?key|access[_\s-]?token|auth[_\s-]?token|bearer"
    r"|client[_\s-]?secret|private[_\s-]?key)\b\s*(?:is|=|:)?\s*[\"']?([A-Za-z0-9_\-./+=]{16,})"
)
_PASSWORD = re.compile(
    r"(?i)\b(?:password|passcode|passwd|pwd|pin code|pin)\b\s*(?:is|was|=|:|to)?\s*"
    r"[\"'“]?([^\s\"'”,;]{4,64})"
)
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b")
_PHONE = re.compile(
    r"(?<![\w/.\-])(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{2,4}\)[\s.\-]?|\d{3}[\s.\-])\d{3}[\s.\-]\d{3,4}(?![\w/\-])"
    r"|(?<![\w/.\-])\+\d{1,3}(?:[\s.\-]?\d{2,4}){2,5}(?![\w/\-])"
)
_CARD = re.compile(r"(?<!\d)(?:\d[ \-]?){12,18}\d(?!\d)")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){2,7}(?:\s?[A-Z0-9]{1,4})?\b")
_SSN = re.compile(r"(?<!\d)(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!\d)")
_SSN_WORDS = re.compile(r"(?i)\b(?:ssn|social security(?: number)?)\b\D{0,20}(\d{9}|\d{3}\s\d{2}\s\d{4})")
_NINO = re.compile(r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b")
_STREET = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Way"
    r"|Terrace|Ter|Parkway|Pkwy|Circle|Cir|Highway|Hwy|Square|Sq)"
)
_ADDRESS = re.compile(
    r"\b\d{1,6}(?:[A-Za-z])?\s+(?:[NSEW]\.?\s+)?(?:[A-Z][a-zA-Z'\-]+\s+){1,4}" + _STREET
    + r"\b\.?(?:,?\s+(?:Apt|Apartment|Suite|Unit|#)\.?\s*\w+)?"
)


def _find(text: str) -> Iterable[tuple[str, int, int]]:
    for m in _API_KEY.finditer(text):
        yield "api_key", m.start(), m.end()
    for m in _KEY_ASSIGN.finditer(text):
        yield "api_key", m.start(1), m.end(1)
    for m in _PASSWORD.finditer(text):
        val = m.group(1)
        # a password-like value has a digit or symbol, or is introduced explicitly by ":" / "="
        if re.search(r"[\d!@#$%^&*_\-+=?]", val) or re.search(r"[:=]", m.group(0)):
            yield "password", m.start(1), m.end(1)
    for m in _EMAIL.finditer(text):
        yield "email", m.start(), m.end()
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits) and len(set(digits)) > 1:
            yield "card", m.start(), m.end()
    for m in _IBAN.finditer(text):
        if iban_ok(m.group()):
            yield "iban", m.start(), m.end()
    for m in _SSN.finditer(text):
        yield "gov_id", m.start(), m.end()
    for m in _SSN_WORDS.finditer(text):
        yield "gov_id", m.start(1), m.end(1)
    for m in _NINO.finditer(text):
        yield "gov_id", m.start(), m.end()
    for m in _PHONE.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 10 <= len(digits) <= 15:
            yield "phone", m.start(), m.end()
    for m in _ADDRESS.finditer(text):
        yield "address", m.start(), m.end()


def find_secrets(text: str, kinds: Iterable[str] = KINDS) -> list[Redaction]:
    """Secrets in ``text`` (non-overlapping, earliest and longest first)."""
    wanted = set(kinds)
    spans = sorted(
        ((k, s, e) for k, s, e in _find(text) if k in wanted), key=lambda x: (x[1], -(x[2] - x[1]))
    )
    out: list[Redaction] = []
    last_end = -1
    for kind, s, e in spans:
        if s < last_end:
            continue
        fp = hashlib.sha256(text[s:e].encode()).hexdigest()[:8]
        out.append(Redaction(kind, s, e, fp))
        last_end = e
    return out


def redact(text: str, kinds: Iterable[str] = KINDS) -> tuple[str, list[Redaction]]:
    """``text`` with every secret replaced by ``[REDACTED <kind>]``, and what was replaced."""
    found = find_secrets(text, kinds)
    pieces, pos = [], 0
    for r in found:
        pieces.append(text[pos : r.start])
        pieces.append(f"[REDACTED {r.kind}]")
        pos = r.end
    pieces.append(text[pos:])
    return "".join(pieces), found


@dataclass
class PrivacyGuard:
    """Configurable redaction applied to chunks before the model and to memories after it."""

    kinds: tuple[str, ...] = KINDS
    enabled: bool = True
    on_redact: Callable[[Redaction, str], None] | None = None

    def clean(self, text: str, where: str = "") -> tuple[str, list[Redaction]]:
        if not self.enabled:
            return text, []
        out, found = redact(text, self.kinds)
        if self.on_redact:
            for r in found:
                self.on_redact(r, where)
        return out, found
