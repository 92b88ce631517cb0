"""The ``Memory`` API: incremental causal updates, versions, provenance, forget, privacy,
ownership, export and deletion. Control flow runs on scripted models; the tests marked ``slow``
run the real embedded model end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from memory_fakes import chat, echo_model, extract_reply

from personamem.memory import (
    MemoryUpdateError,
    PrivacyGuard,
    detect_forget,
    third_party,
    written_by_others,
)
from personamem.models import ScriptedModel
from personamem.models.base import Message
from personamem.store import AsyncMemory, Memory, MemoryBusy, UnknownUser, UpdateFailed


@pytest.fixture
def mem(tmp_path: Path) -> Memory:
    m = Memory(
        f"sqlite:///{tmp_path / 'm.db'}",
        model=echo_model(),
        strategy="extract",
        chunk_tokens=40,
        memory_tokens=100000,
    )
    yield m
    m.close()


def prompts_of(model: ScriptedModel) -> list[str]:
    return [c[-1]["content"] for c in model.calls if "Chat:" in c[-1]["content"]]


def cited(prompt: str) -> set[int]:
    return {int(x) for x in re.findall(r"^\[(\d+)\]", prompt, re.M)}


# --- incremental, causal ----------------------------------------------------------------------
def test_updates_only_on_a_full_chunk_and_flush(mem: Memory) -> None:
    r = mem.add(chat(2), "u")  # far less than a chunk
    assert r.stored == [0, 1] and r.versions == [] and r.pending_messages == 2
    assert mem.get("u").version == 0
    r = mem.add(chat(10, start=2), "u")
    assert r.versions and all(v.source == "update" for v in r.versions)
    assert r.pending_messages > 0  # the open chunk waits for more
    flushed = mem.flush("u")
    assert flushed and mem.get("u").pending_messages == 0
    assert mem.flush("u") == []


def test_old_messages_are_never_reread_and_cost_is_flat(tmp_path: Path) -> None:
    model = echo_model()
    mem = Memory(
        f"sqlite:///{tmp_path / 'm.db'}",
        model=model,
        strategy="extract",
        chunk_tokens=40,
        memory_tokens=100000,
    )
    seen: set[int] = set()
    costs: list[int] = []
    for b in range(30):
        n_before = len(model.calls)
        res = mem.add(chat(4, start=4 * b), "u")
        for p in prompts_of(ScriptedModel(calls=model.calls[n_before:])):
            ids = cited(p)
            assert not ids & seen, "an old message was shown to the model again"
            seen |= ids
        costs += [v.tokens_in for v in res.versions]
    assert len(costs) >= 20
    assert max(costs[-5:]) <= max(costs[:5]) * 1.2  # per-update cost does not grow with history
    mem.close()


def test_idempotent_ingestion(mem: Memory) -> None:
    msgs = chat(6)
    first = mem.add(msgs, "u")
    again = mem.add(msgs + chat(2, start=6), "u")
    assert again.duplicates == [m["id"] for m in msgs] and again.stored == [6, 7]
    twice_in_batch = mem.add([{"role": "user", "content": "hello there", "id": "x"}] * 2, "u")
    assert twice_in_batch.stored == [8] and twice_in_batch.duplicates == ["x"]
    no_ids = mem.add(["plain text one", "plain text one"], "u")  # no id: always stored
    assert no_ids.stored == [9, 10]
    assert mem.get("u").messages == 11 and first.stored == list(range(6))
    with pytest.raises(ValueError):
        mem.add([{"role": "wizard", "content": "x"}], "u")


def test_long_message_is_read_in_parts_exactly_once(tmp_path: Path) -> None:
    model = echo_model()
    mem = Memory(
        f"sqlite:///{tmp_path / 'm.db'}",
        model=model,
        strategy="extract",
        chunk_tokens=40,
        memory_tokens=100000,
    )
    long = " ".join(f"Sentence {i} mentions zq{chr(97 + i % 26)}x." for i in range(40))
    mem.add([{"role": "user", "content": long, "id": "long"}], "u")
    mem.add(chat(20, start=1), "u")
    mem.flush("u")
    parts = [p for p in prompts_of(model) if "[0] user (part" in p]
    labels = [m for p in parts for m in re.findall(r"\[0\] user \(part (\d+)/(\d+)\)", p)]
    assert len(labels) == len(set(labels)) and len(labels) == int(labels[0][1])
    assert mem.store.check() == []
    mem.close()


# --- versions, history, edit, undo -------------------------------------------------------------
def test_versions_record_what_produced_them(mem: Memory) -> None:
    mem.add(chat(12), "u")
    mem.flush("u")
    hist = mem.history("u")
    assert [v.version for v in hist] == list(range(1, len(hist) + 1))
    v = hist[0]
    assert v.source == "update" and v.model == "scripted" and v.prompt_version
    assert v.message_ids and v.chunk_tokens > 0 and v.tokens_in > 0 and v.created_at > 0
    assert v.diff.startswith("--- v0\n+++ v1") and "+- enjoy" in v.diff
    assert all(h.diff.startswith(f"--- v{h.parent}") for h in hist)


def test_edit_and_undo(mem: Memory) -> None:
    mem.add(chat(6), "u")
    mem.flush("u")
    v_before = mem.get("u")
    e = mem.edit("u", "- Lives in Lisbon [msg 0]\n- Plays the cello [msg 999]\n- Likes tea")
    assert e.source == "edit" and "+- Lives in Lisbon [msg 0]" in e.diff
    got = mem.get("u")
    assert [ln.text for ln in got.lines] == ["Lives in Lisbon", "Plays the cello", "Likes tea"]
    assert got.lines[1].sources == []  # message 999 does not exist: citation removed
    assert any("999" in w for w in e.warnings)
    u = mem.undo("u")
    assert u.source == "undo" and u.restores == v_before.version
    assert mem.get("u").text == v_before.text
    mem.undo("u")  # undo again walks back further, not forward
    assert mem.get("u").version == v_before.version + 3
    assert len(mem.history("u")) == v_before.version + 3  # nothing was destroyed
    mem.undo("u", version=0)
    assert mem.get("u").lines == []
    mem.undo("u", version=e.version)
    assert mem.get("u").lines[0].text == "Lives in Lisbon"
    with pytest.raises(ValueError):
        mem.undo("u", version=12345)


def test_undo_with_nothing_to_undo(mem: Memory) -> None:
    mem.add(chat(2), "u", update=False)
    with pytest.raises(ValueError):
        mem.undo("u")
    with pytest.raises(UnknownUser):
        mem.undo("nobody")


# --- provenance ---------------------------------------------------------------------------------
def test_every_line_cites_stored_messages(mem: Memory) -> None:
    mem.add(chat(10), "u")
    mem.flush("u")
    got = mem.get("u")
    srcs = mem.sources("u")
    assert len(srcs) == len(got.lines) > 0
    for line, ls in zip(got.lines, srcs, strict=True):
        assert line.sources and [m.seq for m in ls.sources] == line.sources
        for m in ls.sources:
            assert m.role == "user" and line.text.split()[1] in m.content


def test_citations_of_unknown_messages_are_dropped(tmp_path: Path) -> None:
    def liar(messages: list[Message]) -> str:
        reply = json.loads(extract_reply(messages)) if "Chat:" in messages[-1]["content"] else None
        if reply is None:
            return "no"
        for f in reply["facts"]:
            f["messages"] = f["messages"] + [4242]  # a message that does not exist
        return json.dumps(reply)

    mem = Memory(
        f"sqlite:///{tmp_path / 'm.db'}",
        model=ScriptedModel(default=liar),
        strategy="extract",
        chunk_tokens=40,
        memory_tokens=100000,
    )
    mem.add(chat(6), "u")
    mem.flush("u")
    assert all(4242 not in ln.sources and ln.sources for ln in mem.get("u").lines)
    mem.close()


# --- forget -------------------------------------------------------------------------------------
FORGET_PHRASINGS = [
    "Please forget that I love kayaking.",
    "Forget that I love kayaking",
    "Can you forget about my kayaking hobby?",
    "Could you please forget that I love kayaking on weekends",
    "I'd like you to forget that I love kayaking.",
    "Don't remember that I love kayaking anymore.",
    "Stop remembering that I love kayaking, thanks.",
    "Please remove from your memory that I love kayaking.",
    "Erase what I said about kayaking.",
    "Delete the fact that I love kayaking.",
    "Never mind what I said about kayaking, please forget it.",
]
NOT_FORGET = [
    "Remove the comma from this sentence: I love kayaking.",
    "Delete the last paragraph of the email please.",
    "I forget my keys all the time.",
    "Forget it, let's talk about something else.",
    "Can you remove the jargon from this text?",
    "Write a poem about how we never forget our first love.",
]


@pytest.mark.parametrize("text", FORGET_PHRASINGS)
def test_detect_forget(text: str) -> None:
    what = detect_forget(text)
    assert what and "kayak" in what.lower(), what


@pytest.mark.parametrize("text", NOT_FORGET)
def test_not_a_forget_request(text: str) -> None:
    assert detect_forget(text) is None


@pytest.mark.parametrize("request_text", FORGET_PHRASINGS[::2] + FORGET_PHRASINGS[-3:])
def test_forget_request_in_conversation(tmp_path: Path, request_text: str) -> None:
    mem = Memory(
        f"sqlite:///{tmp_path / 'm.db'}",
        model=echo_model(),
        strategy="extract",
        chunk_tokens=40,
        memory_tokens=100000,
    )
    mem.add([{"role": "user", "content": "I love kayaking on weekends", "id": "k"}], "u")
    mem.add(chat(4, start=1), "u")
    mem.flush("u")
    assert any("kayak" in ln.text for ln in mem.get("u").lines)
    mem.add([{"role": "user", "content": request_text, "id": "f"}], "u")
    mem.flush("u")
    got = mem.get("u")
    assert not any("kayak" in ln.text for ln in got.lines), got.text
    assert any("kayak" in f.lower() for f in got.forgotten)
    assert len(got.lines) == 2  # the other facts stay
    # ... and it stays out of later updates.
    mem.add([{"role": "user", "content": "I love kayaking on weekends", "id": "k2"}], "u")
    mem.flush("u")
    assert not any("kayak" in ln.text for ln in mem.get("u").lines)
    mem.close()


@pytest.mark.parametrize("text", NOT_FORGET[:2])
def test_edit_requests_do_not_forget(tmp_path: Path, text: str) -> None:
    mem = Memory(
        f"sqlite:///{tmp_path / 'm.db'}",
        model=echo_model(),
        strategy="extract",
        chunk_tokens=40,
        memory_tokens=100000,
    )
    mem.add([{"role": "user", "content": "I love kayaking on weekends", "id": "k"}], "u")
    mem.flush("u")
    mem.add([{"role": "user", "content": text, "id": "e"}], "u")
    mem.flush("u")
    got = mem.get("u")
    assert any("kayak" in ln.text for ln in got.lines) and got.forgotten == []
    mem.close()


def test_forget_api_and_undo_of_forget(mem: Memory) -> None:
    mem.add([{"role": "user", "content": "I love kayaking on weekends", "id": "k"}], "u")
    mem.add(chat(4, start=1), "u")
    mem.flush("u")
    v = mem.forget("u", "that I love kayaking")
    assert v.source == "forget" and v.report["removed"] == 1
    # The diff shows exactly the one line removed, and nothing added.
    changed = [ln for ln in v.diff.splitlines()[2:] if ln.startswith(("-", "+"))]
    assert len(changed) == 1 and changed[0].startswith("-- ") and "kayaking" in changed[0]
    assert not any("kayak" in ln.text for ln in mem.get("u").lines)
    mem.add([{"role": "user", "content": "I love kayaking on weekends", "id": "k2"}], "u")
    mem.flush("u")
    assert not any("kayak" in ln.text for ln in mem.get("u").lines)  # kept out
    # Undoing the forget() call lifts it; a conversation's forget request would stay in force.
    mem.undo("u", version=v.parent)
    got = mem.get("u")
    assert any("kayak" in ln.text for ln in got.lines) and got.forgotten == []
    # A person writing it back in by hand also lifts it.
    mem.forget("u", "kayaking")
    assert mem.get("u").forgotten == ["kayaking"]
    mem.edit("u", mem.get("u").text + "\n- Loves kayaking on weekends")
    assert mem.get("u").forgotten == []


def test_undo_keeps_conversation_forgets(mem: Memory) -> None:
    mem.add([{"role": "user", "content": "I love kayaking on weekends", "id": "k"}], "u")
    mem.add(chat(4, start=1), "u")
    mem.flush("u")
    good = mem.get("u").version
    mem.add([{"role": "user", "content": "Please forget that I love kayaking.", "id": "f"}], "u")
    mem.flush("u")
    v = mem.undo("u", version=good)
    got = mem.get("u")
    assert not any("kayak" in ln.text for ln in got.lines) and got.forgotten
    assert any("forget" in w for w in v.warnings)


# --- failures -----------------------------------------------------------------------------------
def test_failed_model_call_keeps_memory_and_pending(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'm.db'}"
    good = Memory(db, model=echo_model(), strategy="extract", chunk_tokens=40, memory_tokens=100000)
    good.add(chat(8), "u")
    before = good.get("u")
    bad = Memory(
        db, model=echo_model(fail=True), strategy="extract", chunk_tokens=40, memory_tokens=100000
    )
    with pytest.raises(UpdateFailed) as err:
        bad.add(chat(12, start=8), "u")
    assert err.value.result.stored == list(range(8, 20))
    after = bad.get("u")
    assert after.version == before.version and after.text == before.text
    assert after.pending_messages == before.pending_messages + 12
    assert good.flush("u") and good.get("u").pending_messages == 0  # lease was released
    assert good.store.check() == []
    good.close()
    bad.close()


def test_failed_forget_changes_nothing(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'm.db'}"
    good = Memory(db, model=echo_model(), strategy="extract", chunk_tokens=40, memory_tokens=100000)
    good.add([{"role": "user", "content": "I love kayaking on weekends", "id": "k"}], "u")
    good.flush("u")
    before = good.get("u")
    bad = Memory(
        db, model=echo_model(fail=True), strategy="extract", chunk_tokens=40, memory_tokens=100000
    )
    with pytest.raises(MemoryUpdateError):
        bad.forget("u", "kayaking trips")
    assert good.get("u") == before
    good.close()
    bad.close()


def test_busy_lease_times_out_with_messages_kept(mem: Memory) -> None:
    mem.add(chat(2), "u", update=False)
    assert mem.store.acquire("u", "another-live-worker", ttl=60)
    mem.aio.lock_timeout = 0.3
    with pytest.raises(MemoryBusy) as err:
        mem.add(chat(20, start=2), "u")
    assert err.value.result is not None and err.value.result.stored == list(range(2, 22))
    assert mem.get("u").pending_messages == 22
    mem.store.release("u", "another-live-worker")
    assert mem.flush("u") and mem.get("u").pending_messages == 0


# --- privacy ------------------------------------------------------------------------------------
SECRET_CHAT = [
    {
        "role": "user",
        "id": "s1",
        "content": "My email is emily.lawson82@protonmail.com and my "
        "phone is +1-206-498-7235, I enjoy zqsecretsport",
    },
    {
        "role": "user",
        "id": "s2",
        "content": "Here is my key sk-P83jF4h29JvZc0tQr8BvzTnb1E7kX9mH, "
        "card 4111 1111 1111 1111, I live at 7421 Pine Crest Avenue",
    },
    {"role": "user", "id": "s3", "content": "The meeting is on 2024-03-15 at 10:30 and costs $45."},
]
SECRETS = ["emily.lawson82", "206-498-7235", "sk-P83jF4h29", "4111 1111", "7421 Pine Crest"]


def test_secrets_never_reach_model_memory_or_export(tmp_path: Path) -> None:
    model = echo_model()
    mem = Memory(
        f"sqlite:///{tmp_path / 'm.db'}",
        model=model,
        strategy="extract",
        chunk_tokens=40,
        memory_tokens=100000,
    )
    res = mem.add(SECRET_CHAT, "u")
    mem.flush("u")
    assert res.redactions == 5
    blob = json.dumps(mem.export("u")) + json.dumps([c for c in model.calls])
    for s in SECRETS:
        assert s not in blob
    assert "2024-03-15" in blob and "10:30" in blob and "$45" in blob  # ordinary numbers survive
    log = mem.export("u")["redactions"]
    assert sorted(r["kind"] for r in log) == ["address", "api_key", "card", "email", "phone"]
    assert all(r["location"].startswith("message ") and r["fingerprint"] for r in log)
    raw = b"".join(f.read_bytes() for f in tmp_path.glob("m.db*"))
    for s in SECRETS:
        assert s.encode() not in raw  # not even in the database file
    mem.close()


def test_secret_written_by_the_model_is_redacted(tmp_path: Path) -> None:
    def leaky(messages: list[Message]) -> str:
        if "Chat:" not in messages[-1]["content"]:
            return "no"
        fact = {
            "fact": "Can be reached at (415) 555-0132 after work",
            "about": "user",
            "messages": [0],
        }
        return json.dumps({"facts": [fact]})

    mem = Memory(
        f"sqlite:///{tmp_path / 'm.db'}",
        model=ScriptedModel(default=leaky),
        strategy="extract",
        chunk_tokens=40,
        memory_tokens=100000,
    )
    mem.add("I work late most days", "u")
    versions = mem.flush("u")
    text = mem.get("u").text
    assert "555-0132" not in text and "[REDACTED phone]" in text
    log = mem.export("u")["redactions"]
    assert [(r["kind"], r["location"], r["version"]) for r in log] == [
        ("phone", "memory", versions[-1].version)
    ]
    mem.close()


def test_edit_with_a_secret_is_redacted(mem: Memory) -> None:
    mem.add("hello there friend", "u", update=False)
    v = mem.edit("u", "- Password is hunter2x!\n- Likes tea")
    assert "hunter2x" not in mem.get("u").text
    assert [r["location"] for r in mem.export("u")["redactions"]] == ["edit"]
    assert v.warnings


def test_privacy_is_configurable(tmp_path: Path) -> None:
    only_email = Memory(
        f"sqlite:///{tmp_path / 'a.db'}",
        model=echo_model(),
        strategy="extract",
        chunk_tokens=40,
        privacy=PrivacyGuard(kinds=("email",)),
    )
    only_email.add("mail a.b@example.org or call +1 206 498 7235", "u", update=False)
    stored = only_email.store.messages("u")[0].content
    assert "a.b@example.org" not in stored and "+1 206 498 7235" in stored
    off = Memory(f"sqlite:///{tmp_path / 'b.db'}", model=echo_model(), privacy=False)
    off.add("mail a.b@example.org", "u", update=False)
    assert off.store.messages("u")[0].content == "mail a.b@example.org"
    only_email.close()
    off.close()


# --- ownership (deterministic part) -------------------------------------------------------------
def test_facts_about_others_are_not_stored(mem: Memory) -> None:
    mem.add(
        [
            {"role": "user", "id": "1", "content": "FRIEND: Sarah adores zqopera and zqballet"},
            {"role": "user", "id": "2", "content": "I enjoy zqhiking with zqdogs"},
        ],
        "u",
    )
    mem.flush("u")
    text = mem.get("u").text
    assert "zqhiking" in text and "zqopera" not in text


def test_lines_plainly_about_someone_else_are_not_stored(tmp_path: Path) -> None:
    """Even when the model labels them as the user's (as the 0.5B model does), lines whose
    subject is a third party named in the chat are kept out."""

    def mislabels(messages: list[Message]) -> str:
        if "Chat:" not in messages[-1]["content"]:
            return "no"
        facts = [
            {"fact": "Marco loves heavy metal and vinyl", "about": "user", "messages": [0]},
            {"fact": "Her sister adores opera", "about": "user", "messages": [0]},
            {"fact": "Prefers quiet jazz", "about": "user", "messages": [2]},
        ]
        return json.dumps({"facts": facts})

    mem = Memory(
        f"sqlite:///{tmp_path / 'm.db'}",
        model=ScriptedModel(default=mislabels),
        strategy="extract",
        chunk_tokens=200,
        memory_tokens=100000,
    )
    mem.add(OWNERSHIP_CHAT, "u")
    v = mem.flush("u")[-1]
    assert [ln.text for ln in mem.get("u").lines] == ["Prefers quiet jazz"]
    assert sum("not stored: about" in w for w in v.warnings) == 2
    mem.close()


OWNERSHIP_CHAT = [
    {
        "role": "user",
        "id": "o1",
        "content": (
            "Can you polish this email I'm writing for my friend Marco? He asked me to fix his "
            "grammar.\n\nHi team,\nI am a huge fan of heavy metal and I collect vintage vinyl "
            "records of metal bands. I also love spicy Sichuan food and go to every metal concert "
            "in town.\nBest, Marco"
        ),
    },
    {
        "role": "assistant",
        "content": (
            "Hi team,\nI'm a huge heavy metal fan and collect vintage vinyl records from metal "
            "bands. I also love spicy Sichuan food and try to catch every metal concert in town.\n"
            "Best,\nMarco"
        ),
    },
    {
        "role": "user",
        "id": "o2",
        "content": "Thanks! By the way, I prefer quiet jazz myself and I'm vegetarian.",
    },
    {"role": "assistant", "content": "Noted, happy to help anytime."},
]

TRANSLATION_CHAT = [
    {
        "role": "user",
        "id": "t1",
        "content": "Please translate this message from my colleague "
        "Yuki into English: « Je suis végétarienne, j'adore le jazz et je fais de l'escalade tous "
        "les week-ends. »",
    },
    {
        "role": "assistant",
        "content": '"I am vegetarian, I love jazz and I go rock climbing every weekend."',
    },
    {
        "role": "user",
        "id": "t2",
        "content": "Great. I'm the opposite, I love a good steak and I "
        "spend my weekends gardening.",
    },
]
HYPOTHETICAL_CHAT = [
    {
        "role": "user",
        "id": "h1",
        "content": "Imagine I were a professional surfer living in "
        "Hawaii. What would my morning routine look like?",
    },
    {
        "role": "assistant",
        "content": "You'd wake before dawn, check the swell, surf for two hours "
        "and eat a big breakfast of fruit and eggs.",
    },
    {
        "role": "user",
        "id": "h2",
        "content": "Fun! In reality I work night shifts as a nurse in "
        "Chicago and I sleep until noon.",
    },
]


@pytest.mark.parametrize(
    ("chat_messages", "facts", "kept"),
    [
        (
            TRANSLATION_CHAT,
            [
                "I am vegetarian, I love jazz and I go rock climbing every weekend.",
                "Loves a good steak",
                "Spends weekends gardening",
            ],
            ["Loves a good steak", "Spends weekends gardening"],
        ),
        (
            OWNERSHIP_CHAT,
            [
                "I am a huge fan of heavy metal and I collect vintage vinyl records of metal "
                "bands.",
                "Loves spicy Sichuan food",
                "Prefers quiet jazz",
            ],
            ["Prefers quiet jazz"],
        ),
        (
            HYPOTHETICAL_CHAT,
            [
                "You'd wake before dawn, check the swell, surf for two hours and eat a big "
                "breakfast of fruit and eggs.",
                "Is a professional surfer living in Hawaii",
                "Works night shifts as a nurse in Chicago",
            ],
            ["Works night shifts as a nurse in Chicago"],
        ),
    ],
    ids=["colleague-translation", "friends-email-sentences", "hypothetical"],
)
def test_translations_and_hypotheticals_are_not_stored(
    tmp_path: Path, chat_messages: list[dict[str, str]], facts: list[str], kept: list[str]
) -> None:
    def mislabels(messages: list[Message]) -> str:
        if "Chat:" not in messages[-1]["content"]:
            return "no"
        out = [{"fact": f, "about": "user", "messages": [0, 2]} for f in facts]
        return json.dumps({"facts": out})

    mem = Memory(
        f"sqlite:///{tmp_path / 'm.db'}",
        model=ScriptedModel(default=mislabels),
        strategy="extract",
        chunk_tokens=300,
        memory_tokens=100000,
    )
    mem.add(chat_messages, "u")
    mem.flush("u")
    assert [ln.text for ln in mem.get("u").lines] == kept
    mem.close()


def test_written_by_others() -> None:
    email = OWNERSHIP_CHAT[0]["content"]
    assert written_by_others(email, email).startswith("Hi team,\nI am a huge fan of heavy metal")
    own = "Please polish my email.\n\nHi Sarah,\nI love my morning walks.\n\nBest,\nEmily"
    assert written_by_others(own, own) == ""  # signed by the user, addressed to Sarah
    quoted = TRANSLATION_CHAT[0]["content"]
    assert "végétarienne" in written_by_others(quoted, quoted)


@pytest.mark.parametrize(
    ("line", "who"),
    [
        ("Marco loves heavy metal", "Marco"),
        ("She prefers tea", "She"),
        ("User's friend likes golf", "User's friend"),
        ("Sarah prefers email", "Sarah"),
        ("Enjoys hiking", None),
        ("Prefers Seattle coffee", None),
        ("Hiking is a hobby", None),
    ],
)
def test_third_party_subjects(line: str, who: str | None) -> None:
    chat_text = "[0] user: Polish this email for my friend Marco. Best, Marco\n[2] user: Hi Sarah!"
    assert third_party(line, chat_text) == who


# --- reading, answering, export, delete ----------------------------------------------------------
def test_context_and_answer(tmp_path: Path) -> None:
    model = echo_model()
    mem = Memory(
        f"sqlite:///{tmp_path / 'm.db'}",
        model=model,
        strategy="extract",
        chunk_tokens=40,
        memory_tokens=100000,
    )
    mem.add(chat(10), "u")
    mem.flush("u")
    full = mem.context("u")
    assert "[msg" not in full and full.count("\n") == len(mem.get("u").lines) - 1
    short = mem.context("u", max_tokens=12)
    assert 0 < len(short) < len(full) and full.endswith(short.splitlines()[-1])
    assert mem.context("nobody") == "No previous memory."
    model.default = "Final Answer: B"
    a = mem.answer("u", "Which hobby?", ["zqa", "zqb", "zqc"])
    assert a.choice is not None and "enjoy" in a.prompt
    model.default = "A personalised reply."
    assert mem.answer("u", "Suggest a weekend plan").text == "A personalised reply."
    mem.close()


def test_export_and_delete_user(mem: Memory) -> None:
    mem.add(chat(8), "u")
    mem.add(chat(4), "other")
    mem.flush("u")
    mem.edit("u", "- A corrected fact")
    data = json.loads(json.dumps(mem.export("u")))
    assert data["memory"]["text"] == "- A corrected fact"
    assert len(data["messages"]) == 8 and len(data["versions"]) == len(mem.history("u"))
    assert data["versions"][0]["lines"] and "diff" in data["versions"][0]
    assert "fingerprint_key" not in json.dumps(data)
    counts = mem.delete_user("u")
    assert counts["messages"] == 8 and counts["users"] == 1
    with pytest.raises(UnknownUser):
        mem.get("u")
    assert mem.users() == ["other"] and mem.store.check() == []


async def test_async_twin(tmp_path: Path) -> None:
    mem = AsyncMemory(
        f"sqlite:///{tmp_path / 'm.db'}",
        model=echo_model(),
        strategy="extract",
        chunk_tokens=40,
        memory_tokens=100000,
    )
    res = await mem.add(chat(12), "u")
    assert res.versions
    await mem.flush("u")
    got = await mem.get("u")
    assert got.lines and (await mem.history("u"))
    await mem.edit("u", "- Likes tea")
    await mem.undo("u")
    assert (await mem.get("u")).text == got.text
    assert (await mem.sources("u"))[0].sources
    assert (await mem.export("u"))["memory"]["version"] == got.version + 2
    await mem.forget("u", "tea")
    assert (await mem.context("u")).startswith("- enjoy")
    await mem.delete_user("u")
    assert await mem.users() == []
    mem.close()


# --- the real model -----------------------------------------------------------------------------
SAMPLE = Path("/work/shared/data/personamem-v2-sample/data/chat_history_32k")


@pytest.mark.slow
def test_real_model_end_to_end(tmp_path: Path) -> None:
    """Two chunks of the real sample history through ``Memory.add`` with the embedded model."""
    files = sorted(SAMPLE.glob("*.json"))
    if not files:
        pytest.skip("real sample not available")
    history = json.loads(files[0].read_text())["chat_history"]
    mem = Memory(
        f"sqlite:///{tmp_path / 'real.db'}",
        model="local/qwen2.5-0.5b",
        strategy="extract",
        chunk_tokens=800,
        memory_tokens=256,
    )
    msgs = [dict(m, id=f"h{i}") for i, m in enumerate(history[:14])]
    mem.add(msgs, "emily")
    mem.flush("emily")
    hist = mem.history("emily")
    assert len(hist) >= 2 and all(v.model == "local/qwen2.5-0.5b" for v in hist)
    got = mem.get("emily")
    assert got.lines and got.pending_messages == 0
    stored = {m.seq for m in mem.store.messages("emily")}
    assert any(ln.sources for ln in got.lines)
    assert all(set(ln.sources) <= stored for ln in got.lines)
    assert "Emily Charlotte Lawson" not in got.text  # the system prompt's persona is never read
    assert mem.store.check() == []
    mem.close()


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="measured: Qwen2.5-0.5B with `extract` writes the user's own line as Marco's "
    "('Marco also loves quiet jazz myself and I'm vegetarian'), which the ownership guard then "
    "drops, so the user's own preferences are lost (the default select writer keeps them: "
    "test_default_writer_keeps_a_friends_preferences_out). Strict: passing again is reported.",
)
def test_real_model_keeps_a_friends_preferences_out(tmp_path: Path) -> None:
    mem = Memory(
        f"sqlite:///{tmp_path / 'own.db'}",
        model="local/qwen2.5-0.5b",
        strategy="extract",
        chunk_tokens=800,
        memory_tokens=256,
    )
    mem.add(OWNERSHIP_CHAT, "u")
    mem.flush("u")
    text = mem.get("u").text.lower()
    dropped = [w for v in mem.history("u") for w in v.warnings if "not stored: about" in w]
    print("\nmemory:\n" + text + "\nkept out by the ownership guard:\n" + "\n".join(dropped))
    leaked = [w for w in ("metal", "vinyl", "sichuan", "concert") if w in text]
    assert not leaked, f"the friend's preferences were stored as the user's: {leaked}\n{text}"
    # Keeping everything out passes the check above; the user's own preferences must stay.
    assert any(w in text for w in ("jazz", "vegetarian")), f"the user's own were lost:\n{text}"
    mem.close()


@pytest.mark.slow
def test_default_writer_keeps_a_friends_preferences_out(tmp_path: Path) -> None:
    """The default memory (select strategy, notes by the 1.5B writer) on the same chat: the
    friend's email never becomes the user's profile; the user's own line does."""
    from personamem.models import DEFAULT_MEMORY_MODEL

    mem = Memory(f"sqlite:///{tmp_path / 'own.db'}", chunk_tokens=800, memory_tokens=256)
    mem.add(OWNERSHIP_CHAT, "u")
    mem.flush("u")
    got = mem.get("u")
    text = got.text.lower()
    print("\nmemory:\n" + got.text)
    assert all(v.model == DEFAULT_MEMORY_MODEL for v in mem.history("u"))
    leaked = [w for w in ("metal", "vinyl", "sichuan", "concert") if w in text]
    assert not leaked, f"the friend's preferences were stored as the user's: {leaked}\n{text}"
    assert "jazz" in text or "vegetarian" in text, text
    mem.close()
