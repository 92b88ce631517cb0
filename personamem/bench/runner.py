"""Run systems over PersonaMem-v2 questions and record every answer, resumably.

The unit of work is one question for one system in one mode (``mcq`` or ``open``), identified by
(question id, system, mode). Finished units are read back from ``results.jsonl`` and skipped, so
re-running the same command resumes. Questions of one history are answered consecutively
(memory built once; long-context prompts share the history as a KV-cache prefix). Open-ended
answers are written first with ``status = "answered"`` and judged in a second phase, so judge
calls never break the answering model's KV cache; a resumed run judges what is left. Before any
open-ended work, each judge is validated on the run's first questions (``judge_validation.json``,
reused on resume); judges that fail are not used, and the run stops if none passes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..answer import Answerer
from ..data import ChatHistory, DataError, QAItem, Release, load_release
from ..data.snippets import attach_snippet_histories
from ..models import Model, ModelError, get_model
from . import scoring
from .config import RunConfig
from .modelcache import ScoreCache
from .store import RunStore
from .systems import Env, Prepared, Progress, System, get_system
from .validation import MIN_CORRECT_FIRST, JudgeValidation, validate_judge

DISTANCE_EDGES = (2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000)


class BenchError(ValueError):
    """The run cannot start as asked (no questions, bad settings); the message says why."""


def version_key(version: dict[str, Any] | None) -> str | None:
    """A short, stable key of a system's version (prompt version and settings that change its
    answers); rows carry it so a resumed run redoes answers an older version gave."""
    if version is None:
        return None
    blob = json.dumps(version, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def distance_bucket(tokens: int | None) -> str:
    """A readable bucket for the distance of the evidence from the end of the history."""
    if tokens is None:
        return "unknown"
    lo = 0
    for hi in DISTANCE_EDGES:
        if tokens < hi:
            return f"{lo // 1000}-{hi // 1000}k"
        lo = hi
    return f"{DISTANCE_EDGES[-1] // 1000}k+"


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def evidence_ids(item: QAItem, history: ChatHistory) -> list[int]:
    """History indices of the messages of the item's related conversation snippet."""
    wanted = {_text(m.get("content")).strip() for m in item.related_snippet}
    wanted.discard("")
    return [i for i, m in enumerate(history.messages) if m["content"].strip() in wanted]


@dataclass
class HistoryFacts:
    """Per-history facts the rows need: tokens after each message (for evidence distances)."""

    tail_tokens: list[int]

    @classmethod
    def of(cls, history: ChatHistory, model: Model) -> HistoryFacts:
        tail = [0] * (len(history.messages) + 1)
        for i in range(len(history.messages) - 1, -1, -1):
            tail[i] = tail[i + 1] + model.count_tokens(history.messages[i]["content"]) + 4
        return cls(tail)

    def distance(self, ids: Sequence[int]) -> int | None:
        """Tokens between the end of the last evidence message and the end of the history."""
        return self.tail_tokens[max(ids) + 1] if ids else None


class RunEvents(Progress):
    """What a runner tells its caller as it goes (no-ops by default; the CLI draws bars)."""

    def plan(self, answers: int, judgements: int, done: int) -> None:
        """Work ahead: answers to get, open answers to judge; results already in the folder."""

    def answered(self, row: dict[str, Any]) -> None:
        """One answer was recorded."""

    def judged(self, row: dict[str, Any]) -> None:
        """One open-ended answer was judged."""


@dataclass
class RunSummary:
    run_dir: Path
    answered: int = 0
    judged: int = 0
    errors: int = 0
    skipped: int = 0
    seconds: float = 0.0
    error_messages: list[str] = field(default_factory=list)


@dataclass
class _Unit:
    system: System
    link: str
    work: list[tuple[QAItem, str]]


def select_items(release: Release, config: RunConfig) -> list[QAItem]:
    """The questions a run asks: split, personas, a history for the context size, then --limit."""
    items = release.split(config.split)
    if not items:
        raise BenchError(f"{release.root}: no questions in split {config.split!r}")
    if config.personas:
        wanted = {p.strip() for p in config.personas}
        items = [q for q in items if q.persona_id in wanted]
        if not items:
            raise BenchError(f"no questions for persona(s) {', '.join(sorted(wanted))}")
    with_history = [q for q in items if q.history_link(config.context)]
    if not with_history:
        raise BenchError(
            f"none of the {len(items)} selected questions has a {config.context} chat history "
            + (
                "(no related_conversation_snippet)"
                if config.context == "snippet"
                else f"(column chat_history_{config.context}_link is empty)"
            )
        )
    items = with_history
    if config.per_persona is not None:
        items = per_persona_subset(items, config.per_persona, config.seed)
    if config.limit is not None:
        items = items[: max(0, config.limit)]
    return items


def judge_items(release: Release, split: str, personas: Sequence[str] = ()) -> list[QAItem]:
    """Questions of ``split`` (of ``personas`` if given) with wrong options: what judges are
    validated on (no history needed)."""
    items = [q for q in release.split(split) if q.incorrect_answers]
    if personas:
        wanted = {p.strip() for p in personas}
        items = [q for q in items if q.persona_id in wanted]
    if not items:
        raise BenchError(
            f"{release.root}: no questions with wrong options in split {split!r}"
            + (f" for persona(s) {', '.join(personas)}" if personas else "")
        )
    return items


def per_persona_subset(items: Sequence[QAItem], n: int, seed: int = 0) -> list[QAItem]:
    """At most ``n`` questions per persona, drawn by a seeded hash of their ids (stable when other
    rows are added), in the original order."""

    def draw(q: QAItem) -> str:
        return hashlib.sha256(f"{seed}:{q.id}".encode()).hexdigest()

    keep: set[str] = set()
    by_persona: dict[str, list[QAItem]] = defaultdict(list)
    for q in items:
        by_persona[q.persona_id].append(q)
    for group in by_persona.values():
        keep.update(q.id for q in sorted(group, key=draw)[: max(0, n)])
    return [q for q in items if q.id in keep]


class Runner:
    """One benchmark run into one folder; call :meth:`run` (async) or :func:`run_bench`."""

    def __init__(
        self,
        config: RunConfig,
        run_dir: str | Path,
        *,
        model: Model | None = None,
        judge_models: dict[str, Model] | None = None,
        memory_model: Model | None = None,
        events: RunEvents | None = None,
        embedder_factory: Any = None,
        release: Release | None = None,
        extra_manifest: dict[str, Any] | None = None,
    ) -> None:
        for name in config.systems:
            get_system(name)  # fail early on unknown names
        if config.concurrency < 1:
            raise BenchError("--concurrency must be at least 1")
        self.config = config
        self.store = RunStore(run_dir)
        self.events = events or RunEvents()
        self._model = model
        self._judge_models = judge_models
        self._memory_model = memory_model
        self._embedder_factory = embedder_factory
        self._release = release
        self._extra = extra_manifest or {}
        self._prepared: dict[tuple[str, str], asyncio.Future[Prepared]] = {}
        self._histories: dict[str, ChatHistory] = {}
        self._facts: dict[str, HistoryFacts] = {}

    # --- setup -----------------------------------------------------------------------------
    def release(self) -> Release:
        if self._release is None:
            try:
                self._release = load_release(self.config.data_dir, splits=(self.config.split,))
            except DataError as e:
                raise BenchError(str(e)) from e
            if self.config.context == "snippet":
                attach_snippet_histories(
                    self._release, distractors=self.config.distractors, seed=self.config.seed
                )
        return self._release

    def model(self) -> Model:
        """The answering model, wrapped in a :class:`ScoreCache`."""
        if self._model is None:
            self._model = get_model(self.config.model)
        if not isinstance(self._model, ScoreCache):
            self._model = ScoreCache(self._model, self.store.root / "scores.jsonl")
        return self._model

    def memory_model(self) -> Model | None:
        """The model that writes memories, when the run names one other than ``model``."""
        cfg = self.config
        if self._memory_model is None and cfg.writer_spec() != cfg.model:
            if "memory" in cfg.systems:
                self._memory_model = get_model(cfg.writer_spec())
        return self._memory_model

    def judges(self) -> list[scoring.Judge]:
        specs = self.config.judge_specs()
        models = dict(self._judge_models or {})
        for s in specs:
            if s not in models:
                models[s] = self.model() if s == self.config.model else get_model(s)
        return scoring.make_judges(specs, models)

    async def validated_judges(self, items: Sequence[QAItem]) -> list[scoring.Judge]:
        """The run's judges that pass validation on its first questions (recorded in the run
        folder and reused on resume); raises :class:`BenchError` when none passes."""
        cfg = self.config
        if cfg.judge_validation_items < 1:
            raise BenchError("--judge-validation-items must be at least 1")
        sample = [q for q in items if q.incorrect_answers][: cfg.judge_validation_items]
        if not sample:
            raise BenchError("no selected question has wrong options to validate the judges on")
        ids = [q.id for q in sample]
        recorded = self.store.judge_validations()
        kept: list[scoring.Judge] = []
        results: list[JudgeValidation] = []
        for j in self.judges():
            old = recorded.get(j.key)
            if old is not None and old.get("item_ids") == ids:
                v = JudgeValidation.model_validate(old)
            else:
                task = f"validate:{j.key}"
                self.events.start(task, f"validating judge {j.spec}", len(sample))
                try:
                    v = await validate_judge(
                        j, sample, on_item=lambda _c, t=task: self.events.advance(t)
                    )
                finally:
                    self.events.stop(task)
                self.store.record_judge_validation(j.key, v.model_dump(mode="json"))
            results.append(v)
            if v.passed:
                kept.append(j)
                self.events.note(f"judge validated: {v.summary()}")
            else:
                self.events.note(f"judge NOT USED: {v.summary()}")
        self.store.update_manifest(
            judges_used=[j.key for j in kept],
            judges_validated=[v.key for v in results],
        )
        if not kept:
            raise BenchError(
                f"no judge passed validation (the correct option scored above every wrong one "
                f"on at least {100 * MIN_CORRECT_FIRST:.0f}% of {len(sample)} questions): "
                + "; ".join(v.summary() for v in results)
                + ". Open-ended scores from them would mean nothing. Use a stronger judge, e.g. "
                "--judges openai/<model> (OPENAI_BASE_URL, OPENAI_API_KEY) or local/qwen2.5-1.5b "
                "(benchmarks/judges.md), checked first with "
                "`personamem bench validate-judges`. The answers are kept in the run folder: "
                "re-run with other --judges to judge them."
            )
        return kept

    def history(self, link: str) -> ChatHistory:
        if link not in self._histories:
            self._histories[link] = self.release().history(link)
        return self._histories[link]

    def facts(self, link: str) -> HistoryFacts:
        if link not in self._facts:
            self._facts[link] = HistoryFacts.of(self.history(link), self.model())
        return self._facts[link]

    # --- the run ---------------------------------------------------------------------------
    async def run(self) -> RunSummary:
        t0 = time.perf_counter()
        cfg = self.config
        release = self.release()
        items = select_items(release, cfg)
        if release.issues:
            self.events.note(
                f"{len(release.issues)} unusable row(s) of the release were skipped "
                f"(first: {release.issues[0]}); `personamem data inspect` lists them"
            )
        if release.warnings:
            self.events.note(
                f"{len(release.warnings)} row(s) of the release differ from the PersonaMem-v2 "
                f"format and were loaded (first: {release.warnings[0]})"
            )
        model = self.model()
        by_history: dict[str, list[QAItem]] = defaultdict(list)
        for q in release.split(cfg.split):
            if q.history_link(cfg.context):
                by_history[q.history_link(cfg.context)].append(q)
        env = Env(
            model=model,
            answerer=Answerer(model, method=cfg.mcq_method, max_tokens=cfg.open_max_tokens),
            config=cfg,
            cache_dir=Path(cfg.cache_dir).expanduser(),
            run_dir=self.store.root,
            progress=self.events,
            items_by_history=dict(by_history),
            embedder_factory=self._embedder_factory,
            memory_model=self.memory_model(),
        )
        systems = [get_system(name)(env) for name in cfg.systems]
        self.env = env
        # Versions the run folder recorded before this call: rows without their own version
        # key (older runs) were answered by those.
        recorded = (self.store.read_manifest() or {}).get("systems_versions") or {}
        self.store.open(
            cfg,
            extra={
                **self._extra,
                "model_name": model.name,
                "memory_model_name": cfg.writer_spec(),
                "context_window": model.context_window,
                "judge_specs": cfg.judge_specs() if "open" in cfg.modes else [],
                "judge_prompt_version": scoring.JUDGE_PROMPT_VERSION,
                "systems_versions": {**recorded, **{s.name: s.version() for s in systems}},
                "selected_questions": len(items),
            },
        )
        done = self.store.results()
        summary = RunSummary(self.store.root)
        units: list[_Unit] = []
        to_judge: list[dict[str, Any]] = []
        n_answers = n_open = 0
        for system in systems:
            groups: dict[str, list[tuple[QAItem, str]]] = defaultdict(list)
            current = version_key(system.version())
            stale = rejudge = 0
            for q in items:
                for mode in cfg.modes:
                    row = done.get((q.id, system.name, mode))
                    if row is not None:
                        v = row.get("system_version") or version_key(recorded.get(system.name))
                        if v is not None and v != current:
                            row, stale = None, stale + 1
                    if (
                        row is not None
                        and row.get("status") == "done"
                        and mode == "open"
                        and row.get("judge_prompt_version") != scoring.JUDGE_PROMPT_VERSION
                    ):
                        rejudge += 1
                        to_judge.append({**row, "status": "answered"})
                    elif row is not None and row.get("status") == "done":
                        summary.skipped += 1
                    elif row is not None and row.get("status") == "answered":
                        to_judge.append(row)
                    else:
                        groups[q.history_link(cfg.context)].append((q, mode))
            if stale:
                self.events.note(
                    f"{system.name}: {stale} answer(s) in the run folder came from another "
                    f"version of the system ({recorded.get(system.name)}); they are redone"
                )
            if rejudge:
                self.events.note(
                    f"{system.name}: {rejudge} open answer(s) were judged with another rubric "
                    f"than {scoring.JUDGE_PROMPT_VERSION}; they are judged again (not re-answered)"
                )
            for link in sorted(groups):
                work = groups[link]
                n_answers += len(work)
                n_open += sum(1 for _, m in work if m == "open")
                if system.sequential:
                    units.append(_Unit(system, link, work))
                else:
                    units.extend(_Unit(system, link, [w]) for w in work)
        self._judges: list[scoring.Judge] | None = None
        if "open" in cfg.modes and (n_open or to_judge):
            self._judges = await self.validated_judges(items)
        self.events.plan(n_answers, len(to_judge) + n_open, summary.skipped)
        queue: asyncio.Queue[_Unit] = asyncio.Queue()
        for u in units:
            queue.put_nowait(u)
        answered: list[dict[str, Any]] = []

        async def worker() -> None:
            while True:
                try:
                    unit = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await self._do_unit(unit, summary, answered)

        await asyncio.gather(*(worker() for _ in range(min(cfg.concurrency, len(units)) or 1)))
        to_judge += [r for r in answered if r["status"] == "answered"]
        if to_judge:
            await self._judge_all(to_judge, summary)
        summary.seconds = time.perf_counter() - t0
        return summary

    async def _prepare(self, system: System, link: str) -> Prepared:
        key = (system.name, link)
        if key not in self._prepared:
            fut: asyncio.Future[Prepared] = asyncio.get_running_loop().create_future()
            self._prepared[key] = fut
            try:
                history = self.history(link)
                prepared = await system.prepare(history, link)
                if prepared.build is not None:
                    self.store.append_build(
                        {
                            "system": system.name,
                            "history": link,
                            "history_hash": history.content_hash,
                            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                            **prepared.build,
                        }
                    )
                fut.set_result(prepared)
            except Exception as e:  # every question of this history will report it
                fut.set_exception(e)
                fut.exception()  # mark retrieved: awaited below
        return await asyncio.shield(self._prepared[key])

    async def _warm_baselines(self, unit: _Unit) -> None:
        """Score the questions' context-free baselines before the history is in the KV cache
        (likelihood answering needs them; scored in between, they would evict the history)."""
        if self.config.mcq_method not in ("auto", "likelihood"):
            return
        model = self.model()
        t0 = time.perf_counter()
        before = model.usage.snapshot()
        n = 0
        for item, mode in unit.work:
            if mode != "mcq":
                continue
            options = [o.strip() for o in scoring.shuffle_options(item, self.config.seed).options]
            try:
                res = await model.score_continuations(Answerer.messages(item.query), options)
            except ModelError:
                return
            if res is None:
                return
            n += 1
        used = model.usage.since(before)
        if n and used.calls:
            self.store.append_build(
                {
                    "system": unit.system.name,
                    "history": unit.link,
                    "history_hash": self.history(unit.link).content_hash,
                    "kind": "baselines",
                    "questions": n,
                    "cached": False,
                    "tokens_in": used.tokens_in,
                    "tokens_out": 0,
                    "prefill_tokens": used.prefill_tokens,
                    "seconds": round(time.perf_counter() - t0, 4),
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                }
            )

    async def _do_unit(
        self, unit: _Unit, summary: RunSummary, answered: list[dict[str, Any]]
    ) -> None:
        # Baselines first, for every system: scored between answers they would evict the
        # shared context (history or memory) from the local model's KV cache.
        await self._warm_baselines(unit)
        for order, (item, mode) in enumerate(unit.work):
            try:
                prepared = await self._prepare(unit.system, unit.link)
                row = await self._answer(unit.system, unit.link, item, mode, prepared)
                row["order_in_history"] = order if unit.system.sequential else None
            except Exception as e:  # recorded and retried on resume; the run goes on
                row = self._base_row(unit.system, unit.link, item, mode)
                row.update(status="error", error=f"{type(e).__name__}: {e}", score=None)
                summary.errors += 1
                if len(summary.error_messages) < 20:
                    summary.error_messages.append(f"{unit.system.name} {item.id}: {row['error']}")
            self.store.append_result(row)
            if row["status"] != "error":
                summary.answered += 1
                answered.append(row)
            self.events.answered(row)

    def _base_row(self, system: System, link: str, item: QAItem, mode: str) -> dict[str, Any]:
        cfg = self.config
        release_distance = item.distance_32k if cfg.context == "32k" else item.distance_128k
        row: dict[str, Any] = {
            "qid": item.id,
            "system": system.name,
            "mode": mode,
            "status": "error",
            "persona_id": item.persona_id,
            "history": link,
            "context": cfg.context,
            "model": cfg.model,
            "system_version": version_key(system.version()),
            "pref_type": item.pref_type,
            "who": item.who,
            "updated": item.updated,
            "sensitive": item.has_sensitive,
            "scenario": item.conversation_scenario,
            "topic_query": item.topic_query,
            "distance_tokens": release_distance,
            "distance_source": "release" if release_distance is not None else None,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        try:
            history = self.history(link)
            ids = evidence_ids(item, history)
            row["history_hash"] = history.content_hash
            row["evidence_ids"] = ids
            if release_distance is None:
                row["distance_tokens"] = self.facts(link).distance(ids)
                row["distance_source"] = "computed" if ids else None
        except DataError:
            row["history_hash"] = None
        row["distance_bucket"] = distance_bucket(row["distance_tokens"])
        return row

    async def _answer(
        self, system: System, link: str, item: QAItem, mode: str, prepared: Prepared
    ) -> dict[str, Any]:
        history = self.history(link)
        ctx = await system.context(item, history, prepared, mode)
        row = self._base_row(system, link, item, mode)
        row.update(ctx.info)
        answerer = self.env.answerer
        row["correct_answer"] = item.correct_answer
        if mode == "mcq":
            sh = scoring.shuffle_options(item, self.config.seed)
            a = await answerer.mcq(item.query, sh.options, **ctx.kwargs)
            parsed = a.choice is not None
            correct = parsed and a.choice == sh.correct
            row.update(
                status="done",
                options_order=sh.order,
                shuffle_seed=sh.seed,
                correct_letter=sh.correct_letter,
                correct_index=sh.correct,
                answer=a.letter,
                answer_index=a.choice,
                parsed=parsed,
                correct=correct,
                score=1.0 if correct else 0.0,
                choice_scores=a.scores,
            )
        else:
            a = await answerer.open(item.query, **ctx.kwargs)
            row.update(
                status="answered",
                answer=a.text,
                preference=item.preference,
                prev_pref=item.prev_pref,
                parsed=bool(a.text.strip()),
                score=None,
            )
        row.update(
            method=a.method,
            prompt=a.prompt,
            raw=a.raw,
            tokens_in=a.tokens_in,
            tokens_out=a.tokens_out,
            prefill_tokens=a.prefill_tokens,
            seconds=round(a.seconds, 4),
        )
        return row

    async def _judge_all(self, rows: list[dict[str, Any]], summary: RunSummary) -> None:
        judges = self._judges or await self.validated_judges(
            select_items(self.release(), self.config)
        )
        by_id = {q.id: q for q in self.release().items}
        for row in rows:
            item = by_id.get(row["qid"])
            if item is None:
                continue
            t0 = time.perf_counter()
            verdict = await scoring.judge_open(item, row.get("answer") or "", judges)
            new = {**row, **verdict}
            new["status"] = "done"
            new["score"] = verdict["score_mean"] if verdict["score_mean"] is not None else 0.0
            new["judge_seconds"] = round(time.perf_counter() - t0, 4)
            self.store.append_result(new)
            summary.judged += 1
            self.events.judged(new)


def run_bench(config: RunConfig, run_dir: str | Path, **kwargs: Any) -> RunSummary:
    """Run (or resume) a benchmark synchronously; see :class:`Runner` for the keyword arguments."""
    return asyncio.run(Runner(config, run_dir, **kwargs).run())
