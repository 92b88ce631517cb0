"""Judge validation: is a judge's score worth using?

Each item's correct option and its wrong options are scored as responses with the rubric the
benchmark uses (:meth:`~personamem.bench.scoring.Judge.align`). A judge "ranks the correct one
first" on an item when the correct option's score is strictly above every wrong option's; a tie
at the top or a reply without a score does not count. A judge that ranks the correct option first
on less than :data:`MIN_CORRECT_FIRST` of the items is not used.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from pydantic import BaseModel, Field

from ..data import QAItem
from ..models.base import ModelError
from .report import wilson
from .scoring import JUDGE_PROMPT_VERSION, Judge

#: The share of items on which a judge must rank the correct option first to be used.
MIN_CORRECT_FIRST = 0.8


class ItemCheck(BaseModel):
    """One item: the correct option's score and the wrong options' scores."""

    qid: str
    correct: float | None
    wrong: list[float | None]
    first: bool
    """The correct option scored strictly above every wrong option."""
    tie: bool
    """The correct option tied with the best wrong option (neither above)."""


class JudgeValidation(BaseModel):
    """How often a judge ranks the correct option first, with a Wilson 95% interval."""

    judge: str
    key: str
    """The judge's identity (spec, sampling, rubric version); a recorded validation is reused
    only for the same key and the same items."""
    prompt_version: str = JUDGE_PROMPT_VERSION
    method: str = ""
    """How scores were read: ``distribution`` (score-token probabilities) or ``generate``."""
    items: int = 0
    correct_first: int = 0
    share: float | None = None
    ci: tuple[float, float] = (0.0, 1.0)
    ties: int = 0
    """Items whose correct option tied with the best wrong one."""
    unparsed: int = 0
    """Responses the judge gave no readable score for (model errors included)."""
    responses: int = 0
    threshold: float = MIN_CORRECT_FIRST
    passed: bool = False
    seconds: float = 0.0
    item_ids: list[str] = Field(default_factory=list)
    checks: list[ItemCheck] = Field(default_factory=list)

    @classmethod
    def of(
        cls,
        judge: Judge,
        checks: Sequence[ItemCheck],
        *,
        method: str = "",
        unparsed: int | None = None,
        responses: int | None = None,
        threshold: float = MIN_CORRECT_FIRST,
        seconds: float = 0.0,
    ) -> JudgeValidation:
        """The validation of ``judge`` from its item checks (also for a partial run); responses
        and unparsed ones are counted from the checks unless given."""
        scores = [s for c in checks for s in (c.correct, *c.wrong)]
        responses = len(scores) if responses is None else responses
        unparsed = sum(s is None for s in scores) if unparsed is None else unparsed
        k, n = sum(c.first for c in checks), len(checks)
        share = k / n if n else None
        return cls(
            judge=judge.spec,
            key=judge.key,
            method=method,
            items=n,
            correct_first=k,
            share=share,
            ci=wilson(k, n),
            ties=sum(c.tie for c in checks),
            unparsed=unparsed,
            responses=responses,
            threshold=threshold,
            passed=share is not None and share >= threshold,
            seconds=round(seconds, 3),
            item_ids=[c.qid for c in checks],
            checks=list(checks),
        )

    def summary(self) -> str:
        lo, hi = self.ci
        share = "–" if self.share is None else f"{100 * self.share:.1f}%"
        return (
            f"{self.judge}: correct option first on {self.correct_first}/{self.items} items "
            f"({share}, 95% CI {100 * lo:.1f}-{100 * hi:.1f}%), {self.ties} ties, "
            f"{self.unparsed} unparsed of {self.responses} scores; "
            + ("passes" if self.passed else f"FAILS (needs {100 * self.threshold:.0f}%)")
        )


async def validate_judge(
    judge: Judge,
    items: Sequence[QAItem],
    *,
    threshold: float = MIN_CORRECT_FIRST,
    on_item: Callable[[ItemCheck], None] | None = None,
) -> JudgeValidation:
    """Score every item's correct and wrong options with ``judge``; see the module docstring."""
    t0 = time.perf_counter()
    checks: list[ItemCheck] = []
    methods: set[str] = set()
    unparsed = responses = 0
    for item in items:
        scores: list[float | None] = []
        for response in [item.correct_answer, *item.incorrect_answers]:
            try:
                s, _, how = await judge.align(item, response)
                methods.add(how)
            except ModelError:
                s = None
            responses += 1
            unparsed += s is None
            scores.append(s)
        correct, wrong = scores[0], scores[1:]
        known = [w for w in wrong if w is not None]
        ok = correct is not None and len(known) == len(wrong)
        best = max(known) if known else None
        first = ok and (best is None or correct > best)  # type: ignore[operator]
        tie = ok and best is not None and correct == best
        check = ItemCheck(qid=item.id, correct=correct, wrong=wrong, first=first, tie=tie)
        checks.append(check)
        if on_item is not None:
            on_item(check)
    return JudgeValidation.of(
        judge,
        checks,
        method=",".join(sorted(methods)),
        unparsed=unparsed,
        responses=responses,
        threshold=threshold,
        seconds=time.perf_counter() - t0,
    )
