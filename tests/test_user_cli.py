"""``personamem user ...`` end to end on a temporary store (scripted model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from memory_fakes import chat, echo_model
from typer.testing import CliRunner

import personamem.store.core as api
from personamem.cli import app

runner = CliRunner()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    model = echo_model()
    monkeypatch.setattr(api, "get_model", lambda spec: model)
    monkeypatch.setenv("PERSONAMEM_STORE", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("PERSONAMEM_MODEL", "scripted")
    monkeypatch.setenv("PERSONAMEM_STRATEGY", "extract")  # the scripted model plays the extractor
    return str(tmp_path / "cli.db")


def run(*args: str, input: str | None = None) -> str:
    res = runner.invoke(app, ["user", *args], input=input)
    assert res.exit_code == 0, (res.output, res.exception)
    return res.stdout


def test_full_cycle(store: str, tmp_path: Path) -> None:
    msgs = tmp_path / "msgs.json"
    msgs.write_text(json.dumps(chat(10)))
    out = run("add", "alice", str(msgs), "--chunk-tokens", "40", "--json")
    data = json.loads(out)
    assert data["stored"] == list(range(10)) and data["versions"]
    out = run("add", "alice", str(msgs), "--chunk-tokens", "40", "--flush")
    assert (
        "0 message(s)" in out and "10 duplicate(s)" in out and "0 message(s) (0 tok) pending" in out
    )
    run(
        "add",
        "alice",
        "--text",
        "Please forget that I enjoy zqbba with zqcnm",
        "--flush",
        "--chunk-tokens",
        "40",
    )

    shown = run("show", "alice")
    assert "zqbbc" in shown and "zqbba" not in shown and "[msg 2]" in shown
    with_sources = run("show", "alice", "--sources")
    assert "[msg 2] user: I enjoy zqbbc" in with_sources
    assert json.loads(run("show", "alice", "--json"))["forgotten"]

    hist = run("history", "alice")
    assert "v1 update" in hist and "+- enjoy" in hist
    versions = json.loads(run("history", "alice", "--json"))
    n = len(versions)

    new = tmp_path / "mem.txt"
    new.write_text("- Lives in Porto [msg 0]\n- Drinks green tea\n")
    out = run("edit", "alice", "--file", str(new))
    assert f"v{n + 1} edit" in out and "+- Drinks green tea" in out
    assert run("show", "alice").startswith("- Lives in Porto [msg 0]")

    out = run("forget", "alice", "that I drink green tea")
    assert "forget" in out and "removed 1 line(s)" in out
    assert "green tea" not in run("show", "alice")

    out = run("undo", "alice")
    assert "undo" in out and "green tea" in run("show", "alice")
    run("undo", "alice", "--version", "1")
    assert json.loads(run("show", "alice", "--json"))["version"] == n + 4

    dest = tmp_path / "export.json"
    run("export", "alice", "--out", str(dest))
    exported = json.loads(dest.read_text())
    assert exported["user"]["user_id"] == "alice" and len(exported["versions"]) == n + 4
    assert json.loads(run("export", "alice"))["memory"]["version"] == n + 4

    assert "alice" in run("list")
    out = run("delete", "alice", "--yes")
    assert "deleted alice" in out
    res = runner.invoke(app, ["user", "show", "alice"])
    assert res.exit_code == 1 and "unknown user" in res.output


def test_add_from_stdin_jsonl_and_redaction(store: str) -> None:
    lines = "\n".join(
        json.dumps(m)
        for m in [
            {"role": "user", "content": "my email is bob@example.com", "id": "1"},
            {"role": "user", "content": "I enjoy zqsail with zqfriends", "id": "2"},
        ]
    )
    out = run("add", "bob", "-", "--no-update", input=lines)
    assert "stored 2 message(s)" in out and "1 redaction(s)" in out
    exported = json.loads(run("export", "bob"))
    assert "bob@example.com" not in json.dumps(exported)
    assert exported["redactions"][0]["kind"] == "email"


def test_answer_and_flush(store: str) -> None:
    run("add", "carol", "--text", "I enjoy zqpottery with zqclay", "--no-update")
    out = run("flush", "carol", "--chunk-tokens", "40")
    assert "v1 update" in out
    assert "nothing pending" in run("flush", "carol")
    data = json.loads(run("answer", "carol", "-q", "What should I do this weekend?", "--json"))
    # the answer was asked with carol's memory and the query, and shows the model's reply as is
    assert "zqpottery" in data["prompt"] and "What should I do this weekend?" in data["prompt"]
    assert data["text"] == "no" and data["method"] == "generate"  # what the echo model says
    assert run("answer", "carol", "-q", "What should I do?").strip() == "no"


def test_errors(store: str, tmp_path: Path) -> None:
    res = runner.invoke(app, ["user", "history", "nobody"])
    assert res.exit_code == 1 and "unknown user" in res.output
    res = runner.invoke(app, ["user", "add", "x"])
    assert res.exit_code == 1 and "give a FILE" in res.output
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    res = runner.invoke(app, ["user", "add", "x", str(bad)])
    assert res.exit_code == 1
    run("add", "dave", "--text", "hello there", "--no-update")
    res = runner.invoke(app, ["user", "undo", "dave"])
    assert res.exit_code == 1 and "no memory version" in res.output
    res = runner.invoke(app, ["user", "delete", "dave"], input="n\n")
    assert res.exit_code == 1
    res = runner.invoke(app, ["user", "show", "x", "--store", "postgresql://h/db"])
    assert res.exit_code == 1 and "PostgreSQL" in res.output
