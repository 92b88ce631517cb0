"""A bounded loopback load test of `personamem serve`: requests/s and latency percentiles for
reads (GET memory) and adds (POST messages, stored without an update), SQLite vs PostgreSQL,
1 vs N API processes. The server runs in its own processes (`personamem serve --workers N`);
the load comes from this process (httpx, asyncio, fixed concurrency, fixed duration).

    python3 benchmarks/service_load.py --seconds 10 --concurrency 16 --out benchmarks/service.md

The model is the `scripted` double (no model call is timed: adds use update=none and reads do not
call a model), so this measures the HTTP layer, auth, validation and the store.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PG = "postgresql://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "personamem.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )


async def load(url: str, key: str, kind: str, seconds: float, concurrency: int) -> dict:
    lat: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as c:

        async def one(worker: int) -> None:
            nonlocal errors
            i = 0
            while time.monotonic() < stop:
                user = f"u{(worker * 7 + i) % 50}"
                t0 = time.perf_counter()
                if kind == "read":
                    r = await c.get(f"/v1/users/{user}/memory")
                else:
                    body = {
                        "messages": [
                            {"role": "user", "content": f"I like item {worker}-{i} a lot today."}
                        ],
                        "update": "none",
                    }
                    r = await c.post(f"/v1/users/{user}/messages", json=body)
                lat.append(time.perf_counter() - t0)
                if r.status_code >= 300:
                    errors += 1
                i += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(one(w) for w in range(concurrency)))
        wall = time.perf_counter() - t0
    q = statistics.quantiles(lat, n=100)
    return {
        "n": len(lat),
        "rps": len(lat) / wall,
        "p50": q[49] * 1000,
        "p95": q[94] * 1000,
        "p99": q[98] * 1000,
        "errors": errors,
    }


def run_cell(db: str, processes: int, seconds: float, concurrency: int) -> dict[str, dict]:
    port = free_port()
    key = cli("keys", "create", "--tenant", "bench", "--db", db).stdout.strip()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [
            sys.executable, "-m", "personamem.cli", "serve", "--db", db, "--port", str(port),
            "--model", "scripted", "--workers", str(processes), "--rate-limit", "0",
            "--update-workers", "0",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.2)
        # 50 users with some messages to read
        h = {"Authorization": f"Bearer {key}"}
        for u in range(50):
            msgs = [{"content": f"I enjoy hobby number {j} on weekends."} for j in range(20)]
            httpx.post(
                f"{url}/v1/users/u{u}/messages",
                json={"messages": msgs, "update": "none"},
                headers=h,
                timeout=30,
            )
        out = {}
        for kind in ("read", "add"):
            out[kind] = asyncio.run(load(url, key, kind, seconds, concurrency))
        return out
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="Duration of each measurement.")
    ap.add_argument("--concurrency", type=int, default=16, help="Requests in flight.")
    ap.add_argument("--processes", default="1,4", help="API process counts to compare.")
    ap.add_argument("--out", type=Path, help="Write the markdown table here too.")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pm-load-"))
    rows = []
    for backend in ("sqlite", "postgres"):
        for n in [int(x) for x in args.processes.split(",")]:
            if backend == "sqlite":
                db = f"sqlite:///{tmp / f'load-{n}.db'}"
            else:
                db = f"{PG}?schema=pm_load_{uuid.uuid4().hex[:8]}"
            res = run_cell(db, n, args.seconds, args.concurrency)
            if backend == "postgres":
                from personamem.store.postgres import PostgresStore

                PostgresStore(db).drop_schema()
            for kind, r in res.items():
                rows.append((backend, n, kind, r))
                print(backend, n, kind, {k: round(v, 1) for k, v in r.items()}, flush=True)
    lines = [
        "| store | API processes | operation | requests | req/s | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for backend, n, kind, r in rows:
        lines.append(
            f"| {backend} | {n} | {kind} | {r['n']} | {r['rps']:.0f} | {r['p50']:.1f} "
            f"| {r['p95']:.1f} | {r['p99']:.1f} | {r['errors']} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(args.out.read_text().replace("<!-- table -->", table))


if __name__ == "__main__":
    main()
