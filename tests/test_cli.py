"""The command line (typer's CliRunner): data inspect, memory build, answer, --help everywhere."""

from __future__ import annotations

import json
import re

import pytest
import typer
from conftest import SAMPLE_HISTORY_LINK, history_link, make_row, write_release
from typer.testing import CliRunner

from personamem.cli import app

runner = CliRunner()


def squash(text: str) -> str:
    """Output without whitespace (rich folds long paths over several lines)."""
    return re.sub(r"\s+", "", text)


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def all_output(r) -> str:
    return r.stdout + (r.stderr or "")


# --- --help -------------------------------------------------------------------------------------


def command_paths(cmd: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    if isinstance(getattr(cmd, "commands", None), dict):  # a group (typer vendors click)
        for name, sub in cmd.commands.items():  # type: ignore[attr-defined]
            paths += command_paths(sub, (*prefix, name))
    return paths


PATHS = command_paths(typer.main.get_command(app))


def test_core_commands_are_registered():
    for p in [("data", "inspect"), ("memory", "build"), ("answer",)]:
        assert p in PATHS


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "personamem")
def test_help(path):
    r = invoke(*path, "--help")
    assert r.exit_code == 0, all_output(r)
    assert "Usage" in r.stdout
    assert "--help" in r.stdout


# --- data inspect -------------------------------------------------------------------------------


def test_inspect_sample_text(sample_root):
    r = invoke("data", "inspect", sample_root)
    assert r.exit_code == 0, all_output(r)
    out = r.stdout
    assert re.search(r"\b\d+ questions\b", out)
    for word in ("pref_type", "stereotypical_pref", "updated", "chat histories", "32k"):
        assert word in out


def test_inspect_sample_json(sample_root):
    r = invoke("data", "inspect", sample_root, "--json")
    assert r.exit_code == 0, all_output(r)
    data = json.loads(r.stdout)
    assert data["questions"] >= 36
    assert data["counts"]["split"]["benchmark"] >= 36
    assert sum(data["counts"]["pref_type"].values()) == data["questions"]
    assert sum(data["counts"]["updated"].values()) == data["questions"]
    assert data["histories"]["32k"]["histories"] >= 1
    assert data["histories"]["32k"]["tokens_max"] > 1000
    assert data["tokenizer"] == "local/qwen2.5-0.5b"
    assert data["issues"] == []


def test_inspect_fixture_release_json(release_factory):
    root = release_factory(personas=3, rows_per_persona=2, splits=("benchmark", "val"))
    r = invoke("data", "inspect", root, "--json", "--tokens-model", "scripted")
    assert r.exit_code == 0, all_output(r)
    data = json.loads(r.stdout)
    assert data["questions"] == 12
    assert data["counts"]["split"] == {"benchmark": 6, "val": 6}
    assert data["histories"]["32k"]["histories"] == 3


def test_inspect_folder_without_csv(tmp_path):
    (tmp_path / "benchmark" / "text").mkdir(parents=True)
    r = invoke("data", "inspect", tmp_path, "--tokens-model", "scripted")
    assert r.exit_code != 0
    assert squash(str(tmp_path / "benchmark" / "text")) in squash(all_output(r))
    assert "error" in all_output(r)


def test_inspect_bad_row(tmp_path):
    rows = [make_row(1, 0), make_row(1, 1, updated="maybe"), make_row(2, 0)]
    root = write_release(tmp_path / "r", {"benchmark": rows})
    csv_path = root / "benchmark" / "text" / "benchmark.csv"
    # lenient: the row is reported (file and row) and the others are counted
    r = invoke("data", "inspect", root, "--tokens-model", "scripted")
    assert r.exit_code == 0, all_output(r)
    assert "2 questions" in r.stdout
    assert squash(f"{csv_path}, row 2") in squash(all_output(r))
    r = invoke("data", "inspect", root, "--json", "--tokens-model", "scripted")
    data = json.loads(r.stdout)
    assert data["questions"] == 2
    assert len(data["issues"]) == 1 and f"{csv_path}, row 2" in data["issues"][0]
    # strict: a non-zero exit naming the file and row
    r = invoke("data", "inspect", root, "--strict", "--tokens-model", "scripted")
    assert r.exit_code != 0
    assert squash(f"{csv_path}, row 2") in squash(all_output(r))
    assert "updated" in all_output(r)


def test_inspect_broken_history(tmp_path):
    root = write_release(tmp_path / "r", {"benchmark": [make_row(1, 0), make_row(2, 0)]})
    bad = root / history_link(1)
    bad.write_text("{not json", encoding="utf-8")
    r = invoke("data", "inspect", root, "--json", "--tokens-model", "scripted")
    assert r.exit_code == 0, all_output(r)
    data = json.loads(r.stdout)
    assert data["histories"]["32k"]["histories"] == 1
    assert any(str(bad) in i for i in data["issues"])
    r = invoke("data", "inspect", root, "--strict", "--tokens-model", "scripted")
    assert r.exit_code != 0
    assert squash(str(bad)) in squash(all_output(r))


def test_inspect_missing_folder(tmp_path):
    r = invoke("data", "inspect", tmp_path / "nowhere", "--tokens-model", "scripted")
    assert r.exit_code != 0
    assert "nowhere" in squash(all_output(r))


def test_inspect_unknown_tokens_model(sample_root):
    r = invoke("data", "inspect", sample_root, "--tokens-model", "nonsense-model")
    assert r.exit_code != 0
    assert "nonsense-model" in all_output(r)


# --- memory build (scripted model: control flow only) --------------------------------------------


def test_memory_build_scripted(sample_root, tmp_path, monkeypatch):
    """The build writes what the model extracted (the echo model turns each user message of the
    chunk into a fact) from the chunks read, and nothing from the chunks after them."""
    from memory_fakes import echo_model

    import personamem.cli as cli

    model = echo_model()
    monkeypatch.setattr(cli, "get_model", lambda spec, n_ctx=None: model)
    out_file = tmp_path / "memory.txt"
    r = invoke(
        "memory",
        "build",
        sample_root / SAMPLE_HISTORY_LINK,
        "--model",
        "scripted",
        "--chunk-tokens",
        "3000",
        "--max-chunks",
        "2",
        "--out",
        out_file,
        "--json",
        "--strategy",
        "extract",
    )
    assert r.exit_code == 0, all_output(r)
    data = json.loads(r.stdout)
    assert data["chunks"] == 2 and len(data["reports"]) == 2
    assert data["model"] == "scripted" and data["chunk_tokens"] == 3000
    assert data["strategy"] == "extract" and data["memory_cap"] == 2048
    assert data["tokens_in"] > 0
    lines = data["memory"].splitlines()
    assert lines and all(ln.startswith("- ") for ln in lines), data["memory"]
    assert data["memory"] != "No previous memory."
    assert out_file.read_text(encoding="utf-8") == data["memory"] + "\n"
    # every line comes from a user message the model was shown in the two chunks
    shown = "\n".join(m["content"] for call in model.calls for m in call)
    for ln in lines:
        words = ln.removeprefix("- ").split(" [")[0].split()
        assert words and all(w in shown for w in words), ln


def test_memory_build_scripted_empty_reply_is_warned(sample_root):
    """A model that extracts nothing leaves the memory empty, and the build says so."""
    r = invoke(
        "memory",
        "build",
        sample_root / SAMPLE_HISTORY_LINK,
        "--model",
        "scripted",
        "--chunk-tokens",
        "3000",
        "--max-chunks",
        "1",
        "--json",
        "--strategy",
        "extract",
    )
    assert r.exit_code == 0, all_output(r)
    data = json.loads(r.stdout)
    assert data["memory"] == "No previous memory." and data["warnings"]


def test_memory_build_text_output(tmp_path):
    hist = tmp_path / "h.json"
    hist.write_text(
        json.dumps({"chat_history": [{"role": "user", "content": "I like tea."}]}), encoding="utf-8"
    )
    r = invoke("memory", "build", hist, "--model", "scripted", "--strategy", "rewrite")
    assert r.exit_code == 0, all_output(r)
    assert "No previous memory." in r.stdout
    assert "1 chunks" in all_output(r)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--strategy", "magic"], "strategy"),
        (["--model", "bogus-model"], "bogus-model"),
    ],
)
def test_memory_build_bad_options(sample_root, args, words):
    r = invoke("memory", "build", sample_root / SAMPLE_HISTORY_LINK, *args)
    assert r.exit_code != 0
    assert words in all_output(r)


def test_memory_build_bad_history(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("[{", encoding="utf-8")
    r = invoke("memory", "build", bad, "--model", "scripted")
    assert r.exit_code != 0
    assert squash(str(bad)) in squash(all_output(r))
    r = invoke("memory", "build", tmp_path / "missing.json", "--model", "scripted")
    assert r.exit_code != 0
    assert "missing.json" in squash(all_output(r))


# --- answer (scripted model: control flow only) --------------------------------------------------

OPTS = ["--option", "Go hiking", "--option", "Watch TV", "--option", "Read", "--option", "Sleep"]


def test_answer_mcq_scripted(tmp_path):
    mem = tmp_path / "memory.txt"
    mem.write_text("- Loves hiking\n", encoding="utf-8")
    r = invoke(
        "answer",
        "--query",
        "What should I do this weekend?",
        "--memory",
        mem,
        "--model",
        "scripted",
        *OPTS,
        "--json",
    )
    assert r.exit_code == 0, all_output(r)
    data = json.loads(r.stdout)
    assert data["method"] == "generate"
    assert data["choice"] is None  # "I don't know." names no option
    assert len(data["raw"]) == 4 and "Loves hiking" in data["prompt"]
    assert data["history_tokens_dropped"] == 0
    r = invoke("answer", "-q", "What should I do?", "--model", "scripted", *OPTS)
    assert r.exit_code == 0 and "no answer parsed" in r.stdout


def test_answer_open_and_history(sample_root):
    r = invoke("answer", "-q", "Any tips?", "--model", "scripted")
    assert r.exit_code == 0, all_output(r)
    assert "I don't know." in r.stdout
    r = invoke(
        "answer",
        "-q",
        "Any tips?",
        "--model",
        "scripted",
        "--json",
        "--history",
        sample_root / SAMPLE_HISTORY_LINK,
    )
    assert r.exit_code == 0, all_output(r)
    data = json.loads(r.stdout)
    assert data["text"] == "I don't know." and data["tokens_in"] > 1000


@pytest.mark.parametrize(
    "args, words",
    [
        (["--memory", "/no/such/memory.txt"], "memory.txt"),
        (["--memory", "a.txt", "--history", "b.json"], "not both"),
        (["--option", "only one"], "two"),
        (["--history", "/no/such/history.json"], "history.json"),
    ],
)
def test_answer_errors(args, words):
    r = invoke("answer", "-q", "What now?", "--model", "scripted", *args)
    assert r.exit_code != 0
    assert words in squash(all_output(r)) or words in all_output(r)


def test_answer_requires_query():
    r = invoke("answer", "--model", "scripted")
    assert r.exit_code != 0


def test_help_mentions_model_specs():
    r = invoke("memory", "build", "--help")
    assert "local/qwen2.5-0.5b" in squash(r.stdout) or "local/qwen2.5-0.5b" in r.stdout
