"""The service on a real uvicorn server on loopback (a random free port): a smoke set over real
HTTP, tenant isolation, and the `personamem keys` commands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from memory_fakes import chat
from pg_helpers import drop, pg_url
from server_helpers import live_server, make_app
from typer.testing import CliRunner

from personamem.cli import app as cli
from personamem.server import KeyStore


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'service.db'}"
        return
    url = pg_url()
    yield url
    drop(url)


def test_smoke_over_real_http_and_tenants_are_isolated(tmp_path: Path, db: str) -> None:
    app, keys = make_app(tmp_path, db=db)
    a, b = keys.create("tenant-a").key, keys.create("tenant-b").key
    with live_server(app) as url:
        ca = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {a}"}, timeout=30)
        cb = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {b}"}, timeout=30)
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        r = ca.post("/v1/users/alice/messages", json={"messages": chat(12), "update": "wait"})
        assert r.status_code == 200 and r.json()["user_id"] == "alice"
        ca.put("/v1/users/alice/memory", json={"text": "- Secret hobby: falconry"})
        # B has no alice: not listed, 404 on every read or write, nothing of A's in any answer
        assert cb.get("/v1/users").json() == {"users": []}
        for method, path, body in [
            ("GET", "/v1/users/alice/memory", None),
            ("GET", "/v1/users/alice/history", None),
            ("GET", "/v1/users/alice/export", None),
            ("POST", "/v1/users/alice/undo", {}),
            ("POST", "/v1/users/alice/flush", None),
            ("DELETE", "/v1/users/alice", None),
        ]:
            r = cb.request(method, path, json=body)
            assert r.status_code == 404, (path, r.text)
            assert "falconry" not in r.text and "tenant-a" not in r.text
        ctx = cb.get("/v1/users/alice/context").json()
        assert "falconry" not in ctx["context"]
        # B's own alice is a different user
        cb.post("/v1/users/alice/messages", json={"messages": chat(2), "update": "none"})
        assert cb.get("/v1/users/alice/memory").json()["messages"] == 2
        assert ca.get("/v1/users/alice/memory").json()["messages"] == 12
        assert "falconry" in ca.get("/v1/users/alice/context").json()["context"]
        assert cb.delete("/v1/users/alice").status_code == 200
        assert ca.get("/v1/users").json() == {"users": ["alice"]}
        assert "personamem_http_requests_total" in httpx.get(f"{url}/metrics").text
        ca.close()
        cb.close()


def test_keys_cli_create_list_revoke(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'k.db'}"
    run = CliRunner()
    r = run.invoke(
        cli, ["keys", "create", "--tenant", "acme", "--name", "app", "--db", db, "--json"]
    )
    assert r.exit_code == 0, r.output
    new = json.loads(r.stdout)
    assert new["key"].startswith(f"pmk_{new['key_id']}_") and new["tenant"] == "acme"
    # only the hash is stored: the secret appears nowhere in the database file
    secret = new["key"].removeprefix(f"pmk_{new['key_id']}_")
    assert secret.encode() not in (tmp_path / "k.db").read_bytes()
    assert KeyStore(db).verify(new["key"]).tenant == "acme"
    r = run.invoke(cli, ["keys", "list", "--db", db, "--json"])
    listed = json.loads(r.stdout)
    assert [k["key_id"] for k in listed] == [new["key_id"]] and "key" not in listed[0]
    r = run.invoke(cli, ["keys", "revoke", new["key_id"], "--db", db])
    assert r.exit_code == 0
    assert KeyStore(db).verify(new["key"]).revoked_at is not None
    r = run.invoke(cli, ["keys", "revoke", "000000000000", "--db", db])
    assert r.exit_code == 1 and "no key" in r.output
    r = run.invoke(cli, ["keys", "create", "--tenant", "Not Valid", "--db", db])
    assert r.exit_code == 2 and "bad tenant" in r.output
