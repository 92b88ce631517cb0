"""tests/test_memory_api.py again with every store in PostgreSQL (see tests/pg_rerun.py)."""

import test_memory_api as on_sqlite
from pg_rerun import reran, rerun

globals().update(rerun(on_sqlite))
RERUN = reran(globals())


def test_the_rerun_covers_the_api_tests() -> None:
    assert len(RERUN) >= 20
