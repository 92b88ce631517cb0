"""The privacy detectors against a corpus of realistic positive and negative examples.

Positives: each text holds one secret of a known kind; it must be found and redacted (the secret
string must be gone). Negatives: ordinary text with numbers, dates, times, prices, versions, years,
zip codes, order numbers, ISBNs and percentages; nothing may be redacted.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from personamem.memory.privacy import (
    KINDS,
    PrivacyGuard,
    card_issuer_ok,
    find_secrets,
    iban_ok,
    luhn_ok,
    phone_ok,
    redact,
    ssn_ok,
)

# (text, kind, secret)
POSITIVES: list[tuple[str, str, str]] = [
    # api keys and tokens
    (
        "my key is sk-P83jF4h29JvZc0tQr8BvzTnb1E7kX9mH, can you debug this?",
        "api_key",
        "sk-P83jF4h29JvZc0tQr8BvzTnb1E7kX9mH",
    ),
    (
        "OPENAI_API_KEY=sk-proj-4fQz9XbL2mN8vR1tY6uW3eS7aD0cK5hJ",
        "api_key",
        "sk-proj-4fQz9XbL2mN8vR1tY6uW3eS7aD0cK5hJ",
    ),
    (
        "client = Anthropic(api_key='sk-ant-api03-Zx81kLmN0pQr5sTuVw9yAbCdEf')",
        "api_key",
        "sk-ant-api03-Zx81kLmN0pQr5sTuVw9yAbCdEf",
    ),
    (
        "stripe.api_key = 'sk_live_51HqLyjWDarjtT1zdp7dcXyZ0'",
        "api_key",
        "sk_live_51HqLyjWDarjtT1zdp7dcXyZ0",
    ),
    ("aws access key AKIAIOSFODNN7EXAMPLE in the config", "api_key", "AKIAIOSFODNN7EXAMPLE"),
    (
        "export GITHUB_TOKEN=ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        "api_key",
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    ),
    (
        "HF token hf_AbCdEfGhIjKlMnOpQrStUvWxYz123456 stopped working",
        "api_key",
        "hf_AbCdEfGhIjKlMnOpQrStUvWxYz123456",
    ),
    ("slack bot token xoxb-2048-113355-AbCdEfGh12 fails", "api_key", "xoxb-2048-113355-AbCdEfGh12"),
    (
        "Authorization: Bearer "
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
        "api_key",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
    ),
    (
        "my api key is 9f8e7d6c5b4a39281706f5e4d3c2b1a0 for the weather service",
        "api_key",
        "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    ),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "api_key",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq\n-----END RSA PRIVATE KEY-----",
        "api_key",
        "MIIEowIBAAKCAQEA7bq",
    ),
    ("gitlab: glpat-xY7zQ2wR9vT4uS1pL0kM", "api_key", "glpat-xY7zQ2wR9vT4uS1pL0kM"),
    # passwords and PINs
    ("my password is Tr0ub4dor&3 but I keep forgetting it", "password", "Tr0ub4dor&3"),
    ("wifi password: bluefalcon", "password", "bluefalcon"),
    ("The password for my work laptop is Seahawks2024!", "password", "Seahawks2024!"),
    (
        "I changed my password to 'correct horse battery staple' yesterday",
        "password",
        "correct horse battery staple",
    ),
    ("my netflix password is sunshine99", "password", "sunshine99"),
    ("my gmail password is marmalade", "password", "marmalade"),
    ("db = postgres://admin:s3cretPa55@db.example.com:5432/app", "password", "s3cretPa55"),
    ("My bank PIN is 4821, is that too easy to guess?", "password", "4821"),
    ("pin: 0937", "password", "0937"),
    # emails
    (
        "Email me at emily.lawson82@protonmail.com when it is ready",
        "email",
        "emily.lawson82@protonmail.com",
    ),
    ("cc j.smith+invoices@company.co.uk please", "email", "j.smith+invoices@company.co.uk"),
    ("contact: maria [at] gmail [dot] com", "email", "maria [at] gmail [dot] com"),
    # phones
    ("call me on +1-206-498-7235 after 6", "phone", "+1-206-498-7235"),
    ("My number is (415) 555-0132.", "phone", "(415) 555-0132"),
    ("text 206.498.7235 if you are late", "phone", "206.498.7235"),
    ("our London office is +44 20 7946 0958", "phone", "+44 20 7946 0958"),
    ("mobile: 06 12 34 56 78", "phone", "06 12 34 56 78"),
    ("call me at 555-1234 tonight", "phone", "555-1234"),
    # cards
    ("charge it to 4111 1111 1111 1111 please", "card", "4111 1111 1111 1111"),
    ("card 5500-0000-0000-0004 expired", "card", "5500-0000-0000-0004"),
    ("Amex 378282246310005 works", "card", "378282246310005"),
    ("my credit card number is 4716 8392 7410 6528", "card", "4716 8392 7410 6528"),
    ("the CVV is 123", "card", "123"),
    # iban
    ("wire it to DE89 3704 0044 0532 0130 00", "iban", "DE89 3704 0044 0532 0130 00"),
    ("IBAN GB82WEST12345698765432 for the deposit", "iban", "GB82WEST12345698765432"),
    # government ids
    ("my SSN is 528-64-1937", "gov_id", "528-64-1937"),
    ("social security number 528641937 on the form", "gov_id", "528641937"),
    ("NI number JG 10 37 21 B", "gov_id", "JG 10 37 21 B"),
    ("my passport number is 509283746 and it expires soon", "gov_id", "509283746"),
    ("driver's license: WA-L-837492615", "gov_id", "WA-L-837492615"),
    ("Real ID number WA-ID-938472615", "gov_id", "WA-ID-938472615"),
    ("Passport No. X1234567", "gov_id", "X1234567"),
    # bank accounts
    ("my bank account number is 084927351926", "bank_account", "084927351926"),
    ("routing number 021000021, account 000123456789", "bank_account", "021000021"),
    ("sort code 12-34-56", "bank_account", "12-34-56"),
    # addresses
    (
        "I live at 7421 Pine Crest Avenue, Unit 305, Seattle, WA 98121",
        "address",
        "7421 Pine Crest Avenue",
    ),
    ("Ship it to 1600 Pennsylvania Ave NW", "address", "1600 Pennsylvania Ave"),
    ("the party is at 42 Oak St. Apt 5B", "address", "42 Oak St"),
    ("send mail to P.O. Box 1234", "address", "P.O. Box 1234"),
    ("Meine Adresse ist Hauptstraße 12 in Berlin", "address", "Hauptstraße 12"),
    ("j'habite au 12 rue de la Paix", "address", "12 rue de la Paix"),
    # vehicle plates
    ("my license plate number is WA-PLT-5829AJ", "vehicle_plate", "WA-PLT-5829AJ"),
]

NEGATIVES: list[str] = [
    # dates and times
    "The meeting is on 2024-03-15 at 10:30.",
    "I was born on 12/05/1991 in Portland.",
    "Deadline: 15.06.2025, 17:00 CET.",
    "Between 2019 and 2023 I moved three times.",
    "My flight leaves at 6:45 am on March 3rd.",
    "The timestamp was 2024-01-15T10:30:00Z.",
    "We met in 1998 and married in 2004.",
    # prices, percentages, quantities
    "The laptop costs $1,299.99, about 12% more than last year.",
    "Rent went up from €1,450 to €1,600 per month.",
    "I ran 5 miles in 42 minutes yesterday.",
    "Our revenue grew 23.5% to $4.2 million in Q3 2024.",
    "Add 250 g of flour and 2 tbsp of sugar.",
    "The population of Seattle is about 737,015.",
    "It weighs 1 234 567 grams in total.",
    # versions and technical numbers
    "I upgraded to Python 3.11.7 and numpy 1.26.4.",
    "Version 10.0.19045.3803 of Windows broke my driver.",
    "The server listens on 192.168.1.254:8080.",
    "Commit 91f0b54 fixed the bug in build 20240115.",
    "Set max_tokens=400 and temperature=0.7.",
    "The hash is 5d41402abc4b2a76b9719d911017c592.",
    # zip codes, order numbers, ISBNs, tracking
    "Seattle, WA 98121 has great coffee.",
    "My zip code is 94103-1234.",
    "Order #112-3456789-1234567 has not arrived.",
    "Order number 4501234567 was shipped.",
    "ISBN 978-0-306-40615-7 is the second edition.",
    "The ISBN-10 is 0-306-40615-2.",
    "Tracking: 1Z999AA10123456784",
    "Invoice INV-2024-000123 is overdue.",
    "Flight UA 1234 departs from gate B12.",
    # prose that mentions secrets without containing one
    "I forgot my password again, can you help me reset it?",
    "The password is too short, it needs 12 characters.",
    "My password manager is 1Password and I love it.",
    "The password is case sensitive.",
    "Please pin this message to the top of the channel.",
    "Can you explain how API keys work in general?",
    "I need a phone with a good camera under $500.",
    "My credit card bill was $2,340 this month.",
    "I renewed my passport last year in 2023.",
    "I have had my driver's license for 15 years.",
    "I opened a savings account in 2019 with $500.",
    "He was the bearer of bad news at the meeting.",
    "The access token expires after 3600 seconds.",
    # addresses that are not addresses, and other numbers
    "I rated it 5 stars and wrote a review.",
    "Top 5 Park Avenue restaurants for brunch.",
    "Chapter 12 covers the history of Main Street.",
    "Call 911 in an emergency.",
    "The score was 3-1 after 90 minutes.",
    "Room 305 on the 3rd floor is free.",
    "I read 48 books in 2023, about 4 per month.",
    "The recipe serves 4 to 6 people.",
    "Route 66 runs 2,448 miles from Chicago to Santa Monica.",
    "Product code 4006381333931 is on the barcode.",
    "Our ticket number is 2024-88731.",
    "I scored 1450 on the SAT and 32 on the ACT.",
    "My resting heart rate is 58 bpm and blood pressure 118/76.",
    "Temperature dropped to -5°C on 01/02/2024.",
]


def test_corpus_is_large_enough() -> None:
    assert len(POSITIVES) >= 40 and len(NEGATIVES) >= 40
    assert {k for _, k, _ in POSITIVES} == set(KINDS)


@pytest.mark.parametrize(("text", "kind", "secret"), POSITIVES, ids=[p[2][:24] for p in POSITIVES])
def test_positive(text: str, kind: str, secret: str) -> None:
    found = find_secrets(text)
    assert kind in {r.kind for r in found}, (text, found)
    cleaned, _ = redact(text)
    assert secret not in cleaned, cleaned
    assert f"[REDACTED {kind}]" in cleaned


@pytest.mark.parametrize("text", NEGATIVES)
def test_negative(text: str) -> None:
    found = find_secrets(text)
    assert found == [], [(r.kind, text[r.start : r.end]) for r in found]
    assert redact(text)[0] == text


def test_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert card_issuer_ok("4111111111111111") and not card_issuer_ok("9780306406157")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB82 WEST 1234 5698 7654 33")


def test_bare_luhn_number_without_card_prefix_survives() -> None:
    # passes Luhn but no card scheme starts with 9: an ISBN-like number, not a card
    assert luhn_ok("9780306406157") is False or find_secrets("EAN 9780306406157") == []
    assert find_secrets("reference 7992739871300005") == []


def test_redaction_log_never_holds_the_secret() -> None:
    seen: list[tuple[dict[str, object], str]] = []
    guard = PrivacyGuard(on_redact=lambda r, where: seen.append((r.as_dict(), where)))
    text = "password: hunter2x, card 4111 1111 1111 1111, mail a@b.io"
    out, found = guard.clean(text, where="message 3")
    assert len(found) == 3 and len(seen) == 3
    blob = json.dumps(seen)
    for secret in ("hunter2x", "4111", "a@b.io"):
        assert secret not in blob and secret not in out
    assert all(w == "message 3" for _, w in seen)


def test_fingerprints_are_keyed_and_stable() -> None:
    a = PrivacyGuard(key=b"k1").find("PIN 4821")[0].fingerprint
    b = PrivacyGuard(key=b"k1").find("my PIN is 4821")[0].fingerprint
    c = PrivacyGuard(key=b"k2").find("PIN 4821")[0].fingerprint
    assert a == b != c  # repeats recognisable under one key, not comparable across keys


def test_guard_is_configurable() -> None:
    text = "mail me at a.b@example.org or call +1 206 498 7235"
    only_email = PrivacyGuard(kinds=("email",))
    out, found = only_email.clean(text)
    assert [r.kind for r in found] == ["email"] and "+1 206 498 7235" in out
    off = PrivacyGuard(enabled=False)
    assert off.clean(text) == (text, [])
    custom = PrivacyGuard(custom={"employee_id": re.compile(r"\bEMP-\d{5}\b")})
    assert custom.clean("I am EMP-12345 at work")[0] == "I am [REDACTED employee_id] at work"
    with pytest.raises(ValueError):
        PrivacyGuard(kinds=("email", "horoscope"))


def test_redaction_is_idempotent() -> None:
    text, _ = redact("my SSN is 528-64-1937 and key sk-P83jF4h29JvZc0tQr8BvzTnb1E7kX9mH")
    assert redact(text) == (text, [])


SAMPLE = Path("/work/shared/data/personamem-v2-sample/data")


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="real sample not available")
def test_real_sample() -> None:
    """The real history has no secrets (nothing may be redacted); the generator's fake sensitive
    items (the persona's address, SSN, card, ...) must all be caught when a user writes them."""
    histories = sorted((SAMPLE / "chat_history_32k").glob("*.json"))
    assert histories, f"no chat histories under {SAMPLE / 'chat_history_32k'}"
    checked_messages = 0
    for path in histories:
        history = json.loads(path.read_text())["chat_history"]
        checked_messages += len(history[1:])
        for m in history[1:]:
            found = find_secrets(m["content"])
            assert found == [], [(r.kind, m["content"][r.start : r.end]) for r in found]
    cues = {
        "physical_address": "Please send it to my home, {v}.",
        "email_address": "My email is {v}.",
        "phone_number": "You can call me at {v}.",
        "ssn": "My SSN is {v}.",
        "real_id_number": "My Real ID number is {v}.",
        "passport_number": "My passport number is {v}.",
        "driver_license_number": "My driver's license number is {v}.",
        "bank_account_number": "My bank account number is {v}.",
        "credit_card_number": "My credit card number is {v}.",
        "vehicle_plate_number": "My license plate is {v}.",
        "llm_api_key": "Here is my API key {v} for the script.",
    }
    assert checked_messages > 0
    raw = sorted((SAMPLE / "raw_data").glob("*.json"))
    assert raw, f"no raw persona files under {SAMPLE / 'raw_data'}"
    checked: set[str] = set()
    for path in raw:
        for persona in json.loads(path.read_text()).values():
            info = persona.get("sensitive_information", {})
            for k, template in cues.items():
                if k not in info:
                    continue
                checked.add(k)
                value = str(info[k])
                cleaned, found = redact(template.format(v=value))
                core = value.split(",")[0]  # an address keeps its city and zip
                assert core not in cleaned, (k, cleaned)
                assert found
    # every kind of sensitive item the generator writes was tried at least once
    assert checked == set(cues), sorted(set(cues) - checked)


# --- the libraries behind the checks ------------------------------------------------------------


def test_phone_numbers_are_checked_by_libphonenumber() -> None:
    """A '+' number whose country code does not exist is not a phone number (the shape alone
    would have matched)."""
    assert phone_ok("+44 20 7946 0958") and phone_ok("(415) 555-0132", "US")
    assert not phone_ok("+999 12 3456 7890")
    assert find_secrets("ref +999 12 3456 7890 on the invoice") == []
    assert [r.kind for r in find_secrets("ring +44 20 7946 0958")] == ["phone"]


def test_ssn_ranges_come_from_stdnum() -> None:
    """Numbers no SSN can have (area 000/666/9xx, group 00, the advertising number 078-05-1120)
    are left alone."""
    assert ssn_ok("528-64-1937")
    for number in ("078-05-1120", "000-12-3456", "666-12-3456", "912-34-5678", "123-00-4567"):
        assert not ssn_ok(number)
        assert find_secrets(f"ticket {number} closed") == [], number


def test_iban_country_length_is_checked() -> None:
    """mod-97 alone accepts a German IBAN one character short; the country's length does not."""
    assert iban_ok("DE89370400440532013000")
    assert not iban_ok("DE5137040044053201300")  # passes mod-97, 21 characters


# --- one guard, several users -------------------------------------------------------------------


def test_bound_guards_do_not_share_key_or_log() -> None:
    """Two users (stores) of one guard each bind their own key and log: neither sees the other's
    redactions, the user's own hook sees both, and the shared guard is unchanged."""
    user_log: list[str] = []
    shared = PrivacyGuard(key=b"user", on_redact=lambda r, where: user_log.append(where))
    log_a: list[str] = []
    log_b: list[str] = []
    a = shared.bind(key=b"store-a", on_redact=lambda r, where: log_a.append(where))
    b = shared.bind(key=b"store-b", on_redact=lambda r, where: log_b.append(where))
    fa = a.clean("my PIN is 4821", where="a")[1][0].fingerprint
    fb = b.clean("my PIN is 4821", where="b")[1][0].fingerprint
    assert log_a == ["a"] and log_b == ["b"] and user_log == ["a", "b"]
    assert fa != fb  # each store its own key
    assert shared.key == b"user" and shared.find("PIN 4821")[0].fingerprint not in (fa, fb)
    shared.clean("PIN 4821", where="shared")
    assert log_a == ["a"] and log_b == ["b"]  # the shared guard does not call the bound hooks
    assert a.kinds == shared.kinds and dict(a.custom) == dict(shared.custom)


def test_guard_configuration_is_read_only() -> None:
    guard = PrivacyGuard(kinds=["email"], custom={"emp": r"EMP-\d+"})  # type: ignore[arg-type]
    assert guard.kinds == ("email",)
    with pytest.raises(TypeError):
        guard.custom["other"] = re.compile("x")  # type: ignore[index]
    assert guard.clean("EMP-12 a@b.io")[0] == "[REDACTED emp] [REDACTED email]"


# --- found by mutation testing --------------------------------------------------------------------


def test_redaction_as_dict_names_its_fields() -> None:
    r = PrivacyGuard(key=b"k").find("PIN 4821")[0]
    assert r.as_dict() == {"kind": "password", "start": 4, "end": 8, "fp": r.fingerprint}


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("my password is tulip", None),  # a short plain word after "is" could be prose
        ("my password is hunter", "hunter"),  # 6+ letters, not a prose word
        ("my password is sunflower", "sunflower"),  # 6+ letters, not a prose word
        ("my password is correct", None),  # a prose word
        ("my password is expired", None),  # a participle
        ("password: sunny", "sunny"),  # explicit ":" makes a short word a password
        ("my password is ab1", "ab1"),  # a digit makes it strong
        ("my password is abc!", None),  # the final "!" is punctuation: "abc" is too weak
        ("my password is HelloThere", "HelloThere"),  # inner capital makes it strong
        ("my password is nice.", None),  # trailing punctuation stripped; short plain word
    ],
)
def test_password_value_rules(text: str, secret: str | None) -> None:
    found = [text[r.start : r.end] for r in find_secrets(text, ("password",))]
    assert found == ([secret] if secret else []), found
