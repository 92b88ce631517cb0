"""tests/test_memory_api.py again with every store in PostgreSQL (see tests/pg_rerun.py)."""

import json

import test_memory_api as on_sqlite
from memory_fakes import echo_model
from pg_rerun import reran, rerun

from personamem.store import Memory
from personamem.store.postgres import PostgresStore

globals().update(rerun(on_sqlite))
RERUN = reran(globals())


def test_the_rerun_covers_the_api_tests() -> None:
    assert len(RERUN) >= 20


def test_secrets_never_reach_the_postgres_tables(tmp_path, pg_stores) -> None:
    """The PostgreSQL form of test_secrets_never_reach_model_memory_or_export: no secret in the
    export, the model's prompts, or any row of any table of the store's schema."""
    model = echo_model()
    opts = {"strategy": "extract", "chunk_tokens": 40, "memory_tokens": 100000}
    with Memory(f"sqlite:///{tmp_path / 'm.db'}", model=model, **opts) as mem:
        assert mem.add(on_sqlite.SECRET_CHAT, "u").redactions == 5
        mem.flush("u")
        blob = json.dumps(mem.export("u")) + json.dumps(list(model.calls))
        assert isinstance(mem.store, PostgresStore)
        tables = ""
        for (table,) in mem.store._query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (mem.store.schema,),
        ):
            rows = mem.store._query(f'SELECT row_to_json(t)::text FROM "{table}" t')
            tables += "".join(r[0] for r in rows)
    assert "2024-03-15" in tables and "10:30" in tables  # the rows were read; ordinary text kept
    for s in on_sqlite.SECRETS:
        assert s not in blob + tables
