"""The release loader: the real sample, and broken releases written to tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import (
    PREF_TYPES,
    RELEASE_COLUMNS,
    SAMPLE_HISTORY_LINK,
    history_link,
    make_history,
    make_row,
    write_csv,
    write_release,
)

from personamem.data import DataError, QAItem, load_history, load_release, question_id
from personamem.data.loader import DataWarning, parse_row

# --- the real sample ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample(sample_root: Path):
    return load_release(sample_root)


def sample_items(rel) -> list[QAItem]:
    """The items of the sample's persona 2 (the sample may grow; these 36 stay)."""
    return [q for q in rel.items if q.history_32k == SAMPLE_HISTORY_LINK]


def test_sample_loads_without_issues(sample):
    assert sample.issues == []
    items = sample_items(sample)
    assert len(items) == 36
    assert {q.persona_id for q in items} == {"2"}
    assert {q.split for q in items} == {"benchmark"}


def test_sample_fields_are_parsed(sample):
    for q in sample_items(sample):
        # user_query is a dict literal in the CSV: only its content is kept
        assert isinstance(q.query, str) and q.query.strip()
        assert not q.query.lstrip().startswith("{")
        assert "'role'" not in q.query
        assert len(q.incorrect_answers) == 3
        assert all(isinstance(a, str) and a.strip() for a in q.incorrect_answers)
        assert q.correct_answer not in q.incorrect_answers
        assert isinstance(q.updated, bool)
        assert q.pref_type in {*PREF_TYPES, "ask_to_forget", "multimodal"}
        assert q.who in ("self", "others")
        assert q.history_128k == ""  # the sample has no 128k histories
        assert q.id.startswith("benchmark-p2-")
    # both values of `updated` occur, so the string was really parsed
    assert {q.updated for q in sample_items(sample)} == {True, False}


def test_sample_first_query_matches_csv(sample, sample_root):
    import ast
    import csv

    with open(sample_root / "benchmark/text/benchmark.csv", encoding="utf-8", newline="") as f:
        first = next(csv.DictReader(f))
    expected = ast.literal_eval(first["user_query"])["content"]
    q = next(q for q in sample.items if q.row == 1 and q.split == "benchmark")
    assert q.query == expected
    assert q.incorrect_answers == [a.strip() for a in json.loads(first["incorrect_answers"])]
    assert q.updated == (first["updated"] == "True")


def test_sample_history_link_resolves(sample):
    items = sample_items(sample)
    assert sample.history_paths("32k") == sorted({q.history_32k for q in sample.items})
    h = sample.history(items[0].history_32k)
    assert len(h.messages) == 247
    assert h.messages[0]["role"] == "system"
    assert {m["role"] for m in h.messages[1:]} <= {"user", "assistant"}
    assert all(isinstance(m["content"], str) for m in h.messages)
    # cached: the same object comes back
    assert sample.history(items[0].history_32k) is h
    assert len(h.content_hash) == 16


def test_sample_history_loads_directly(sample_root):
    h = load_history(sample_root / SAMPLE_HISTORY_LINK)
    assert len(h.messages) == 247
    assert isinstance(h.metadata, dict)
    forget = [m for m in h.messages if m["content"].startswith("Please forget that I")]
    assert forget and all(m["role"] == "user" for m in forget)


def test_sample_ids_unique_and_stable(sample, sample_root):
    again = load_release(sample_root)
    assert [q.id for q in again.items] == [q.id for q in sample.items]
    assert len({q.id for q in sample.items}) == len(sample.items)


# --- fixture releases ---------------------------------------------------------------------------


def test_fixture_release_several_personas(release_factory):
    root = release_factory(personas=3, rows_per_persona=4, splits=("benchmark", "train", "val"))
    rel = load_release(root)
    assert rel.issues == []
    assert len(rel.items) == 3 * 4 * 3
    for split in ("benchmark", "train", "val"):
        assert len(rel.split(split)) == 12
    assert {q.persona_id for q in rel.items} == {"1", "2", "3"}
    assert len(rel.history_paths("32k")) == 3
    q = rel.split("train")[5]
    assert q.query == "Question 1 of persona 2: what should I do?"
    assert q.row == 6
    assert q.updated is True and rel.split("train")[4].updated is False
    assert q.distance_32k == 101 and q.distance_128k is None
    assert q.related_snippet == [{"role": "user", "content": "I like thing 1"}]
    for p in ("1", "2", "3"):
        link = history_link(p)
        assert rel.history(link).messages == make_history(p)


def test_splits_argument_limits_what_is_read(release_factory):
    root = release_factory(personas=2, rows_per_persona=2, splits=("benchmark", "train"))
    rel = load_release(root, splits=("train",))
    assert {q.split for q in rel.items} == {"train"}
    assert len(rel.items) == 4


def test_query_may_be_plain_text_or_json(tmp_path):
    rows = [
        make_row(1, 0, user_query="Just a plain question?"),
        make_row(1, 1, user_query=json.dumps({"role": "user", "content": "A JSON query"})),
        make_row(1, 2, incorrect_answers=repr(["x", "y", "z"])),  # Python list literal
    ]
    rel = load_release(write_release(tmp_path / "r", {"benchmark": rows}))
    assert rel.issues == []
    assert [q.query for q in rel.items[:2]] == ["Just a plain question?", "A JSON query"]
    assert rel.items[2].incorrect_answers == ["x", "y", "z"]


BAD_ROWS = {
    "bad_json": ({"incorrect_answers": '["a", "b", '}, "incorrect_answers"),
    "wrong_count": ({"incorrect_answers": json.dumps(["a", "b"])}, "3 non-empty strings"),
    "empty_answer": ({"incorrect_answers": json.dumps(["a", "", "c"])}, "3 non-empty strings"),
    "ten_wrong": ({"incorrect_answers": json.dumps(list("abcdefghij"))}, "3 non-empty strings"),
    "unhashable_dict_key": ({"user_query": "{[1]: 2}"}, "user_query"),
    "unhashable_in_list": ({"incorrect_answers": "[{[1]: 2}, 'b', 'c']"}, "incorrect_answers"),
    "absolute_link": ({"chat_history_32k_link": "/etc/passwd"}, "leaves the release folder"),
    "parent_link": (
        {"chat_history_32k_link": "data/../../outside.json"},
        "leaves the release folder",
    ),
    "windows_link": ({"chat_history_32k_link": "C:\\x\\h.json"}, "leaves the release folder"),
    "missing_query": ({"user_query": ""}, "user_query"),
    "query_without_content": ({"user_query": "{'role': 'user'}"}, "content"),
    "bad_updated": ({"updated": "maybe"}, "updated"),
    "missing_correct": ({"correct_answer": "  "}, "correct_answer"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_bad_row_is_reported_and_others_load(tmp_path, case):
    override, words = BAD_ROWS[case]
    rows = [make_row(p, n) for p in (1, 2) for n in range(3)]
    rows.insert(3, make_row(3, 0, **override))  # data row 4
    root = write_release(tmp_path / "r", {"benchmark": rows})
    rel = load_release(root)
    assert len(rel.items) == 6
    assert "3" not in {q.persona_id for q in rel.items}
    assert len(rel.issues) == 1
    issue = rel.issues[0]
    csv_path = root / "benchmark" / "text" / "benchmark.csv"
    assert issue.file == str(csv_path)
    assert issue.row == 4
    assert words in issue.message
    assert str(csv_path) in str(issue) and "row 4" in str(issue)
    # rows after the bad one keep their own row numbers
    assert [q.row for q in rel.items] == [1, 2, 3, 5, 6, 7]


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_strict_raises_naming_file_and_row(tmp_path, case):
    override, words = BAD_ROWS[case]
    rows = [make_row(1, 0), make_row(1, 1, **override), make_row(1, 2)]
    root = write_release(tmp_path / "r", {"train": rows})
    with pytest.raises(DataError) as e:
        load_release(root, strict=True)
    msg = str(e.value)
    assert str(root / "benchmark" / "text" / "train.csv") in msg
    assert "row 2" in msg
    assert words in msg


def test_several_bad_rows_all_reported(tmp_path):
    rows = [
        make_row(1, 0),
        make_row(1, 1, updated="yes please"),
        make_row(2, 0),
        make_row(2, 1, incorrect_answers="[1, 2"),
        make_row(2, 2, user_query=""),
    ]
    rel = load_release(write_release(tmp_path / "r", {"val": rows}))
    assert [q.row for q in rel.items] == [1, 3]
    assert [(i.row, i.file.endswith("val.csv")) for i in rel.issues] == [
        (2, True),
        (4, True),
        (5, True),
    ]


def test_row_with_extra_fields_is_reported(tmp_path):
    root = tmp_path / "r"
    path = write_csv(root / "benchmark" / "text" / "benchmark.csv", [make_row(1, 0)])
    write_release(root, {}, histories={history_link(1): make_history(1)})
    with open(path, "a", encoding="utf-8") as f:
        f.write(",".join(["x"] * (len(RELEASE_COLUMNS) + 2)) + "\n")
    rel = load_release(root)
    assert len(rel.items) == 1
    assert [(i.row, "more fields" in i.message) for i in rel.issues] == [(2, True)]


def test_header_missing_required_column(tmp_path):
    root = tmp_path / "r"
    cols = [c for c in RELEASE_COLUMNS if c != "user_query"]
    write_csv(root / "benchmark" / "text" / "benchmark.csv", [make_row(1, 0)], columns=cols)
    write_csv(root / "benchmark" / "text" / "train.csv", [make_row(1, 1)])
    write_release(root, {}, histories={history_link(1): make_history(1)})
    rel = load_release(root)
    assert [q.split for q in rel.items] == ["train"]
    assert len(rel.issues) == 1
    assert rel.issues[0].row is None
    assert rel.issues[0].file.endswith("benchmark.csv") and "user_query" in rel.issues[0].message
    with pytest.raises(DataError, match="benchmark.csv"):
        load_release(root, strict=True)


def test_not_utf8_is_reported(tmp_path):
    root = write_release(tmp_path / "r", {"benchmark": [make_row(1, 0)], "train": [make_row(1, 1)]})
    bad = b"persona_id,user_query\n\xff\xfe\x00\n"
    (root / "benchmark" / "text" / "train.csv").write_bytes(bad)
    rel = load_release(root)
    assert [q.split for q in rel.items] == ["benchmark"]
    assert any(i.file.endswith("train.csv") and "UTF-8" in i.message for i in rel.issues)


def test_missing_history_file_reports_rows(tmp_path):
    rows = [make_row(p, n) for p in (1, 2, 3) for n in range(2)]
    root = write_release(tmp_path / "r", {"benchmark": rows})
    (root / history_link(2)).unlink()
    rel = load_release(root)
    assert {q.persona_id for q in rel.items} == {"1", "3"}
    assert len(rel.items) == 4
    bad = sorted(rel.issues, key=lambda i: i.row or 0)
    assert [i.row for i in bad] == [3, 4]
    for i in bad:
        assert i.file == str(root / "benchmark" / "text" / "benchmark.csv")
        assert history_link(2) in i.message and "not found" in i.message
    with pytest.raises(DataError, match=r"benchmark\.csv, row 3: .*not found"):
        load_release(root, strict=True)


def test_missing_128k_history_is_reported_too(tmp_path):
    rows = [make_row(1, 0, chat_history_128k_link="data/chat_history_128k/nope.json")]
    rows.append(make_row(2, 0))
    rel = load_release(write_release(tmp_path / "r", {"benchmark": rows}))
    assert [q.persona_id for q in rel.items] == ["2"]
    assert len(rel.issues) == 1 and "nope.json" in rel.issues[0].message


def test_malformed_history_json(tmp_path):
    root = write_release(tmp_path / "r", {"benchmark": [make_row(1, 0), make_row(2, 0)]})
    bad = root / history_link(1)
    bad.write_text('{"chat_history": [{"role": "user", "content": "hi"', encoding="utf-8")
    with pytest.raises(DataError) as e:
        load_history(bad)
    assert str(bad) in str(e.value) and "JSON" in str(e.value)
    rel = load_release(root)  # histories are parsed lazily ...
    with pytest.raises(DataError, match="chat_history_test_persona1"):
        rel.history(history_link(1))  # ... and a broken one is named when it is read
    assert len(rel.history(history_link(2)).messages) == len(make_history(2))


@pytest.mark.parametrize(
    "content, words",
    [
        ({"messages": []}, "chat_history"),
        ({"chat_history": [{"content": "no role"}]}, "message 0"),
        ({"chat_history": [{"role": "user", "content": "ok"}, {"role": "user"}]}, "message 1"),
        ([1, 2], "message 0"),
    ],
)
def test_history_with_wrong_structure(tmp_path, content, words):
    p = tmp_path / "h.json"
    p.write_text(json.dumps(content), encoding="utf-8")
    with pytest.raises(DataError) as e:
        load_history(p)
    assert str(p) in str(e.value) and words in str(e.value)


def test_history_variants(tmp_path):
    p = tmp_path / "h.json"
    p.write_text(
        json.dumps(
            [
                {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image"}]},
                {"role": "assistant", "content": "nice"},
            ]
        ),
        encoding="utf-8",
    )
    h = load_history(p)
    assert h.messages == [
        {"role": "user", "content": "look"},
        {"role": "assistant", "content": "nice"},
    ]
    with pytest.raises(DataError, match="not found"):
        load_history(tmp_path / "missing.json")


def test_folder_without_csv(tmp_path):
    (tmp_path / "benchmark" / "text").mkdir(parents=True)
    with pytest.raises(DataError) as e:
        load_release(tmp_path)
    assert str(tmp_path / "benchmark" / "text") in str(e.value)
    assert "benchmark.csv" in str(e.value)
    with pytest.raises(DataError, match="not a folder"):
        load_release(tmp_path / "does-not-exist")


# --- ids ----------------------------------------------------------------------------------------


def test_ids_stable_and_distinct(release_factory, tmp_path):
    root = release_factory(personas=4, rows_per_persona=5, splits=("benchmark", "train"))
    a = load_release(root)
    b = load_release(root)
    assert [q.id for q in a.items] == [q.id for q in b.items]
    assert len({q.id for q in a.items}) == len(a.items) == 40
    # the id does not depend on the row's position: reverse the file, same ids per question
    rows = [make_row(p, n, topic_query="benchmark") for p in range(1, 5) for n in range(5)]
    rev = write_release(tmp_path / "rev", {"benchmark": rows[::-1]})
    by_query = {q.query: q.id for q in load_release(rev).items}
    assert by_query == {q.query: q.id for q in a.split("benchmark")}


def test_id_depends_on_question_content():
    base = question_id("benchmark", "1", "q", "c")
    assert base == question_id("benchmark", "1", "q", "c")
    others = {
        question_id("train", "1", "q", "c"),
        question_id("benchmark", "2", "q", "c"),
        question_id("benchmark", "1", "q2", "c"),
        question_id("benchmark", "1", "q", "c2"),
    }
    assert base not in others and len(others) == 4


def test_repeated_question_rows_get_distinct_ids(tmp_path):
    same = make_row(1, 0)
    variant = make_row(1, 0, incorrect_answers=json.dumps(["p", "q", "r"]))
    rows = [same, make_row(1, 1), variant]
    root = write_release(tmp_path / "r", {"benchmark": rows})
    ids = [q.id for q in load_release(root).items]
    assert len(set(ids)) == 3
    assert ids == [q.id for q in load_release(root).items]


# --- rows that differ from the v2 format but load --------------------------------------------


@pytest.mark.parametrize("pref_type", ["factual", "recommendation", "sequence_of_updates"])
def test_v1_pref_type_loads_with_a_warning(tmp_path, pref_type):
    rows = [make_row(1, 0), make_row(1, 1, pref_type=pref_type)]
    root = write_release(tmp_path / "r", {"benchmark": rows})
    with pytest.warns(DataWarning, match=pref_type):
        rel = load_release(root, strict=True)
    assert [q.pref_type for q in rel.items][1] == pref_type and rel.issues == []
    assert [(w.row, pref_type in w.message, "v1" in w.message) for w in rel.warnings] == [
        (2, True, True)
    ]


def test_four_wrong_options_load_as_five_option_question(tmp_path):
    wrong = [f"Wrong {k}" for k in range(4)]
    rows = [make_row(1, 0), make_row(1, 1, incorrect_answers=json.dumps(wrong))]
    root = write_release(tmp_path / "r", {"train": rows})
    with pytest.warns(DataWarning, match="5-option"):
        rel = load_release(root)
    assert rel.issues == [] and len(rel.items) == 2
    assert rel.items[1].incorrect_answers == wrong
    assert [w.row for w in rel.warnings] == [2]
    # the runner's shuffle shows all five, the answerer accepts five
    from personamem.bench.scoring import shuffle_options

    sh = shuffle_options(rel.items[1])
    assert sorted(sh.options) == sorted([rel.items[1].correct_answer, *wrong])


def test_parse_row_without_notes_warns():
    row = make_row(1, 0, pref_type="factual")
    with pytest.warns(DataWarning, match="factual"):
        assert parse_row(row, "benchmark", 1).pref_type == "factual"


def test_clean_release_gives_no_warning(tmp_path):
    import warnings

    root = write_release(tmp_path / "r", {"benchmark": [make_row(1, n) for n in range(3)]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rel = load_release(root)
    assert rel.warnings == [] and len(rel.items) == 3


# --- what the loader may read --------------------------------------------------------------------


def test_load_history_of_a_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="is a folder"):
        load_history(tmp_path)


def test_release_history_refuses_links_outside(tmp_path):
    secret = tmp_path / "outside.json"
    secret.write_text(json.dumps({"chat_history": [{"role": "user", "content": "secret"}]}))
    root = write_release(tmp_path / "r", {"benchmark": [make_row(1, 0)]})
    rel = load_release(root)
    for link in (str(secret), "../outside.json", "data/../../outside.json"):
        with pytest.raises(DataError, match="leaves the release folder"):
            rel.history(link)
    assert rel.history(history_link(1)).messages  # a link inside still loads


def test_malformed_literal_row_is_a_row_issue(tmp_path):
    """``{[1]: 2}`` makes ast.literal_eval raise TypeError: one bad row, not a crash."""
    rows = [make_row(1, 0), make_row(1, 1, user_query="{[1]: 2}"), make_row(1, 2)]
    rel = load_release(write_release(tmp_path / "r", {"benchmark": rows}))
    assert [q.row for q in rel.items] == [1, 3]
    assert [(i.row, "user_query" in i.message) for i in rel.issues] == [(2, True)]
