"""A small fault-injection run (benchmarks/fault_injection.py, fault_workload.py): 2 users x 30 messages, 30% of
the model's calls failing (exception, timeout, empty, malformed, over-long reply), 3 concurrent
workers on SQLite and on PostgreSQL. Nothing lost, no half-written version, every failure
visible, and the same final memory as a fault-free run."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_helpers import drop, pg_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import fault_injection as fi  # noqa: E402
from fault_workload import FaultyModel, workload  # noqa: E402


@pytest.fixture(params=["sqlite", "postgres"])
def store_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A store for the run with faults and one for the fault-free run."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'faults.db'}", f"sqlite:///{tmp_path / 'fault-free.db'}"
        return
    urls = pg_url(), pg_url()
    yield urls
    for url in urls:
        drop(url)


@pytest.mark.parametrize("seed", [1, 5])  # 22 and 27 faults, every kind
def test_faults_lose_nothing_and_change_nothing(store_urls: tuple[str, str], seed: int) -> None:
    faulty_url, ref_url = store_urls
    plan = workload(users=2, messages=60, seed=seed)
    ref = asyncio.run(fi.run(ref_url, plan, FaultyModel(rate=0.0), concurrency=1, seed=seed))
    model = FaultyModel(rate=0.3, seed=seed, timeout=0.02)
    faulty = asyncio.run(fi.run(faulty_url, plan, model, concurrency=3, seed=seed))

    kinds = Counter(k for _, k in model.injected)
    assert len(model.injected) >= 10 and len(kinds) >= 4, kinds  # the run did meet faults
    assert faulty.failures  # and workers retried failed updates
    assert sum(len(s.lines) for s in ref.final.values()) >= 20
    results = {c.name: c for c in fi.checks(faulty, ref, model, plan)}
    assert list(results) == [
        "messages lost",
        "half-written versions",
        "failures visible",
        "final memory equal",
    ]
    for check in results.values():
        assert check.ok, f"{check.name}: {check.detail}"
