"""tests/test_one_pipeline.py again with every store in PostgreSQL (see tests/pg_rerun.py)."""

import test_one_pipeline as on_sqlite
from pg_rerun import reran, rerun

globals().update(rerun(on_sqlite))
RERUN = reran(globals())
