"""The PersonaMem-v2 benchmark harness: systems, a resumable runner, scoring and reports.

from personamem.bench import RunConfig, run_bench, write_report
run_bench(RunConfig(data_dir="data/personamem-v2", limit=10), "runs/demo")
write_report(["runs/demo"])
"""

from .config import RunConfig, default_cache_dir
from .report import ReportError, load_run, summarize, wilson, write_report
from .runner import BenchError, RunEvents, Runner, RunSummary, run_bench, select_items
from .scoring import aggregate, agreement, judge_open, parse_score, shuffle_options
from .store import RunDirError, RunStore
from .systems import SYSTEMS, Context, Env, Prepared, System, get_system, register

__all__ = [
    "SYSTEMS",
    "BenchError",
    "Context",
    "Env",
    "Prepared",
    "ReportError",
    "RunConfig",
    "RunDirError",
    "RunEvents",
    "RunStore",
    "RunSummary",
    "Runner",
    "System",
    "aggregate",
    "agreement",
    "default_cache_dir",
    "get_system",
    "judge_open",
    "load_run",
    "parse_score",
    "register",
    "run_bench",
    "select_items",
    "shuffle_options",
    "summarize",
    "wilson",
    "write_report",
]
