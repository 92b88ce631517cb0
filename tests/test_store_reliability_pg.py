"""tests/test_store_reliability.py again with every store in PostgreSQL (see tests/pg_rerun.py)."""

import test_store_reliability as on_sqlite
from pg_rerun import reran, rerun

globals().update(rerun(on_sqlite))
RERUN = reran(globals())
