"""tests/test_store.py again with every store in PostgreSQL (see tests/pg_rerun.py)."""

import test_store as on_sqlite
from pg_rerun import reran, rerun

globals().update(rerun(on_sqlite))
RERUN = reran(globals())
