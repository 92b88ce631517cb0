"""Schema-driven fuzzing (schemathesis) of the whole API with two tenants: tenant A's users hold
marked text under common and unique ids; tenant B's key is fuzzed, stateless per operation and
stateful (following the schema's links). Zero 5xx, every response conforms to the schema, and no
response to B carries A's ids, text, tenant name or key id."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from server_helpers import make_app

from personamem.models import ScriptedModel
from personamem.store import AsyncMemory

MARK = "zqvxtenantasecret"
A_UNIQUE = "alice-7f3e9c"
# Ids a fuzzer is likely to send: tenant A owns them too, so a lookup across tenants would show.
A_COMMON = ["0", "A", "a", "00", "1", "0.0", A_UNIQUE]

_tmp = Path(tempfile.mkdtemp(prefix="pm-fuzz-"))
APP, KEYS = make_app(
    _tmp, rate_limit=0, update_workers=0, upstream=ScriptedModel(default="fuzz reply")
)
KEY_A = KEYS.create("tenant-a")
KEY_B = KEYS.create("tenant-b")
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": [400, 401, 403, 404, 405, 409, 413, 415, 422, 429]
            }
        }
    }
)


def _seed() -> None:
    memory: AsyncMemory = APP.state.service.memory

    async def run() -> None:
        for uid in A_COMMON:
            internal = f"tenant-a/{uid}"
            await memory.add(
                [{"role": "user", "content": f"My name is {MARK} and I love {MARK} music"}],
                internal,
                update=False,
            )
            await memory.edit(internal, f"- {MARK} likes {MARK} jazz")

    asyncio.run(run())


_seed()
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP, config=CONFIG)
HEADERS_B = {"Authorization": f"Bearer {KEY_B.key}"}
FORBIDDEN = [MARK, "tenant-a", KEY_A.key_id, A_UNIQUE]


def assert_no_leak(text: str) -> None:
    for s in FORBIDDEN:
        assert s not in text, f"tenant B got tenant A's {s!r}: {text[:300]}"


@SCHEMA.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzz_each_operation_as_tenant_b(case: schemathesis.Case) -> None:
    response = case.call(headers=HEADERS_B)
    assert response.status_code < 500, response.text[:500]
    assert_no_leak(response.text)
    case.validate_response(response, headers=HEADERS_B)


class TenantB(SCHEMA.as_state_machine()):  # type: ignore[misc]
    def get_call_kwargs(self, case: schemathesis.Case) -> dict:
        return {"headers": HEADERS_B}

    def after_call(self, response: schemathesis.Response, case: schemathesis.Case) -> None:
        assert response.status_code < 500, response.text[:500]
        assert_no_leak(response.text)


def test_fuzz_stateful_as_tenant_b() -> None:
    TenantB.run(
        settings=settings(
            max_examples=30,
            stateful_step_count=6,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )


def test_tenant_a_data_is_still_there() -> None:
    """The fuzzing as B changed nothing of A's (and the seeded data is what the checks look for)."""
    memory: AsyncMemory = APP.state.service.memory
    users = asyncio.run(memory.users())
    for uid in A_COMMON:
        assert f"tenant-a/{uid}" in users
        assert MARK in asyncio.run(memory.get(f"tenant-a/{uid}")).text


@pytest.fixture(scope="module", autouse=True)
def _close():
    yield
    KEYS.close()
