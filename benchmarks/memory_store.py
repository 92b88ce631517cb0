"""Benchmark of the memory store: update cost versus stored history, ownership, read latency.

1. Real model, cost of one update as the stored history grows. For each history length L, a user
   whose first L tokens of the real PersonaMem-v2 sample history are stored and already read
   into a memory (the same 20-line memory every time) receives (a) the same new chunk (sample
   messages 6-9 with fresh ids) and (b) the sample's own next messages, read with ``flush``. An
   update sees only the previous memory and the new messages, so its cost must not depend on L.
   (Fast-forwarding the cursor stands in for the earlier updates, which would take the real
   model hours on this CPU; ``history_tokens`` is what a full re-read would cost.)
2. Real model on hand-written ownership cases (a friend's email, a colleague's message, a
   hypothetical): are third-party preferences kept out and the user's own kept?
3. Scripted model (no model time): the store's own overhead per update for histories from 1k to
   100k messages.
4. Read latency of get/context/history/sources/export over N users in one SQLite file.

    python benchmarks/memory_store.py --out benchmarks/memory_store.md
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from personamem.memory import MemoryState
from personamem.memory.state import MemoryLine
from personamem.models import ScriptedModel
from personamem.store import Memory, NewMessage, NewVersion, SQLiteStore

SAMPLE = Path("/work/shared/data/personamem-v2-sample")
HISTORY = SAMPLE / "data/chat_history_32k/chat_history_250901_001242_persona2.json"
RAW = SAMPLE / "data/raw_data/raw_data_250815_143643_persona2.json"


def fixed_memory() -> MemoryState:
    """The same starting memory at every history length: 20 of the persona's real preferences."""
    persona = next(iter(json.loads(RAW.read_text()).values()))
    prefs: list[str] = []
    for key in (
        "stereotypical_preferences",
        "anti_stereotypical_preferences",
        "neutral_preferences",
    ):
        prefs += [
            p if isinstance(p, str) else str(p.get("preference", p)) for p in persona.get(key, [])
        ]
    return MemoryState(lines=[MemoryLine(text=p, sources=[1]) for p in prefs[:20]])


def fast_forward(
    mem: Memory, user: str, messages: list[dict[str, Any]], state: MemoryState
) -> None:
    """Store ``messages`` as already read into ``state`` (what earlier updates would have left)."""
    mem.add(messages, user, update=False)
    info = mem.store.user(user)
    assert info is not None
    state = state.model_copy(
        update={"next_message": info.messages, "tokens": mem.model.count_tokens(state.text)}
    )
    mem.store.commit_version(
        user,
        NewVersion(
            source="edit",
            state=state.model_dump_json(),
            text=state.text,
            note="benchmark: history already read",
        ),
        expect_head=info.head,
        expect_cursor=(info.cursor, info.cursor_part),
        new_cursor=(info.messages, 0),
    )


def _measure(mem: Memory, user: str, new: list[dict[str, Any]]) -> tuple[dict[str, Any], list]:
    before = mem.model.usage.snapshot()
    t0 = time.perf_counter()
    mem.add(new, user, update=False)
    versions = mem.flush(user)
    wall = time.perf_counter() - t0
    used = mem.model.usage.since(before)
    row = {
        "new_tokens": sum(v.chunk_tokens for v in versions),
        "updates": len(versions),
        "tokens_in": sum(v.tokens_in for v in versions),
        "tokens_out": sum(v.tokens_out for v in versions),
        "model_calls": used.calls,
        "update_s": round(sum(v.seconds for v in versions), 1),
        "store_ms": round((wall - used.seconds) * 1000, 1),
        "memory_tokens": versions[-1].memory_tokens if versions else 0,
    }
    return row, versions


def real_updates(
    model: str,
    lengths: list[int],
    chunk_tokens: int,
    memory_tokens: int,
    db: Path,
    strategy: str,
    repeat: int = 2,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """(same chunk at each length, the sample's next chunk at each length, lines they added)."""
    history = json.loads(HISTORY.read_text())["chat_history"]
    mem = Memory(
        f"sqlite:///{db}",
        model=model,
        chunk_tokens=chunk_tokens,
        memory_tokens=memory_tokens,
        strategy=strategy,
    )
    tokens = [mem.model.count_tokens(m["content"]) for m in history]
    state = fixed_memory()
    fixed = [dict(m, id=f"new{i}") for i, m in enumerate(history[6:10])]
    # Warm up (load the weights, fill caches) with one untimed update.
    fast_forward(mem, "warmup", [], state)
    _measure(mem, "warmup", fixed)
    same, natural, added = [], [], []
    for L in lengths:
        n = next((i + 1 for i in range(len(history)) if sum(tokens[: i + 1]) >= L), len(history))
        stored = [dict(m, id=f"h{i}") for i, m in enumerate(history[:n])]
        runs = []
        for r in range(repeat):
            fast_forward(mem, f"same{L}-{r}", stored, state)
            runs.append(_measure(mem, f"same{L}-{r}", fixed)[0])
        row = dict(runs[0], update_s=min(x["update_s"] for x in runs))
        row["update_s_max"] = max(x["update_s"] for x in runs)
        same.append({"history_tokens": sum(tokens[:n]), "messages_stored": n, **row})
        print(same[-1], file=sys.stderr, flush=True)
        k, budget = n, 0
        while k < len(history) and budget + tokens[k] <= int(chunk_tokens * 0.75):
            budget += tokens[k]
            k += 1
        k = max(k, n + 1)
        fast_forward(mem, f"next{L}", stored, state)
        nxt = [dict(m, id=f"h{i}") for i, m in enumerate(history[n:k], n)]
        row, versions = _measure(mem, f"next{L}", nxt)
        natural.append({"history_tokens": sum(tokens[:n]), "messages": f"{n}-{k - 1}", **row})
        print(natural[-1], file=sys.stderr, flush=True)
        for v in versions:
            added += [f"L={L}: {ln[3:]}" for ln in v.diff.splitlines() if ln.startswith("+- ")]
            added += [f"L={L}: kept out, {w}" for w in v.warnings if w.startswith("not stored:")]
    mem.close()
    return same, natural, added


OWNERSHIP_CASES: list[dict[str, Any]] = [
    {
        "case": "polish a friend's email",
        "messages": [
            {
                "role": "user",
                "content": "Can you polish this email I'm writing for my friend Marco? He asked "
                "me to fix his grammar.\n\nHi team,\nI am a huge fan of heavy metal and I "
                "collect vintage vinyl records of metal bands. I also love spicy Sichuan food "
                "and go to every metal concert in town.\nBest, Marco",
            },
            {
                "role": "assistant",
                "content": "Hi team,\nI'm a huge heavy metal fan and collect vintage vinyl "
                "records from metal bands. I also love spicy Sichuan food and try to catch every "
                "metal concert in town.\nBest,\nMarco",
            },
            {
                "role": "user",
                "content": "Thanks! By the way, I prefer quiet jazz myself and I'm vegetarian.",
            },
        ],
        "other": ["metal", "vinyl", "sichuan", "concert"],
        "own": ["jazz", "vegetarian"],
    },
    {
        "case": "translate a colleague's message",
        "messages": [
            {
                "role": "user",
                "content": "Please translate this message from my colleague Yuki into English: "
                "« Je suis végétarienne, j'adore le jazz et je fais de l'escalade tous les "
                "week-ends. »",
            },
            {
                "role": "assistant",
                "content": '"I am vegetarian, I love jazz and I go rock climbing every weekend."',
            },
            {
                "role": "user",
                "content": "Great. I'm the opposite, I love a good steak and I spend my weekends "
                "gardening.",
            },
        ],
        "other": ["vegetarian", "jazz", "climbing"],
        "own": ["steak", "garden"],
    },
    {
        "case": "a hypothetical",
        "messages": [
            {
                "role": "user",
                "content": "Imagine I were a professional surfer living in Hawaii. What would "
                "my morning routine look like?",
            },
            {
                "role": "assistant",
                "content": "You'd wake before dawn, check the swell, surf for two hours and eat "
                "a big breakfast of fruit and eggs.",
            },
            {
                "role": "user",
                "content": "Fun! In reality I work night shifts as a nurse in Chicago and I "
                "sleep until noon.",
            },
        ],
        "other": ["surf", "hawaii"],
        "own": ["nurse", "night"],
    },
]


def ownership(model: str, db: Path, strategies: list[str]) -> list[dict[str, Any]]:
    """Hand-written third-party cases through the real model: what ends up in the memory."""
    rows = []
    for strategy, (i, case) in itertools.product(strategies, enumerate(OWNERSHIP_CASES)):
        mem = Memory(
            f"sqlite:///{db}", model=model, chunk_tokens=800, memory_tokens=512, strategy=strategy
        )
        user = f"own{i}-{strategy}"
        mem.add([dict(m, id=str(j)) for j, m in enumerate(case["messages"])], user)
        versions = mem.flush(user)
        lines = mem.get(user).lines
        low = " ".join(ln.text for ln in lines).lower()
        kept_out = [w for v in versions for w in v.warnings if w.startswith("not stored:")]
        rows.append(
            {
                "strategy": strategy,
                "case": case["case"],
                "third-party facts stored": ", ".join(w for w in case["other"] if w in low)
                or "none",
                "own facts stored": ", ".join(w for w in case["own"] if w in low) or "none",
                "kept out": len(kept_out),
                "memory": " / ".join(ln.text for ln in lines) or "(empty)",
            }
        )
        print(rows[-1], file=sys.stderr, flush=True)
        mem.close()
    return rows


def store_overhead(sizes: list[int], db: Path, updates: int = 30) -> list[dict[str, Any]]:
    """Milliseconds per ``add`` that triggers one update, model time excluded (instant model)."""
    facts = json.dumps(
        {"facts": [{"fact": "Enjoys a benchmark fact", "about": "user", "messages": []}]}
    )
    model = ScriptedModel(default=lambda msgs: facts if "Chat:" in msgs[-1]["content"] else "no")
    mem = Memory(
        f"sqlite:///{db}?synchronous=normal",
        model=model,
        chunk_tokens=60,
        memory_tokens=100000,
        strategy="extract",
    )
    rows = []
    for size in sizes:
        user = f"big{size}"
        msgs = [
            {
                "role": "user" if i % 2 == 0 else "assistant",
                "content": f"message number {i} about something ordinary",
                "id": f"b{i}",
            }
            for i in range(size)
        ]
        for i in range(0, size, 5000):
            mem.add(msgs[i : i + 5000], user, update=False)
        fast_forward(mem, user, [], MemoryState(lines=[MemoryLine(text="Enjoys a benchmark fact")]))
        times = []
        for k in range(updates):
            batch = [
                {
                    "role": "user",
                    "content": f"new message {k} {j} with some words in it",
                    "id": f"n{k}-{j}",
                }
                for j in range(8)
            ]
            t0 = time.perf_counter()
            res = mem.add(batch, user)
            times.append((time.perf_counter() - t0) * 1000)
            assert res.versions or k == 0
        rows.append(
            {
                "messages_stored": size,
                "ms_per_add_with_update": round(statistics.median(times), 2),
                "p95_ms": round(sorted(times)[int(0.95 * len(times)) - 1], 2),
            }
        )
        print(rows[-1], file=sys.stderr, flush=True)
        mem.close()
    return rows


def read_latency(
    n_users: int, versions: int, messages: int, reads: int, db: Path, model: str
) -> tuple[list[dict[str, Any]], float]:
    store = SQLiteStore(db, synchronous="NORMAL")
    rng = random.Random(0)
    t0 = time.perf_counter()
    for u in range(n_users):
        user = f"user{u:05d}"
        store.add_messages(
            user,
            [
                NewMessage(
                    msg_id=str(i),
                    role="user",
                    content=f"message {i} of {user} about hobbies",
                    tokens=8,
                )
                for i in range(messages)
            ],
        )
        lines: list[MemoryLine] = []
        for v in range(versions):
            lines = lines + [
                MemoryLine(
                    text=f"Enjoys hobby number {v} of {user} a lot",
                    sources=[rng.randrange(messages)],
                )
            ]
            st = MemoryState(lines=lines, next_message=messages)
            store.commit_version(
                user,
                NewVersion(
                    source="update", state=st.model_dump_json(), text=st.text, message_ids=[v]
                ),
                expect_head=v,
            )
    build_s = time.perf_counter() - t0
    store.close()
    mem = Memory(f"sqlite:///{db}", model=model)
    mem.model.count_tokens("warm up the tokenizer")
    ops = {
        "get": lambda u: mem.get(u),
        "context": lambda u: mem.context(u),
        "context(max_tokens=64)": lambda u: mem.context(u, max_tokens=64),
        "sources": lambda u: mem.sources(u),
        "history (with diffs)": lambda u: mem.history(u),
        "export": lambda u: mem.export(u),
    }
    rows = []
    for name, fn in ops.items():
        users = [f"user{rng.randrange(n_users):05d}" for _ in range(reads)]
        times = []
        for u in users:
            t = time.perf_counter()
            fn(u)
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        rows.append(
            {
                "operation": name,
                "p50_ms": round(times[len(times) // 2], 3),
                "p95_ms": round(times[int(len(times) * 0.95)], 3),
                "p99_ms": round(times[int(len(times) * 0.99)], 3),
            }
        )
        print(rows[-1], file=sys.stderr, flush=True)
    mem.close()
    return rows, build_s


def table(rows: list[dict[str, Any]]) -> str:
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="local/qwen2.5-0.5b")
    ap.add_argument("--lengths", default="5000,10000,20000,30000")
    ap.add_argument("--chunk-tokens", type=int, default=800)
    ap.add_argument("--memory-tokens", type=int, default=1024)
    ap.add_argument("--strategy", default="extract", help="agent strategy of part 1")
    ap.add_argument("--ownership-strategies", default="extract,select")
    ap.add_argument("--repeat", type=int, default=2, help="runs per length in part 1a (min kept)")
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--versions", type=int, default=20)
    ap.add_argument("--messages", type=int, default=100)
    ap.add_argument("--reads", type=int, default=1000)
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="memstore-bench-"))
    t0 = time.time()
    same: list[dict[str, Any]] = []
    natural: list[dict[str, Any]] = []
    added: list[str] = []
    owned: list[dict[str, Any]] = []
    if not args.skip_real:
        lengths = [int(x) for x in args.lengths.split(",")]
        same, natural, added = real_updates(
            args.model,
            lengths,
            args.chunk_tokens,
            args.memory_tokens,
            tmp / "real.db",
            args.strategy,
            args.repeat,
        )
        owned = ownership(args.model, tmp / "own.db", args.ownership_strategies.split(","))
    overhead = store_overhead([int(x) for x in args.sizes.split(",")], tmp / "overhead.db")
    reads, build_s = read_latency(
        args.users, args.versions, args.messages, args.reads, tmp / "reads.db", args.model
    )
    size_mb = sum(f.stat().st_size for f in tmp.glob("reads.db*")) / 1e6
    cmd = "python benchmarks/memory_store.py " + " ".join(sys.argv[1:])
    report = [
        "# Memory store benchmark",
        "",
        f"Command: `{cmd}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores shared with other jobs "
        f"(load average {os.getloadavg()[0]:.1f} at the end), Python {platform.python_version()}, "
        f"SQLite {__import__('sqlite3').sqlite_version}; total run {time.time() - t0:.0f}s.",
        "",
    ]
    if same:
        report += [
            f"## 1. Update cost versus stored history ({args.model}, strategy {args.strategy}, "
            f"chunk {args.chunk_tokens}, memory cap {args.memory_tokens})",
            "",
            "**a. The same new chunk** (sample messages 6-9, two email polishes) read into the "
            "same 20-line memory, with `history_tokens` of the real sample history already "
            "stored and read. `tokens_in`/`tokens_out`: model tokens of the update (they differ "
            "by a few tokens only because the message numbers shown to the model have more "
            "digits); `update_s`: wall seconds of the update, the fastest of "
            f"{args.repeat} runs on a shared CPU (`update_s_max`: the slowest); `store_ms`: wall "
            "time outside the "
            "model (store the messages, read pending, chunk, commit). Re-reading the history "
            "instead would cost `history_tokens` input tokens per update.",
            "",
            table(same),
            "",
            "**b. The sample's own next messages** after `history_tokens` (whole messages, about "
            f"{int(args.chunk_tokens * 0.75)} tokens), same starting memory.",
            "",
            table(natural),
            "",
            "Lines those updates added (and lines the ownership guard kept out):",
            "",
            *[f"- {a}" for a in added],
            "",
            "## 2. Ownership with the real model (hand-written cases, chunk 800)",
            "",
            "`third-party facts stored`: keywords of the other person's (or the hypothetical's) "
            "preferences found in the memory (should be none); `own facts stored`: keywords of "
            "the user's own preferences found (should be all); `kept out`: lines the model wrote "
            "as the user's that the store's deterministic ownership checks dropped (subject is a "
            "person the chat names as a third party, text someone else wrote that the user "
            "pasted, copy of an assistant reply, restatement of a hypothetical); `memory`: the "
            "lines stored.",
            "",
            table(owned),
            "",
        ]
    report += [
        "## 3. Store overhead per update versus stored messages (instant scripted model)",
        "",
        "Median (and p95) wall time of one `add` of 8 new messages that triggers one update, "
        "model time excluded, `synchronous=NORMAL`.",
        "",
        table(overhead),
        "",
        f"## 4. Read latency over {args.users} users ({args.versions} versions and "
        f"{args.messages} messages each; {size_mb:.0f} MB file, built in {build_s:.0f}s)",
        "",
        f"{args.reads} calls per operation on random users, sync `Memory` API, warm cache.",
        "",
        table(reads),
        "",
    ]
    text = "\n".join(report)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
