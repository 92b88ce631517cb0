"""Read run folders and report: accuracy with 95% Wilson intervals, breakdowns, cost, KV-cache
reuse, judge agreement; as rich tables, Markdown (``report.md``) and PNG plots."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import scoring
from .store import RunStore

RANDOM_GUESS = 0.25
SYSTEM_ORDER = ("memory", "long-context", "retrieval", "no-history")
BREAKDOWNS: tuple[tuple[str, str], ...] = (
    ("pref_type", "preference type"),
    ("who", "whose preference (self / others)"),
    ("updated", "preference updated (static / dynamic)"),
    ("sensitive", "sensitive information"),
    ("scenario", "conversation scenario"),
    ("context", "context length"),
    ("distance_bucket", "distance of the evidence from the end of the history (tokens)"),
)


class ReportError(ValueError):
    """A folder is not a benchmark run (no run.json / results.jsonl)."""


# --- statistics ---------------------------------------------------------------------------------
def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k/n ((0, 1) when n is 0)."""
    if n <= 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_ci(xs: Sequence[float], z: float = 1.96) -> tuple[float | None, float, float]:
    """Mean and a normal-approximation 95% interval, clipped to [0, 1]."""
    if not xs:
        return (None, 0.0, 1.0)
    m = statistics.fmean(xs)
    if len(xs) < 2:
        return (m, 0.0, 1.0)
    half = z * statistics.stdev(xs) / math.sqrt(len(xs))
    return (m, max(0.0, m - half), min(1.0, m + half))


# --- loading ------------------------------------------------------------------------------------
@dataclass
class Run:
    """One run folder, read back."""

    path: Path
    manifest: dict[str, Any]
    rows: list[dict[str, Any]]
    builds: dict[tuple[str, str, str], dict[str, Any]]
    label: str = ""
    judge_validations: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Open mode: each judge's validation (``judge_validation.json``), by judge key."""

    @property
    def config(self) -> dict[str, Any]:
        return self.manifest.get("config", {})

    def done(self, system: str | None = None, mode: str | None = None) -> list[dict[str, Any]]:
        return [
            r
            for r in self.rows
            if r.get("status") == "done"
            and (system is None or r["system"] == system)
            and (mode is None or r["mode"] == mode)
        ]

    def systems(self) -> list[str]:
        present = {r["system"] for r in self.rows}
        ordered = [s for s in self.config.get("systems", []) if s in present]
        ordered += sorted(present - set(ordered))
        return sorted(ordered, key=lambda s: SYSTEM_ORDER.index(s) if s in SYSTEM_ORDER else 99)

    def modes(self) -> list[str]:
        present = {r["mode"] for r in self.rows}
        return [m for m in ("mcq", "open") if m in present]


def load_run(path: str | Path) -> Run:
    store = RunStore(path)
    if not store.root.is_dir():
        raise ReportError(f"{store.root}: not a folder")
    manifest = store.read_manifest()
    if manifest is None:
        raise ReportError(f"{store.root}: no run.json; not a benchmark run folder")
    rows = list(store.results().values())
    return Run(
        store.root,
        manifest,
        rows,
        store.builds(),
        label=store.root.name,
        judge_validations=store.judge_validations(),
    )


def _labels(runs: list[Run]) -> None:
    """Unique short labels: folder names, made unique with their parent if needed."""
    names = [r.path.name for r in runs]
    for r in runs:
        r.label = (
            r.path.name if names.count(r.path.name) == 1 else f"{r.path.parent.name}/{r.path.name}"
        )


# --- summaries ----------------------------------------------------------------------------------
@dataclass
class Cell:
    k: float
    n: int

    @property
    def acc(self) -> float | None:
        return self.k / self.n if self.n else None


@dataclass
class SystemSummary:
    run: str
    system: str
    mode: str
    n: int = 0
    correct: float = 0.0
    accuracy: float | None = None
    ci: tuple[float, float] = (0.0, 1.0)
    unparsed: int = 0
    errors: int = 0
    pending: int = 0
    methods: dict[str, int] = field(default_factory=dict)
    # open-ended
    majority: float | None = None
    majority_ci: tuple[float, float] = (0.0, 1.0)
    judge_unparsed: int = 0
    leaks: int = 0
    leak_checked: int = 0
    forget_violations: int = 0
    forget_checked: int = 0
    # cost (per question unless said)
    tokens_in: float = 0.0
    prefill_tokens: float = 0.0
    tokens_out: float = 0.0
    seconds: float = 0.0
    build_tokens: float = 0.0
    build_seconds: float = 0.0
    builds: int = 0
    builds_cached: int = 0
    wall_seconds: float = 0.0
    tokens_per_second: float | None = None
    dropped_tokens: float = 0.0
    retrieval_recall: float | None = None


def _mean(xs: Iterable[float]) -> float:
    xs = list(xs)
    return statistics.fmean(xs) if xs else 0.0


def summarize(run: Run) -> list[SystemSummary]:
    """One summary per (system, mode) of a run."""
    out = []
    for system in run.systems():
        sys_rows = [r for r in run.rows if r["system"] == system]
        done_all = [r for r in sys_rows if r.get("status") == "done"]
        hashes = {r.get("history_hash") for r in done_all if r.get("history_hash")}
        builds = [b for (s, h, _), b in run.builds.items() if s == system and h in hashes]
        b_tokens = sum((b.get("tokens_in") or 0) + (b.get("tokens_out") or 0) for b in builds)
        b_seconds = sum(b.get("seconds") or 0.0 for b in builds)
        for mode in run.modes():
            rows = [r for r in done_all if r["mode"] == mode]
            s = SystemSummary(run.label, system, mode)
            s.errors = sum(1 for r in sys_rows if r["mode"] == mode and r.get("status") == "error")
            s.pending = sum(
                1 for r in sys_rows if r["mode"] == mode and r.get("status") == "answered"
            )
            s.n = len(rows)
            if not rows and not s.errors and not s.pending:
                continue
            s.unparsed = sum(1 for r in rows if not r.get("parsed", True))
            for r in rows:
                s.methods[r.get("method", "?")] = s.methods.get(r.get("method", "?"), 0) + 1
            if mode == "mcq":
                s.correct = sum(1 for r in rows if r.get("correct"))
                s.accuracy = s.correct / s.n if s.n else None
                s.ci = wilson(int(s.correct), s.n)
            else:
                scores = [float(r.get("score") or 0.0) for r in rows]
                m, lo, hi = mean_ci(scores)
                s.accuracy, s.ci, s.correct = m, (lo, hi), sum(scores)
                maj = [r.get("score_majority") for r in rows]
                k = sum(1 for v in maj if v == 1)
                s.majority = k / s.n if s.n else None
                s.majority_ci = wilson(k, s.n)
                s.judge_unparsed = sum(int(r.get("judge_unparsed") or 0) for r in rows)
                checked = [r for r in rows if "leaked" in r]
                s.leak_checked, s.leaks = len(checked), sum(1 for r in checked if r["leaked"])
                fchecked = [r for r in rows if "forget_violated" in r]
                s.forget_checked = len(fchecked)
                s.forget_violations = sum(1 for r in fchecked if r["forget_violated"])
            s.tokens_in = _mean(r.get("tokens_in") or 0 for r in rows)
            s.prefill_tokens = _mean(r.get("prefill_tokens") or 0 for r in rows)
            s.tokens_out = _mean(r.get("tokens_out") or 0 for r in rows)
            s.seconds = _mean(r.get("seconds") or 0.0 for r in rows)
            s.dropped_tokens = _mean(r.get("history_tokens_dropped") or 0 for r in rows)
            if done_all:
                s.build_tokens = b_tokens / len(done_all)
                s.build_seconds = b_seconds / len(done_all)
            s.builds = len(builds)
            s.builds_cached = sum(1 for b in builds if b.get("cached"))
            answer_s = sum(r.get("seconds") or 0.0 for r in rows)
            s.wall_seconds = answer_s + (b_seconds * len(rows) / len(done_all) if done_all else 0)
            processed = sum(
                (r.get("prefill_tokens") or 0) + (r.get("tokens_out") or 0) for r in rows
            )
            s.tokens_per_second = processed / answer_s if answer_s > 0 else None
            with_ret = [r for r in rows if r.get("retrieved") is not None and r.get("evidence_ids")]
            if with_ret:
                s.retrieval_recall = sum(
                    1 for r in with_ret if set(r["retrieved"]) & set(r["evidence_ids"])
                ) / len(with_ret)
            out.append(s)
    return out


def _value(row: dict[str, Any], dim: str) -> str:
    v = row.get(dim)
    if dim == "updated":
        return "dynamic" if v else "static"
    if dim == "sensitive":
        return "sensitive" if v else "none"
    if v is None or v == "":
        return "unknown"
    return str(v)


def breakdown(run: Run, dim: str, mode: str) -> dict[str, dict[str, Cell]]:
    """value -> system -> Cell (score sum, n) over done rows of ``mode``."""
    table: dict[str, dict[str, Cell]] = defaultdict(dict)
    for r in run.done(mode=mode):
        cell = table[_value(r, dim)].setdefault(r["system"], Cell(0.0, 0))
        cell.k += float(r.get("score") or 0.0)
        cell.n += 1
    return dict(table)


def _bucket_key(v: str) -> tuple[int, float, str]:
    if v == "unknown":
        return (2, 0.0, v)
    head = v.split("-")[0].rstrip("k+")
    try:
        return (0, float(head), v)
    except ValueError:
        return (1, 0.0, v)


def kv_reuse(run: Run) -> dict[str, Any] | None:
    """Long-context: first question of a history (cold KV cache) vs the following ones."""
    rows = [r for r in run.done(system="long-context") if r.get("order_in_history") is not None]
    cold = [r for r in rows if r["order_in_history"] == 0]
    warm = [r for r in rows if r["order_in_history"] > 0]
    if not cold or not warm:
        return None
    cs = _mean(r.get("seconds") or 0.0 for r in cold)
    ws = _mean(r.get("seconds") or 0.0 for r in warm)
    return {
        "cold_n": len(cold),
        "warm_n": len(warm),
        "cold_seconds": cs,
        "warm_seconds": ws,
        "speedup": cs / ws if ws > 0 else None,
        "cold_prefill": _mean(r.get("prefill_tokens") or 0 for r in cold),
        "warm_prefill": _mean(r.get("prefill_tokens") or 0 for r in warm),
        "tokens_in": _mean(r.get("tokens_in") or 0 for r in rows),
    }


def judge_agreement(run: Run) -> dict[str, Any] | None:
    votes = [r["judge_votes"] for r in run.done(mode="open") if r.get("judge_votes")]
    if not votes:
        return None
    return scoring.agreement(votes)


# --- formatting ---------------------------------------------------------------------------------
def pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def num(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class Section:
    """A titled table (and optionally a plot) rendered to both Markdown and rich."""

    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""
    plot: str | None = None
    level: int = 2


def _series(runs: list[Run]) -> list[tuple[Run, str]]:
    """(run, system) pairs, system by system so that runs of one system sit side by side."""
    pairs = [(run, s) for run in runs for s in run.systems()]
    order = list(dict.fromkeys(s for _, s in pairs))
    return sorted(pairs, key=lambda p: (order.index(p[1]), runs.index(p[0])))


def _name(run: Run, system: str, several: bool) -> str:
    return f"{system} [{run.label}]" if several else system


def judge_validation_section(runs: list[Run]) -> Section | None:
    """Each judge's validation: how often it scored the correct option above every wrong one."""
    several = len(runs) > 1
    rows = []
    for r in runs:
        used = set(r.manifest.get("judges_used") or [])
        validated = r.manifest.get("judges_validated") or list(r.judge_validations)
        for key in validated:
            v = r.judge_validations.get(key)
            if not v:
                continue
            lo, hi = v.get("ci") or (0.0, 1.0)
            rows.append(
                [
                    f"{v.get('judge')} [{r.label}]" if several else str(v.get("judge")),
                    str(v.get("method") or "–"),
                    f"{v.get('correct_first')}/{v.get('items')}",
                    pct(v.get("share")),
                    f"{pct(lo)} – {pct(hi)}",
                    str(v.get("ties")),
                    f"{v.get('unparsed')}/{v.get('responses')}",
                    "yes" if key in used else "no",
                ]
            )
    if not rows:
        return None
    return Section(
        "Judge validation",
        ["judge", "method", "correct first", "share", "95% CI", "ties", "unparsed", "used"],
        rows,
        "Before judging, each judge scored the correct option and the wrong options of the run's "
        "first questions as responses, with the same rubric; it is used only if the correct one "
        "scored strictly above every wrong one on at least 80% of them. Method: `distribution` = "
        "expected score from the score-token probabilities after \\boxed{, `generate` = "
        "a generated \\boxed{} score.",
    )


def build_sections(runs: list[Run]) -> list[Section]:
    several = len(runs) > 1
    sums = {r.label: summarize(r) for r in runs}
    all_sums = [s for r in runs for s in sums[r.label]]
    sections: list[Section] = []
    # runs
    rows = []
    for r in runs:
        c = r.config
        rows.append(
            [
                r.label,
                str(c.get("model"))
                + (f" (memories: {c['memory_model']})" if c.get("memory_model") else ""),
                str(c.get("context")),
                ",".join(c.get("modes", [])),
                str(len({x["qid"] for x in r.rows})),
                ",".join(r.manifest.get("judge_specs") or []) or "–",
                str(r.manifest.get("created", "")),
            ]
        )
    sections.append(
        Section(
            "Runs", ["run", "model", "context", "modes", "questions", "judges", "created"], rows
        )
    )
    # MCQ
    mcq = [s for s in all_sums if s.mode == "mcq"]
    if mcq:
        rows = []
        for s in mcq:
            rows.append(
                [
                    f"{s.system} [{s.run}]" if several else s.system,
                    str(s.n),
                    pct(s.accuracy),
                    f"{pct(s.ci[0])} – {pct(s.ci[1])}",
                    str(s.unparsed),
                    ", ".join(f"{k} {v}" for k, v in sorted(s.methods.items())),
                    str(s.errors),
                ]
            )
        rows.append(["random guess", "", pct(RANDOM_GUESS), "", "", "", ""])
        note = (
            "Unparsed replies count as wrong. Method: `likelihood` = the option text the model "
            "finds most likely as its reply, `score` = the most likely letter, `generate` = the "
            "letter parsed from generated text."
        )
        if any(s.errors for s in mcq):
            note += " Errors are excluded and retried when the run is resumed."
        sections.append(
            Section(
                "Accuracy (multiple choice)",
                ["system", "n", "accuracy", "95% CI", "unparsed", "method", "errors"],
                rows,
                note,
                plot="accuracy.png",
            )
        )
    # open
    opn = [s for s in all_sums if s.mode == "open"]
    if opn:
        rows = []
        for s in opn:
            rows.append(
                [
                    f"{s.system} [{s.run}]" if several else s.system,
                    str(s.n),
                    num(s.accuracy, 3),
                    f"{num(s.ci[0], 3)} – {num(s.ci[1], 3)}",
                    pct(s.majority),
                    f"{s.leaks}/{s.leak_checked}" if s.leak_checked else "–",
                    f"{s.forget_violations}/{s.forget_checked}" if s.forget_checked else "–",
                    str(s.judge_unparsed),
                    str(s.pending),
                ]
            )
        notes = []
        for r in runs:
            ag = judge_agreement(r)
            if ag and ag["items"]:
                notes.append(
                    f"Judge agreement{f' [{r.label}]' if several else ''}: unanimous "
                    f"{pct(ag['unanimous'])}, pairwise {pct(ag['pairwise'])}, Fleiss' kappa "
                    f"{num(ag['fleiss_kappa'], 2)} over {ag['items']} items."
                )
        notes.append(
            "Mean: the judges' mean 0-1 alignment score; majority: share of answers most judges "
            "scored at least 0.5. Leaks: sensitive items whose secret appears in the answer "
            "(string match, then a YES/NO judge). Forget: forgotten preferences the answer used."
        )
        sections.append(
            Section(
                "Open-ended (LLM judges)",
                [
                    "system",
                    "n",
                    "mean score",
                    "95% CI",
                    "majority",
                    "leaks",
                    "forget violations",
                    "unparsed judgements",
                    "not judged yet",
                ],
                rows,
                " ".join(notes),
                plot="open_scores.png",
            )
        )
    validation = judge_validation_section(runs)
    if validation is not None:
        sections.append(validation)
    # cost
    rows = []
    both = len({s.mode for s in all_sums}) > 1
    for s in all_sums:
        if not s.n:
            continue
        label = f"{s.system} [{s.run}]" if several else s.system
        rows.append(
            [
                f"{label} ({s.mode})" if both else label,
                num(s.tokens_in),
                num(s.prefill_tokens),
                num(s.tokens_out, 1),
                num(s.build_tokens) + (f" ({s.builds_cached}/{s.builds})" if s.builds else ""),
                num(s.seconds, 2),
                num(s.build_seconds, 2),
                num(s.wall_seconds, 1),
                num(s.tokens_per_second, 0),
                num(s.dropped_tokens) if s.system == "long-context" else "–",
            ]
        )
    if rows:
        sections.append(
            Section(
                "Cost per question",
                [
                    "system",
                    "in tok",
                    "prefilled",
                    "out tok",
                    "build tok",
                    "answer s",
                    "build s",
                    "wall s",
                    "tok/s",
                    "dropped",
                ],
                rows,
                "Per question. In tok: what the answer prompts held (every scoring pass "
                "included); prefilled: the tokens the backend actually evaluated (fewer when a "
                "KV-cache prefix or an earlier score was reused); build tok / build s: memory "
                "writing, embedding, or (long-context) scoring the no-context baselines before "
                "the history, spread over the run's questions (a cached memory still counts what "
                "it cost once; builds cached/total in brackets); wall s: answer + build seconds, "
                "total over the run; tok/s = (prefilled + out) / answer seconds; dropped: history "
                "tokens that did not fit the context window.",
                plot="accuracy_vs_tokens.png",
            )
        )
    # kv reuse
    rows = []
    for r in runs:
        kv = kv_reuse(r)
        if kv:
            rows.append(
                [
                    r.label,
                    f"{num(kv['cold_seconds'], 2)} s ({kv['cold_n']})",
                    f"{num(kv['warm_seconds'], 2)} s ({kv['warm_n']})",
                    f"{num(kv['speedup'], 1)}×",
                    num(kv["tokens_in"]),
                    num(kv["cold_prefill"]),
                    num(kv["warm_prefill"]),
                ]
            )
    if rows:
        sections.append(
            Section(
                "Long-context KV-cache reuse",
                [
                    "run",
                    "first question of a history",
                    "following questions",
                    "speed-up",
                    "input tok",
                    "prefilled tok (first)",
                    "prefilled tok (following)",
                ],
                rows,
                "The questions of one history are asked one after another; the history is a "
                "common prompt prefix, so after the first question only the query and options "
                "are evaluated.",
            )
        )
    recall = [s for s in all_sums if s.retrieval_recall is not None and s.mode == "mcq"] or [
        s for s in all_sums if s.retrieval_recall is not None
    ]
    if recall:
        sections.append(
            Section(
                "Retrieval",
                ["system", "evidence retrieved (any evidence turn in the top-k)"],
                [
                    [f"{s.system} [{s.run}]" if several else s.system, pct(s.retrieval_recall)]
                    for s in recall
                ],
            )
        )
    # breakdowns
    main_mode = "mcq" if mcq else "open"
    series = _series(runs)
    for dim, title in BREAKDOWNS:
        merged: dict[str, dict[tuple[str, str], Cell]] = defaultdict(dict)
        for r in runs:
            for value, cells in breakdown(r, dim, main_mode).items():
                for system, cell in cells.items():
                    merged[value][(r.label, system)] = cell
        if not merged:
            continue
        values = sorted(merged, key=_bucket_key if dim == "distance_bucket" else str)
        rows = []
        for v in values:
            row = [v, str(max((c.n for c in merged[v].values()), default=0))]
            for run, system in series:
                c = merged[v].get((run.label, system))
                row.append(
                    "–"
                    if c is None or not c.n
                    else f"{pct(c.acc, 0)} ({num(c.k)}/{c.n})"
                    if main_mode == "mcq"
                    else f"{num(c.acc, 2)} ({c.n})"
                )
            if main_mode == "mcq":
                row.append(pct(RANDOM_GUESS, 0))
            rows.append(row)
        note = ""
        if dim == "distance_bucket":
            note = (
                "Tokens between the last message of the question's evidence and the end of the "
                "history (the release's column when present, else measured with the model's "
                "tokenizer by locating the evidence snippet in the history)."
            )
        sections.append(
            Section(
                f"By {title}",
                [
                    dim,
                    "n",
                    *[_name(r, s, several) for r, s in series],
                    *(["random guess"] if main_mode == "mcq" else []),
                ],
                rows,
                note,
                plot=f"breakdown_{dim}.png" if len(values) > 1 else None,
                level=3,
            )
        )
    if several:
        rows = []
        systems = list(dict.fromkeys(s for _, s in series))
        for system in systems:
            row = [system]
            for r in runs:
                s = next(
                    (x for x in sums[r.label] if x.system == system and x.mode == main_mode), None
                )
                row.append(
                    "–"
                    if s is None
                    else (pct(s.accuracy) if main_mode == "mcq" else num(s.accuracy, 3))
                )
            rows.append(row)
        if main_mode == "mcq":
            rows.append(["random guess", *[pct(RANDOM_GUESS) for _ in runs]])
        sections.insert(1, Section("Side by side", ["system", *[r.label for r in runs]], rows))
    return sections


def to_markdown(sections: list[Section], title: str, plots: dict[str, Path]) -> str:
    parts = [f"# {title}", ""]
    breakdown_header = False
    for s in sections:
        if s.level == 3 and not breakdown_header:
            parts += ["## Breakdowns", ""]
            breakdown_header = True
        parts += [f"{'#' * s.level} {s.title}", "", _md_table(s.header, s.rows), ""]
        if s.note:
            parts += [s.note, ""]
        if s.plot and s.plot in plots:
            parts += [f"![{s.title}](plots/{s.plot})", ""]
    return "\n".join(parts)


def print_sections(sections: list[Section], console: Any) -> None:
    """Print the sections as rich tables."""
    from rich.table import Table

    for s in sections:
        t = Table(title=s.title, title_justify="left", title_style="bold")
        for i, h in enumerate(s.header):
            t.add_column(h, justify="left" if i == 0 else "right", overflow="fold")
        for row in s.rows:
            style = "dim" if row and row[0] == "random guess" else None
            t.add_row(*row, style=style)
        console.print(t)
        if s.note:
            console.print(f"[dim]{s.note}[/]")
        console.print()


# --- plots --------------------------------------------------------------------------------------
def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


_COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]
_HATCHES: list[str | None] = [None, "//", "..", "xx", "\\\\", "++"]
_MARKERS = ["o", "s", "^", "D", "v", "P"]


def make_plots(runs: list[Run], out_dir: Path) -> dict[str, Path]:
    """Write the PNG plots; returns name -> path."""
    plt = _plt()
    out_dir.mkdir(parents=True, exist_ok=True)
    several = len(runs) > 1
    written: dict[str, Path] = {}
    sums = [s for r in runs for s in summarize(r)]
    systems = list(dict.fromkeys(system for _, system in _series(runs)))
    palette = {sys_: _COLORS[i % len(_COLORS)] for i, sys_ in enumerate(systems)}
    run_index = {r.label: i for i, r in enumerate(runs)}

    def color(system: str) -> str:
        return palette.get(system, "#888888")

    def hatch(run: str) -> str | None:
        return _HATCHES[run_index.get(run, 0) % len(_HATCHES)]

    def marker(run: str) -> str:
        return _MARKERS[run_index.get(run, 0) % len(_MARKERS)]

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written[name] = path

    def bars(
        sel: list[SystemSummary], name: str, ylabel: str, floor: float | None, title: str
    ) -> None:
        sel = [s for s in sel if s.n and s.accuracy is not None]
        if not sel:
            return
        rank = {(r.label, system): i for i, (r, system) in enumerate(_series(runs))}
        sel.sort(key=lambda s: rank.get((s.run, s.system), 99))
        fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(sel) + 2), 4))
        labels = [f"{s.system}\n[{s.run}]" if several else s.system for s in sel]
        vals = [s.accuracy or 0.0 for s in sel]
        err = [
            [max(0.0, v - s.ci[0]) for v, s in zip(vals, sel, strict=True)],
            [max(0.0, s.ci[1] - v) for v, s in zip(vals, sel, strict=True)],
        ]
        for i, (v, s) in enumerate(zip(vals, sel, strict=True)):
            ax.bar(
                [i],
                [v],
                yerr=[[err[0][i]], [err[1][i]]],
                capsize=5,
                color=color(s.system),
                hatch=hatch(s.run),
                edgecolor="black",
                linewidth=0.5,
            )
        for i, (v, s) in enumerate(zip(vals, sel, strict=True)):
            ax.text(
                i,
                s.ci[1] + 0.02,
                f"{100 * v:.0f}%  (n={s.n})",
                ha="center",
                va="bottom",
                fontsize=8,
            )
        if floor is not None:
            ax.axhline(floor, ls="--", color="gray", lw=1, label=f"random guess ({floor:.0%})")
            ax.legend(fontsize=8, loc="upper right", frameon=False)
        ax.set_xticks(range(len(sel)), labels, fontsize=9)
        ax.set_ylim(0, 1.12)
        ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.yaxis.set_major_formatter(lambda x, _: f"{100 * x:.0f}%")
        ax.grid(axis="y", alpha=0.3)
        save(fig, name)

    mcq = [s for s in sums if s.mode == "mcq"]
    opn = [s for s in sums if s.mode == "open"]
    bars(mcq, "accuracy.png", "accuracy (95% CI)", RANDOM_GUESS, "MCQ accuracy per system")
    bars(opn, "open_scores.png", "mean judge score (95% CI)", None, "Open-ended alignment score")

    # accuracy vs answer-time input tokens
    main = mcq or opn
    pts = [s for s in main if s.n and s.accuracy is not None]
    if pts:
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        for s in pts:
            key = f"{s.system} [{s.run}]" if several else s.system
            x = max(s.tokens_in, 1.0)
            ax.errorbar(
                [x],
                [s.accuracy],
                yerr=[[max(0.0, s.accuracy - s.ci[0])], [max(0.0, s.ci[1] - s.accuracy)]],
                fmt=marker(s.run),
                ms=8,
                capsize=4,
                color=color(s.system),
                label=key,
            )
            ax.annotate(key, (x, s.accuracy), textcoords="offset points", xytext=(7, 5), fontsize=8)
        if main is mcq:
            ax.axhline(RANDOM_GUESS, ls="--", color="gray", lw=1, label="random guess")
        ax.set_xscale("log")
        ax.set_xlabel("answer-time input tokens per question (log scale)")
        ax.set_ylabel("accuracy" if main is mcq else "mean judge score")
        ax.set_ylim(0, 1.05)
        ax.yaxis.set_major_formatter(lambda x, _: f"{100 * x:.0f}%")
        ax.grid(alpha=0.3)
        ax.set_title("Accuracy versus what the answer costs")
        ax.legend(fontsize=8, loc="best")
        save(fig, "accuracy_vs_tokens.png")

    # breakdowns (the paper's Figure 5 style: grouped bars per category)
    main_mode = "mcq" if mcq else "open"
    series = _series(runs)
    for dim, title in BREAKDOWNS:
        merged: dict[str, dict[tuple[str, str], Cell]] = defaultdict(dict)
        for r in runs:
            for value, cells in breakdown(r, dim, main_mode).items():
                for system, cell in cells.items():
                    merged[value][(r.label, system)] = cell
        if len(merged) < 2:
            continue
        values = sorted(merged, key=_bucket_key if dim == "distance_bucket" else str)
        width = 0.8 / max(1, len(series))
        fig, ax = plt.subplots(
            figsize=(max(6.0, 0.9 * len(values) * max(1, len(series)) ** 0.5 + 3), 4.2)
        )
        for j, (run, system) in enumerate(series):
            key = _name(run, system, several)
            xs, ys, lo, hi = [], [], [], []
            for i, v in enumerate(values):
                c = merged[v].get((run.label, system))
                if c is None or not c.n:
                    continue
                a = c.acc or 0.0
                ci = wilson(int(round(c.k)), c.n) if main_mode == "mcq" else (a, a)
                xs.append(i - 0.4 + width * (j + 0.5))
                ys.append(a)
                lo.append(max(0.0, a - ci[0]))
                hi.append(max(0.0, ci[1] - a))
            ax.bar(
                xs,
                ys,
                width=width,
                yerr=[lo, hi],
                capsize=2,
                label=key,
                color=color(system),
                hatch=hatch(run.label),
                edgecolor="black",
                linewidth=0.4,
                error_kw={"elinewidth": 0.7, "alpha": 0.6},
            )
        counts = [max((c.n for c in merged[v].values()), default=0) for v in values]
        ax.set_xticks(
            range(len(values)),
            [f"{v.replace('_', ' ')}\n(n={n})" for v, n in zip(values, counts, strict=True)],
            fontsize=8,
            rotation=30 if len(values) > 5 else 0,
            ha="right" if len(values) > 5 else "center",
        )
        if main_mode == "mcq":
            ax.axhline(RANDOM_GUESS, ls="--", color="gray", lw=1)
        ax.set_ylim(0, 1.22)
        ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        ax.yaxis.set_major_formatter(lambda x, _: f"{100 * x:.0f}%")
        ax.set_ylabel("accuracy" if main_mode == "mcq" else "mean judge score")
        ax.set_title(f"By {title}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, ncols=min(4, len(series)), loc="upper center", frameon=False)
        save(fig, f"breakdown_{dim}.png")
    return written


# --- entry point --------------------------------------------------------------------------------
@dataclass
class ReportResult:
    markdown: str
    markdown_path: Path
    plots: dict[str, Path]
    sections: list[Section]


def write_report(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path | None = None,
    *,
    console: Any = None,
    plots: bool = True,
    on_plot_error: Callable[[Exception], None] | None = None,
) -> ReportResult:
    """Report on one run (written into its folder) or compare several (written to ``out_dir``,
    default ``<first run>/compare``): ``report.md`` and ``plots/*.png``; tables to ``console``."""
    if not run_dirs:
        raise ReportError("give at least one run folder")
    runs = [load_run(p) for p in run_dirs]
    _labels(runs)
    if out_dir is None:
        out_dir = runs[0].path if len(runs) == 1 else runs[0].path / "compare"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections = build_sections(runs)
    written: dict[str, Path] = {}
    if plots:
        try:
            written = make_plots(runs, out / "plots")
        except ImportError as e:  # matplotlib missing: tables still work
            if on_plot_error:
                on_plot_error(e)
    title = "PersonaMem-v2 benchmark: " + ", ".join(r.label for r in runs)
    md = to_markdown(sections, title, written)
    path = out / "report.md"
    path.write_text(md, encoding="utf-8")
    if console is not None:
        print_sections(sections, console)
    return ReportResult(md, path, written, sections)
