"""tests/test_memory_failures.py again with every store in PostgreSQL (see tests/pg_rerun.py)."""

import test_memory_failures as on_sqlite
from pg_rerun import reran, rerun

globals().update(rerun(on_sqlite))
RERUN = reran(globals())
