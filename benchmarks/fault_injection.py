"""Fault injection: the memory store under a model that fails on a random share of its calls.

A deterministic scripted writer (its reply is derived from the message text) is wrapped in
:class:`FaultyModel` (both in ``fault_workload.py``), which on a seeded random ``--fault-rate`` of the calls raises an exception,
times out, returns an empty reply, a malformed one (the real reply cut short) or an over-long
one (the real reply followed by far more tokens than ``max_tokens``). ``--messages`` messages in
total (user and assistant turns alternating, some user turns longer than a chunk) of ``--users``
users are added in small batches by ``--concurrency`` workers, each its own :class:`AsyncMemory`
on the same store (as separate processes would be: they contend for the store's per-user lease),
which also flush random users while others add. A failed update is retried the way a worker
would: the messages stay stored and pending and a later flush reads them. When every message is
stored, the workers flush until nothing is pending. A reader checks versions while they are
written. Then, against a fault-free run of the same workload with the same writer:

* messages lost: every message added is stored once, in order, and read (cursor at the end);
* half-written versions: every version parses, matches its text, is within the cap, cites only
  stored messages, and was never rewritten after the reader saw it; ``Store.check()`` is clean;
* failures visible: every injected exception or timeout reached a caller, every empty, malformed
  or over-long reply was logged by the agent;
* final memory equal to the fault-free run's, line by line with the same citations.

Exit status 1 when any check fails.

    nice -n 19 python3 benchmarks/fault_injection.py --db sqlite:////tmp/faults.db
    nice -n 19 python3 benchmarks/fault_injection.py --db postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fault_workload import FAULT_KINDS, FAULT_MARK, HARD, FaultyModel, batches, workload

from personamem.memory.state import MemoryState
from personamem.models import Model
from personamem.store import AsyncMemory, MemoryBusy, Store, UnknownUser, VersionRecord
from personamem.store.base import open_store


# --- one run ---------------------------------------------------------------------------------------
@dataclass
class Failure:
    """An exception a worker caught."""

    user: str
    call: str  # add | flush
    error: str  # exception class names, outermost first
    faults: list[int]  # the injected faults its chain names
    text: str = ""


@dataclass
class RunResult:
    url: str
    final: dict[str, MemoryState]
    failures: list[Failure] = field(default_factory=list)
    busy: int = 0
    untold: int = 0
    """Failed adds that did not say whether their messages were stored (no ``.result``)."""
    lease_waits: int = 0
    """Times a worker found a user's lease held by another worker."""
    logged: list[str] = field(default_factory=list)
    noted: int = 0
    """Warnings about unusable replies in the versions committed (a failed update keeps none)."""
    problems: list[str] = field(default_factory=list)
    """Versions found not whole (by the reader while they were written, or at the end)."""
    unread: list[str] = field(default_factory=list)
    """``Store.check()``: numbering, cursor, text the cursor passed that no update read."""
    flushes: int = 0
    seconds: float = 0.0


class _Logged(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record.getMessage())


def _counting(acquire: Callable[..., bool], result: RunResult) -> Callable[..., bool]:
    def counted(*args: Any) -> bool:
        got = acquire(*args)
        result.lease_waits += not got
        return got

    return counted


def _chain(e: BaseException) -> tuple[str, str]:
    names, texts = [], []
    cur: BaseException | None = e
    while cur is not None:
        names.append(type(cur).__name__)
        texts.append(str(cur))
        cur = cur.__cause__ or cur.__context__
    return " < ".join(names), " | ".join(texts)


def version_problems(
    user: str, rec: VersionRecord, stored: int, cap: int, count: Callable[[str], int]
) -> list[str]:
    """Why a version is not whole: unparsable state, text not the state's, over the cap, or
    citing messages that are not stored."""
    where = f"{user} v{rec.version}"
    try:
        state = MemoryState.model_validate_json(rec.state)
    except ValueError as e:
        return [f"{where}: state does not parse: {e}"]
    problems = []
    if state.text != rec.text:
        problems.append(f"{where}: text is not the state's")
    if rec.memory_tokens > cap or (state.lines and count(rec.text) > cap):
        problems.append(f"{where}: over the cap of {cap} tokens")
    cited = {s for ln in state.lines for s in ln.sources} | set(rec.message_ids)
    if any(not 0 <= s < stored for s in cited):
        problems.append(f"{where}: cites messages that are not stored")
    if rec.source == "update" and "read" not in rec.report:
        problems.append(f"{where}: an update without its read ranges")
    return problems


async def run(
    url: str,
    plan: dict[str, list[dict[str, str]]],
    model: Model,
    *,
    concurrency: int = 4,
    chunk_tokens: int = 80,
    memory_tokens: int = 2048,
    seed: int = 0,
    max_attempts: int = 2000,
    progress: Callable[[int], None] | None = None,
) -> RunResult:
    """Add ``plan`` with ``concurrency`` workers, retrying failed updates until every message is
    read; return the final memories and what the workers and the reader saw."""
    rng = random.Random(seed)
    count = model.count_tokens
    todo = {u: batches(m, rng) for u, m in plan.items()}
    users = list(plan)
    mems = [
        AsyncMemory(url, model, chunk_tokens, memory_tokens, lock_timeout=60.0)
        for _ in range(concurrency)
    ]
    result = RunResult(url=url, final={})
    for mem in mems:
        mem.store.acquire = _counting(mem.store.acquire, result)  # type: ignore[method-assign]
    handler = _Logged(result.logged)
    logging.getLogger("personamem").addHandler(handler)
    seen: dict[tuple[str, int], str] = {}  # (user, version) -> state the reader saw
    ready: asyncio.Queue[str] = asyncio.Queue()
    for u in users:
        ready.put_nowait(u)
    adding = {"open": len(users)}
    t0 = time.perf_counter()

    def caught(user: str, call: str, e: Exception) -> None:
        if isinstance(e, MemoryBusy):
            result.busy += 1
            return
        names, text = _chain(e)
        faults = [int(x) for x in re.findall(re.escape(FAULT_MARK) + r"(\d+)", text)]
        result.failures.append(Failure(user, call, names, sorted(set(faults)), text[:300]))

    async def flush(mem: AsyncMemory, user: str) -> None:
        result.flushes += 1
        try:
            await mem.flush(user)
        except UnknownUser:
            pass  # nothing added for this user yet
        except Exception as e:  # noqa: BLE001 - every failure is recorded and retried
            caught(user, "flush", e)

    async def worker(i: int) -> None:
        mem, wrng = mems[i], random.Random(f"{seed}:worker{i}")
        while adding["open"]:
            if wrng.random() < 0.3:  # flush someone else's memory meanwhile
                await flush(mem, wrng.choice(users))
                continue
            try:
                user = await asyncio.wait_for(ready.get(), 0.05)
            except asyncio.TimeoutError:
                continue
            batch = todo[user][0]
            try:
                await mem.add(batch, user_id=user)
                todo[user].pop(0)
            except Exception as e:  # noqa: BLE001
                caught(user, "add", e)
                if getattr(e, "result", None) is not None:  # stored, pending: a flush reads it
                    todo[user].pop(0)
                else:  # unknown whether the batch was stored: add it again (same ids)
                    result.untold += 1
            if todo[user]:
                ready.put_nowait(user)
            else:
                adding["open"] -= 1
        # every message is stored: flush until nothing is pending
        for _ in range(max_attempts):
            pending = [u for u in users if (await mem.get(u)).pending_messages]
            if not pending:
                return
            await flush(mem, wrng.choice(pending))
        result.unread.append(f"worker {i}: still pending after {max_attempts} flushes")

    async def reader() -> None:
        store = mems[0].store
        rrng = random.Random(f"{seed}:reader")
        while True:
            user = rrng.choice(users)
            versions = await asyncio.to_thread(store.versions, user)
            info = await asyncio.to_thread(store.user, user)  # after: it counts every cited one
            for rec in versions if info else []:
                seen.setdefault((user, rec.version), rec.state)
                for p in version_problems(user, rec, info.messages, memory_tokens, count):
                    if p not in result.problems:
                        result.problems.append(p)
            await asyncio.sleep(0.01)

    async def watch() -> None:
        store = mems[0].store
        while True:
            infos = [await asyncio.to_thread(store.user, u) for u in users]
            if progress:
                progress(sum(i.cursor for i in infos if i))
            await asyncio.sleep(0.2)

    side = [asyncio.create_task(reader()), asyncio.create_task(watch())]
    try:
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    finally:
        for t in side:
            t.cancel()
        await asyncio.gather(*side, return_exceptions=True)
        logging.getLogger("personamem").removeHandler(handler)
    result.seconds = time.perf_counter() - t0
    store = mems[0].store
    result.unread += await asyncio.to_thread(store.check)
    for user in users:
        info = await asyncio.to_thread(store.user, user)
        versions = await asyncio.to_thread(store.versions, user)
        stored = info.messages if info else 0
        for n, rec in enumerate(versions, 1):
            result.problems += version_problems(user, rec, stored, memory_tokens, count)
            if rec.version != n or rec.parent != n - 1:
                result.problems.append(f"{user} v{rec.version}: not numbered after v{n - 1}")
            if seen.get((user, rec.version), rec.state) != rec.state:
                result.problems.append(f"{user} v{rec.version}: rewritten after it was read")
        result.noted += sum("usable" in w for rec in versions for w in rec.warnings)
        head = next((v for v in versions if info and v.version == info.head), None)
        result.final[user] = MemoryState.model_validate_json(head.state) if head else MemoryState()
    if progress:
        progress(sum(len(m) for m in plan.values()))
    for mem in mems:
        mem.close()
    return result


def lost_messages(store: Store, plan: dict[str, list[dict[str, str]]]) -> list[str]:
    """Messages added but not stored exactly once, in order, with their text, and read."""
    problems = []
    for user, msgs in plan.items():
        info = store.user(user)
        if info is None:
            problems.append(f"{user}: not in the store")
            continue
        got = [(m.msg_id, m.role, m.content) for m in store.messages(user)]
        want = [(m["id"], m["role"], m["content"]) for m in msgs]
        if got != want:
            missing = {w[0] for w in want} - {g[0] for g in got}
            problems.append(
                f"{user}: {len(got)} stored for {len(want)} added, missing {sorted(missing)[:5]}"
                if missing
                else f"{user}: stored messages differ from those added (order, text or copies)"
            )
        if (info.cursor, info.cursor_part) != (len(msgs), 0):
            problems.append(f"{user}: read up to {info.cursor}+{info.cursor_part} of {len(msgs)}")
    return problems


def memory_differences(a: dict[str, MemoryState], b: dict[str, MemoryState]) -> list[str]:
    """Users whose memories ``a`` (with faults) and ``b`` (fault-free) differ in a line, a
    citation or what is forgotten."""
    out = []
    for user in sorted(set(a) | set(b)):
        x, y = a.get(user, MemoryState()), b.get(user, MemoryState())
        lx = [(ln.text, ln.sources) for ln in x.lines]
        ly = [(ln.text, ln.sources) for ln in y.lines]
        if lx != ly or x.forgotten != y.forgotten:
            missing = [t for t, s in ly if (t, s) not in lx]
            extra = [t for t, s in lx if (t, s) not in ly]
            out.append(
                f"{user}: {len(lx)} lines for {len(ly)}, {len(missing)} missing "
                f"(e.g. {missing[:1]}), {len(extra)} other (e.g. {extra[:1]})"
            )
    return out


# --- the report ------------------------------------------------------------------------------------
@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def checks(faulty: RunResult, reference: RunResult, model: FaultyModel, plan: dict) -> list[Check]:
    """The four properties of a fault-injection run."""
    store = open_store(faulty.url)
    try:
        lost = lost_messages(store, plan) + faulty.unread
    finally:
        store.close()
    total = sum(len(m) for m in plan.values())
    kinds = Counter(k for _, k in model.injected)
    hard = {n for n, k in model.injected if k in HARD}
    reached = {f for x in faulty.failures for f in x.faults}
    unusable = sum(1 for m in faulty.logged if "unusable" in m)
    soft = sum(kinds[k] for k in FAULT_KINDS if k not in HARD)
    gave_up = [x for x in faulty.failures if not x.faults and "no usable reply" in x.text]
    unexplained = [x for x in faulty.failures if not x.faults and x not in gave_up]
    invisible = len(hard - reached) + max(0, soft - unusable)
    diff = memory_differences(faulty.final, reference.final)
    lines = sum(len(s.lines) for s in reference.final.values())
    return [
        Check(
            "messages lost",
            not lost,
            f"{total} added; {len(lost)} problems" + (f": {lost[:3]}" if lost else ""),
        ),
        Check(
            "half-written versions",
            not faulty.problems,
            f"{len(faulty.problems)} problems"
            + (f": {faulty.problems[:3]}" if faulty.problems else ""),
        ),
        Check(
            "failures visible",
            invisible == 0 and not unexplained and not faulty.untold,
            f"{len(model.injected)} injected ({', '.join(f'{k} {kinds[k]}' for k in FAULT_KINDS)}); "
            f"{len(hard & reached)} of {len(hard)} exceptions and timeouts reached a caller, "
            f"{unusable} unusable replies logged for {soft} injected "
            f"({faulty.noted} noted in committed versions) "
            f"and {len(gave_up)} updates failed as every re-ask was unusable too"
            + (f"; {len(unexplained)} failures with no injected fault" if unexplained else "")
            + (
                f"; {faulty.untold} failed adds did not say their messages were stored"
                if faulty.untold
                else "; every failed add said its messages were stored"
            ),
        ),
        Check(
            "final memory equal",
            not diff,
            f"{len(plan)} users, {lines} lines in the fault-free run"
            + (f"; {len(diff)} differ: {diff[:2]}" if diff else ", all equal"),
        ),
    ]


def table(rows: list[Check]) -> str:
    out = ["| check | result | detail |", "|---|---|---|"]
    out += [f"| {c.name} | {'pass' if c.ok else 'FAIL'} | {c.detail} |" for c in rows]
    return "\n".join(out)


# --- command line ----------------------------------------------------------------------------------
def _urls(db: str | None, tmp: Path) -> tuple[str, str, list[str]]:
    """The faulty run's store, the fault-free run's, and PostgreSQL schemas to drop after."""
    tag = uuid.uuid4().hex[:8]
    if db and db.startswith(("postgres://", "postgresql://")):
        if "schema=" in db:
            raise SystemExit("--db: give the database without ?schema= (fresh schemas are made)")
        sep = "&" if "?" in db else "?"
        urls = [f"{db}{sep}schema=pm_faults_{tag}", f"{db}{sep}schema=pm_faults_ref_{tag}"]
        return urls[0], urls[1], urls
    faulty = db or f"sqlite:///{tmp / 'faults.db'}"
    store = open_store(faulty)
    try:
        if store.users():
            raise SystemExit(f"--db {faulty} already holds users: give a new file")
    finally:
        store.close()
    return faulty, f"sqlite:///{tmp / 'fault-free.db'}", []


def _drop(url: str) -> None:
    import psycopg

    from personamem.store.postgres import split_url

    dsn, schema = split_url(url)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--db",
        help="a new sqlite:///path.db, or postgresql://... (two fresh schemas are made and "
        "dropped); default: a temporary SQLite file",
    )
    ap.add_argument("--seed", type=int, default=0, help="workload, batches and faults (0)")
    ap.add_argument("--fault-rate", type=float, default=0.3, help="share of calls failing (0.3)")
    ap.add_argument("--users", type=int, default=5, help="(5)")
    ap.add_argument("--messages", type=int, default=200, help="in total, over all users (200)")
    ap.add_argument("--concurrency", type=int, default=4, help="workers, one AsyncMemory each (4)")
    ap.add_argument("--chunk-tokens", type=int, default=80, help="the store's chunk size (80)")
    ap.add_argument("--timeout", type=float, default=0.05, help="seconds a hung call waits (0.05)")
    ap.add_argument("--keep", action="store_true", help="keep the PostgreSQL schemas")
    args = ap.parse_args(argv)
    from rich.progress import Progress

    plan = workload(args.users, args.messages, args.seed)
    total = sum(len(m) for m in plan.values())
    opts = {"chunk_tokens": args.chunk_tokens, "seed": args.seed}
    with tempfile.TemporaryDirectory() as tmp:
        faulty_url, ref_url, drop = _urls(args.db, Path(tmp))
        try:
            with Progress() as bar:
                ref_task = bar.add_task("fault-free run", total=total)
                ref = asyncio.run(
                    run(
                        ref_url,
                        plan,
                        FaultyModel(rate=0.0),
                        concurrency=1,
                        progress=lambda n: bar.update(ref_task, completed=n),
                        **opts,
                    )
                )
                model = FaultyModel(rate=args.fault_rate, seed=args.seed, timeout=args.timeout)
                task = bar.add_task(f"{args.fault_rate:.0%} faults", total=total)
                faulty = asyncio.run(
                    run(
                        faulty_url,
                        plan,
                        model,
                        concurrency=args.concurrency,
                        progress=lambda n: bar.update(task, completed=n),
                        **opts,
                    )
                )
            rows = checks(faulty, ref, model, plan)
        finally:
            if not args.keep:
                for url in drop:
                    _drop(url)
    backend = "PostgreSQL" if faulty_url.startswith("postgres") else "SQLite"
    hard_failures = Counter(f.error.split(" < ")[0] for f in faulty.failures)
    print(
        f"\n{backend}, {args.users} users, {total} messages in total, {args.concurrency} workers, "
        f"chunks of {args.chunk_tokens} tokens, seed {args.seed}: {model.calls} model calls, "
        f"{len(model.injected)} faults, {faulty.flushes} flushes, {len(faulty.failures)} failed "
        f"adds/flushes ({', '.join(f'{k} {v}' for k, v in hard_failures.items())}), "
        f"{faulty.lease_waits} times a lease was held by another worker, {faulty.busy} waits "
        f"timed out, {faulty.seconds:.1f} s "
        f"(fault-free: {ref.seconds:.1f} s)\n"
    )
    print(table(rows))
    return 0 if all(c.ok for c in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
