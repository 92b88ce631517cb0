"""Deterministic detection and redaction of secrets before anything reaches the memory.

Detectors (each a *kind*, all on by default, any subset configurable; how each avoids false
positives in brackets):

- ``api_key``: provider keys (OpenAI, Anthropic, Stripe, AWS, Google, GitHub, GitLab, Slack,
  Hugging Face, SendGrid, Twilio), JWTs, PEM private keys, ``api_key = ...`` assignments
  (known prefixes; an assigned value needs letters and digits).
- ``password``: ``password: ...``, ``my password is ...``, passwords in URLs, PINs (the value
  needs a digit or symbol, an explicit ``:``/``=``/quotes, or a word that is not prose).
- ``email``: addresses, also ``name [at] host [dot] com``.
- ``phone``: North American and ``+`` international numbers, any number after "phone",
  "call me at", ... (10-15 digits, or a cue word and 7+ digits).
- ``card``: payment card numbers, CVV codes (scheme prefix, length and Luhn check; a
  "card number" cue overrides the check).
- ``iban``: IBANs (mod-97 check).
- ``gov_id``: US SSN, UK NI number; passport, driver's licence, national or real ID, tax id, SIN,
  NHS, Medicare numbers after their name (reserved ranges excluded; a cue word and 5+ digits).
- ``bank_account``: account, routing, sort-code, BSB numbers after their name (cue, 6+ digits).
- ``address``: street addresses with unit, city, state and zip; P.O. boxes; "Hauptstraße 5",
  "12 rue de la Paix" (a capitalised name and a street-type word).
- ``vehicle_plate``: licence plate numbers after their name (cue word and a digit).

Ordinary numbers, dates, times, prices, versions, years, zip codes, order numbers, ISBNs and
percentages are left alone (see ``tests/test_privacy.py`` for the corpus). Every redaction is
reported as a :class:`Redaction` that never contains the secret: only its kind, position and a
keyed fingerprint (HMAC, so a short secret such as a PIN cannot be recovered by trying values
without the key) to recognise repeats.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn
from stdnum.us import ssn as us_ssn

KINDS = (
    "api_key",
    "password",
    "email",
    "phone",
    "card",
    "iban",
    "gov_id",
    "bank_account",
    "address",
    "vehicle_plate",
)

Span = tuple[str, int, int]


@dataclass(frozen=True)
class Redaction:
    """One secret found and removed: its kind, where, and a short fingerprint for repeats."""

    kind: str
    start: int
    end: int
    fingerprint: str

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "start": self.start, "end": self.end, "fp": self.fingerprint}


# --- checksums ---------------------------------------------------------------------------------
def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check used by payment cards (python-stdnum's)."""
    return bool(digits) and digits.isdigit() and luhn.is_valid(digits)


def iban_ok(iban: str) -> bool:
    """An IBAN's mod-97 check and its country's length and format (python-stdnum's)."""
    return stdnum_iban.is_valid(iban)


def ssn_ok(number: str) -> bool:
    """A US social security number that could be issued (no 000/666/9xx area, no known
    advertising numbers; python-stdnum's rules)."""
    return us_ssn.is_valid(number)


def phone_ok(number: str, region: str | None = None) -> bool:
    """Whether ``number`` has a possible length for its country (libphonenumber's metadata);
    ``region`` is the country assumed for numbers without a leading ``+``."""
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_possible_number(parsed)


def card_issuer_ok(digits: str) -> bool:
    """Whether ``digits`` has the prefix and length of a real card scheme."""
    n = len(digits)
    p2, p4 = int(digits[:2]), int(digits[:4])
    if digits[0] == "4":  # Visa
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:  # Mastercard
        return n == 16
    if p2 in (34, 37):  # American Express
        return n == 15
    if p2 in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:  # Diners
        return 14 <= n <= 19
    if p4 == 6011 or p2 == 65 or 644 <= int(digits[:3]) <= 649 or p2 == 62:  # Discover, UnionPay
        return 16 <= n <= 19
    if 3528 <= p4 <= 3589:  # JCB
        return 16 <= n <= 19
    if p2 in (50, 56, 57, 58, 63, 67) or p2 == 60:  # Maestro
        return 12 <= n <= 19
    return False


# --- patterns ----------------------------------------------------------------------------------
_API_KEY = re.compile(
    r"(?<![A-Za-z0-9_\-])(?:"
    r"sk-(?:proj-|live-|test-|ant-(?:api\d\d-)?|or-v1-)?[A-Za-z0-9_\-]{20,}"
    r"|(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|AIza[0-9A-Za-z_\-]{35}"
    r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}"
    r"|glpat-[A-Za-z0-9_\-]{20,}"
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"
    r"|hf_[A-Za-z0-9]{30,}"
    r"|SG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}"
    r"|SK[0-9a-f]{32}"
    r"|eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}"
    r")(?![A-Za-z0-9_\-])"
)
_PEM = re.compile(
    r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----[\s\S]*?(?:-----END (?:[A-Z]+ )*PRIVATE KEY-----|$)"
)
_KEY_ASSIGN = re.compile(
    r"(?i)\b(?:api[_\s-]?key|api[_\s-]?token|secret(?:[_\s-]?(?:key|token))?|access[_\s-]?(?:key|token)"
    r"|auth[_\s-]?token|bearer|client[_\s-]?secret|private[_\s-]?key|(?:aws_)?secret_access_key"
    r"|token)\b(?:\s{1,4}(?:is|was))?\s{0,4}[:=]?\s{0,4}[\"'`]?([A-Za-z0-9_\-./+=]{16,})"
)
_URL_CREDENTIALS = re.compile(
    r"(?i)(?<![a-z0-9+.\-])[a-z][a-z0-9+.\-]{0,30}://[^\s:/@]{1,64}:([^\s@/]{1,128})@[\w.\-]{1,253}"
)

_PASSWORD = re.compile(
    r"(?i)\b(?:password|passphrase|passcode|passwd|pwd|pw)\b"
    r"(?:\s{1,4}(?:for|of|on)\s{1,4}(?:[\w.@'\-]{1,64}\s{1,4}){0,3}?[\w.@'\-]{1,64})?"
    r"(?P<sep>\s{0,4}(?:is|was|was changed to|is now|=|:|->)\s{0,4}|\s{1,4}(?:to|now)\s{1,4})"
    r"(?:(?P<q>[\"'“‘`])(?P<quoted>[^\"'”’`\n]{1,64})[\"'”’`]|(?P<val>[^\s\"'”’,;]{3,64}))"
)
_PASSWORD_NOUN = re.compile(
    r"(?i)\b(?:password|passphrase|passcode)\s{0,4}[:=]\s{0,4}(?P<val>\S{3,64})"
)
_PIN = re.compile(
    r"(?i)\b(?:pin(?:\s{1,4}(?:code|number))?)\b\s{0,4}(?:is|was|:|=|#)?\s{0,4}"
    r"(?P<val>\d{3,8})(?!\d)"
)
# Words that follow "password is" in ordinary prose.
_PROSE = set(
    """a an the too not no now also only very still just so as at in on for from by with of to and
    or but if when it this that my your our their his her its is be being been incorrect wrong
    correct
    right invalid valid required expired weak strong long short case same different saved stored
    set reset changed protected hidden visible encrypted hashed missing empty blank secure insecure
    compromised locked easy hard simple complex strong unique new old mandatory optional ok okay
    fine good bad there here what which how why where who something anything nothing everything
    safe unsafe needed necessary enough sensitive private public important""".split()
)

_EMAIL = re.compile(
    r"(?:(?<=mailto:)|(?<![:\w.%+\-]))[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9.\-]{1,253}\.[A-Za-z]{2,63}\b"
)
# One start per run of address characters (the look-behind) and bounded parts: a run such as
# "a.a.a.a..." is tried once, not once per position (which made "a." * 20000 take 36 s).
_EMAIL_OBFUSCATED = re.compile(
    r"(?i)(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]{1,64}\s{0,3}[\[(]\s{0,3}at\s{0,3}[\])]\s{0,3}"
    r"[A-Za-z0-9\-]{1,63}(?:\s{0,3}[\[(]\s{0,3}dot\s{0,3}[\])]\s{0,3}[A-Za-z0-9\-]{1,63}){1,8}\b"
)

_PHONE = re.compile(
    r"(?<![\w/.\-:$€£#])(?:\+?1[\s.\-])?(?:\(\d{3}\)\s?|\d{3}[\s.\-])\d{3}[\s.\-]\d{4}(?![\w/\-]|\.\d|:\d)"
    r"|(?<![\w/.\-:$€£#])\+\d{1,3}(?:[\s.\-]?\(?\d{1,4}\)?){2,5}(?![\w/\-]|\.\d|:\d)"
)
_PHONE_CUE = re.compile(
    r"(?i)\b(?:phone(?:\s{1,4}number)?|mobile(?:\s{1,4}number)?|cell(?:\s{1,4}(?:phone|number))?|tel(?:ephone)?"
    r"|call\s{1,4}me\s{1,4}(?:at|on)|text\s{1,4}me\s{1,4}(?:at|on)|reach\s{1,4}me\s{1,4}(?:at|on)|whatsapp|fax|landline)\b\s{0,4}(?:is|:|at|on|#|no\.?)?\s{0,4}"
    r"(?P<val>\+?\(?\d[\d\s().\-]{5,18}\d)(?![\w/]|\.\d)"
)

_CARD = re.compile(r"(?<![\d.,\-/])\d(?:[ \-]?\d){11,18}(?![\d\-/]|[.,]\d)")
_CARD_CUE = re.compile(
    r"(?i)\b(?:(?:credit|debit|bank|payment|visa|mastercard|amex)\s{1,4}card(?:\s{1,4}(?:number|no\.?|#))?"
    r"|card\s{1,4}(?:number|no\.?|#))\s{0,4}(?:is|was|:|=|ending in)?\s{0,4}"
    r"(?P<val>\d(?:[ \-]?\d){11,18})(?!\d)"
)
_CVV = re.compile(
    r"(?i)\b(?:cvv2?|cvc2?|card\s{1,4}security\s{1,4}code)\b\s{0,4}(?:is|was|:|=|#)?\s{0,4}(?P<val>\d{3,4})(?!\d)"
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){2,7}(?:\s?[A-Z0-9]{1,4})?\b")

_SSN = re.compile(r"(?<![\d\-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d\-])")
_SSN_WORDS = re.compile(
    r"(?i)\b(?:ssn|social\s{1,4}security(?:\s{1,4}(?:number|no\.?|#))?)\b\D{0,20}?(\d{9}|\d{3}\s\d{2}\s\d{4})(?!\d)"
)
_NINO = re.compile(
    r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b"
)
_ID_VALUE = r"(?P<val>[A-Z0-9](?:[A-Z0-9]|[\-/ ](?=[A-Z0-9])){4,24})"
_CONNECT = r"(?i:(?:\s{1,4}(?:number|no\.?|num|#|id))?\s{0,4}(?:is|was|:|=|#|-)?\s{0,4})"
_GOV_CUE = re.compile(
    r"(?i:\b(?:passport|driver'?s?\s{1,4}licen[cs]e|driving\s{1,4}licen[cs]e|licen[cs]e|DL|real\s{0,4}id"
    r"|national\s{1,4}id(?:entity)?(?:\s{1,4}card)?|id\s{1,4}card|identity\s{1,4}card|state\s{1,4}id|tax\s{1,4}id|TIN|EIN"
    r"|ITIN|SIN|social\s{1,4}insurance|NHS|medicare|aadhaar|PAN|personnummer|BSN|CPF|DNI|NIE"
    r"|government\s{1,4}id|personal\s{1,4}id(?:entification)?)\b)" + _CONNECT + _ID_VALUE
)
_BANK_CUE = re.compile(
    r"(?i:\b(?:(?:bank|checking|savings|current)\s{1,4}account|account|acct|routing|ABA|sort\s{1,4}code"
    r"|BSB|SWIFT|BIC)\b)" + _CONNECT + r"(?P<val>\d(?:[\d]|[\-\s](?=\d)){5,19})(?!\d)"
)
_PLATE_CUE = re.compile(
    r"(?i:\b(?:licen[cs]e\s{1,4}plate|number\s{1,4}plate|plate|registration\s{1,4}(?:plate|number))\b)"
    + _CONNECT
    + _ID_VALUE
)

_STREET = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Way"
    r"|Terrace|Ter|Parkway|Pkwy|Circle|Cir|Highway|Hwy|Square|Sq|Crescent|Cres|Close|Row|Trail"
    r"|Alley|Plaza|Loop|Path|Pike|Mews|Walk|Gardens|Grove)"
)
_ADDRESS = re.compile(
    r"(?<![\w.,])(?<!#)\d{1,6}[A-Za-z]?\s{1,4}(?:[NSEW]\.?\s{1,4})?(?:[A-Z][a-zA-Z'\-]{1,30}\s{1,4}){1,4}"
    + _STREET
    + r"\b\.?(?:\s{1,4}[NSEW]{1,2}\b\.?)?"
    r"(?:,?\s{1,4}(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|#)\.?\s{0,4}#?\w{1,10})?"
    r"(?:,\s{0,4}[A-Z][a-zA-Z.'\-]{1,30}(?:\s[A-Z][a-zA-Z.'\-]{1,30}){0,2}"
    r"(?:,?\s{0,4}[A-Z]{2}(?:\s{1,4}\d{5}(?:-\d{4})?)?)?)?"
)
_ADDRESS_EU = re.compile(
    r"(?<![\w\-])[A-ZÄÖÜ][a-zäöüß\-]{0,40}(?:straße|strasse|str\.|weg|gasse|platz|allee|laan|straat|gatan|vej)"
    r"\s{1,4}\d{1,4}[a-z]?\b"
    r"|(?<![\w.,])\d{1,4}(?:\s?(?:bis|ter))?,?\s{1,4}(?i:rue|avenue|boulevard|bd|calle|via|avenida|rua|piazza)"
    r"\s{1,4}(?:(?:de|du|des|la|le|del|della|di|do|da|das|dos)\s{1,4}|l'){0,4}[A-Z][\w'\-]{0,40}"
    r"(?:\s[A-Z][\w'\-]{0,40}){0,3}"
)
_PO_BOX = re.compile(r"(?i)\bP\.?\s?O\.?\s{1,4}Box\s{1,4}\d{1,7}\b")
# A number that begins a heading or a count is not a house number ("Top 5 Park Avenue Bars").
_NOT_HOUSE = re.compile(
    r"(?i)\b(?:top|chapter|step|page|season|episode|level|grade|size|part|vol)\s{0,8}$"
)
_NOT_HOUSE_WINDOW = 20  # the longest cue word and its spaces: only this much text is searched


def _password_value(m: re.Match[str]) -> tuple[int, int] | None:
    if m.group("quoted") is not None:
        return m.start("quoted"), m.end("quoted")
    val = m.group("val").rstrip(".!?)")
    if len(val) < 3:
        return None
    explicit = bool(re.search(r"[:=]|->", m.group("sep")))
    strong = bool(re.search(r"[\d!@#$%^&*_\-+=?~]", val)) or (
        re.search(r"[a-z]", val) is not None and re.search(r"[A-Z]", val[1:]) is not None
    )
    word = val.lower()
    prose = word in _PROSE or word.endswith(("ed", "ing", "ly"))
    if strong or (explicit and not prose) or (not prose and len(val) >= 6):
        return m.start("val"), m.start("val") + len(val)
    return None


def _digits(s: str) -> str:
    return re.sub(r"\D", "", s)


def _api_keys(text: str) -> Iterator[tuple[int, int]]:
    for rx in (_API_KEY, _PEM):
        for m in rx.finditer(text):
            yield m.start(), m.end()
    for m in _KEY_ASSIGN.finditer(text):
        val = m.group(1)
        if (
            re.search(r"\d", val)
            and re.search(r"[A-Za-z]", val)
            and not re.fullmatch(r"[\d.\-/]+\w?", val)
        ):
            yield m.start(1), m.end(1)


def _passwords(text: str) -> Iterator[tuple[int, int]]:
    for m in _URL_CREDENTIALS.finditer(text):
        yield m.start(1), m.end(1)
    for m in _PASSWORD.finditer(text):
        span = _password_value(m)
        if span:
            yield span
    for rx in (_PASSWORD_NOUN, _PIN):
        for m in rx.finditer(text):
            yield m.start("val"), m.end("val")


def _emails(text: str) -> Iterator[tuple[int, int]]:
    for rx in (_EMAIL, _EMAIL_OBFUSCATED):
        for m in rx.finditer(text):
            yield m.start(), m.end()


def _cards(text: str) -> Iterator[tuple[int, int]]:
    for m in _CARD.finditer(text):
        raw = m.group()
        digits = _digits(raw)
        seps = set(re.findall(r"[ \-]", raw))
        if (
            13 <= len(digits) <= 19
            and len(seps) <= 1
            and luhn_ok(digits)
            and card_issuer_ok(digits)
            and len(set(digits)) > 1
        ):
            yield m.start(), m.end()
    for rx in (_CVV, _CARD_CUE):
        for m in rx.finditer(text):
            yield m.start("val"), m.end("val")


def _ibans(text: str) -> Iterator[tuple[int, int]]:
    for m in _IBAN.finditer(text):
        if iban_ok(m.group()):
            yield m.start(), m.end()


def _cued_ids(rx: re.Pattern[str], text: str, need_digits: int) -> Iterator[tuple[int, int]]:
    for m in rx.finditer(text):
        val = m.group("val").rstrip(" -/")
        if len(_digits(val)) >= need_digits and not re.fullmatch(r"(?:19|20)\d\d", val):
            yield m.start("val"), m.start("val") + len(val)


def _gov_ids(text: str) -> Iterator[tuple[int, int]]:
    for m in _SSN.finditer(text):
        if ssn_ok(m.group()):
            yield m.start(), m.end()
    for m in _SSN_WORDS.finditer(text):
        yield m.start(1), m.end(1)
    for m in _NINO.finditer(text):
        yield m.start(), m.end()
    yield from _cued_ids(_GOV_CUE, text, 5)


def _plates(text: str) -> Iterator[tuple[int, int]]:
    yield from _cued_ids(_PLATE_CUE, text, 1)


def _bank_accounts(text: str) -> Iterator[tuple[int, int]]:
    for m in _BANK_CUE.finditer(text):
        if len(_digits(m.group("val"))) >= 6:
            yield m.start("val"), m.end("val")


def _phones(text: str) -> Iterator[tuple[int, int]]:
    for m in _PHONE.finditer(text):
        digits = _digits(m.group())
        if 10 <= len(digits) <= 15 and phone_ok(m.group(), "US"):
            yield m.start(), m.end()
    for m in _PHONE_CUE.finditer(text):
        val = m.group("val").rstrip(" .-(")
        if 7 <= len(_digits(val)) <= 15 and not re.fullmatch(
            r"\d{1,2}[./\-]\d{1,2}[./\-]\d{2,4}", val
        ):
            yield m.start("val"), m.start("val") + len(val)


def _addresses(text: str) -> Iterator[tuple[int, int]]:
    for m in _ADDRESS.finditer(text):
        if not _NOT_HOUSE.search(text[max(0, m.start() - _NOT_HOUSE_WINDOW) : m.start()]):
            yield m.start(), m.end()
    for rx in (_ADDRESS_EU, _PO_BOX):
        for m in rx.finditer(text):
            yield m.start(), m.end()


#: kind -> the detector that finds its spans; every one runs in time linear in the text.
DETECTORS: dict[str, Callable[[str], Iterable[tuple[int, int]]]] = {
    "api_key": _api_keys,
    "password": _passwords,
    "email": _emails,
    "card": _cards,
    "iban": _ibans,
    "gov_id": _gov_ids,
    "vehicle_plate": _plates,
    "bank_account": _bank_accounts,
    "phone": _phones,
    "address": _addresses,
}  # in this order: of two spans with the same start and length, the earlier kind wins


def _find(text: str, kinds: Iterable[str] = KINDS) -> Iterator[Span]:
    for kind in kinds:
        for start, end in DETECTORS[kind](text):
            yield kind, start, end


def fingerprint(secret: str, key: bytes | None = None) -> str:
    """Eight hex digits identifying ``secret``: HMAC-SHA256 under ``key`` (else SHA-256)."""
    data = secret.encode()
    if key:
        return hmac.new(key, data, hashlib.sha256).hexdigest()[:8]
    return hashlib.sha256(data).hexdigest()[:8]


def find_secrets(
    text: str,
    kinds: Iterable[str] = KINDS,
    *,
    key: bytes | None = None,
    custom: Mapping[str, re.Pattern[str]] | None = None,
) -> list[Redaction]:
    """Secrets in ``text`` (non-overlapping, earliest and longest first).

    ``custom`` adds detectors (kind -> compiled pattern; the whole match is the secret).
    """
    chosen = set(kinds)
    wanted = [k for k in DETECTORS if k in chosen]
    spans: list[Span] = list(_find(text, wanted))
    for kind, rx in (custom or {}).items():
        spans += [(kind, m.start(), m.end()) for m in rx.finditer(text) if m.end() > m.start()]
    spans.sort(key=lambda x: (x[1], -(x[2] - x[1])))
    out: list[Redaction] = []
    last_end = -1
    for kind, s, e in spans:
        if s < last_end or e <= s:
            continue
        out.append(Redaction(kind, s, e, fingerprint(text[s:e], key)))
        last_end = e
    return out


def redact(
    text: str,
    kinds: Iterable[str] = KINDS,
    *,
    key: bytes | None = None,
    custom: Mapping[str, re.Pattern[str]] | None = None,
) -> tuple[str, list[Redaction]]:
    """``text`` with every secret replaced by ``[REDACTED <kind>]``, and what was replaced."""
    found = find_secrets(text, kinds, key=key, custom=custom)
    pieces, pos = [], 0
    for r in found:
        pieces.append(text[pos : r.start])
        pieces.append(f"[REDACTED {r.kind}]")
        pos = r.end
    pieces.append(text[pos:])
    return "".join(pieces), found


@dataclass
class PrivacyGuard:
    """Configurable redaction applied to chunks before the model and to memories after it.

    ``kinds`` selects the detectors, ``custom`` adds regex detectors of your own, ``key`` keys the
    fingerprints (random per guard unless given), ``on_redact`` is called with each
    :class:`Redaction` and where it was found (never with the secret).

    One guard can be shared by several stores, agents and threads: a user of the guard that
    needs its own key or its own log takes :meth:`bind`'s copy and never assigns ``key`` or
    ``on_redact`` on the shared one (the configuration itself, ``kinds`` and ``custom``, is
    read-only after construction).
    """

    kinds: tuple[str, ...] = KINDS
    enabled: bool = True
    on_redact: Callable[[Redaction, str], None] | None = None
    custom: Mapping[str, re.Pattern[str]] = field(default_factory=dict)
    key: bytes = field(default_factory=lambda: os.urandom(16), repr=False)

    def __post_init__(self) -> None:
        kinds = tuple(self.kinds)
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown privacy kinds {sorted(unknown)}; choose from {KINDS}")
        custom = {k: re.compile(v) if isinstance(v, str) else v for k, v in self.custom.items()}
        self.kinds = kinds
        self.custom = MappingProxyType(custom)

    def bind(
        self,
        *,
        key: bytes | None = None,
        on_redact: Callable[[Redaction, str], None] | None = None,
    ) -> PrivacyGuard:
        """A copy with its own fingerprint ``key`` and an extra ``on_redact`` hook, called after
        this guard's own hook; this guard is left as it was."""
        hook = self.on_redact
        if on_redact is not None and hook is not None:
            first, then = hook, on_redact

            def both(r: Redaction, where: str) -> None:
                first(r, where)
                then(r, where)

            hook = both
        elif on_redact is not None:
            hook = on_redact
        return replace(
            self, key=self.key if key is None else key, on_redact=hook, custom=dict(self.custom)
        )

    def find(self, text: str) -> list[Redaction]:
        if not self.enabled:
            return []
        return find_secrets(text, self.kinds, key=self.key, custom=self.custom)

    def clean(self, text: str, where: str = "") -> tuple[str, list[Redaction]]:
        if not self.enabled:
            return text, []
        out, found = redact(text, self.kinds, key=self.key, custom=self.custom)
        if self.on_redact:
            for r in found:
                self.on_redact(r, where)
        return out, found


__all__ = [
    "DETECTORS",
    "KINDS",
    "PrivacyGuard",
    "Redaction",
    "card_issuer_ok",
    "find_secrets",
    "fingerprint",
    "iban_ok",
    "luhn_ok",
    "phone_ok",
    "redact",
    "ssn_ok",
]
