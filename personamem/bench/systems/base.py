"""The interface every benchmarked system implements, and the registry that finds them.

A system turns (a history, a question) into the context an :class:`~personamem.answer.Answerer`
answers from: ``memory=``, ``history=``, ``snippets=`` or nothing. Work that depends only on the
history (building a memory, embedding turns) goes in :meth:`System.prepare`, which the runner
calls once per history and shares between that history's questions.

Adding a system is one file in this folder: subclass :class:`System`, set ``name``, decorate the
class with :func:`register`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ...answer import Answerer
from ...data import ChatHistory, QAItem
from ...models.base import Message, Model
from ..config import RunConfig

SYSTEMS: dict[str, type[System]] = {}


def register(cls: type[System]) -> type[System]:
    """Class decorator: make a system available under ``cls.name``."""
    if not getattr(cls, "name", ""):
        raise TypeError(f"{cls.__name__} has no name")
    SYSTEMS[cls.name] = cls
    return cls


class Progress:
    """Callbacks a system uses to show long preparation work (no-ops by default)."""

    def start(self, key: str, description: str, total: int | None) -> None:
        """A piece of work of ``total`` steps begins."""

    def advance(self, key: str, steps: int = 1, description: str | None = None) -> None:
        """``steps`` more steps of ``key`` are done."""

    def stop(self, key: str) -> None:
        """The work is over (finished or failed)."""

    def note(self, message: str) -> None:
        """A line worth telling the user (a warning, a cache hit)."""


@dataclass
class Env:
    """What systems share during a run."""

    model: Model
    answerer: Answerer
    config: RunConfig
    cache_dir: Path
    run_dir: Path
    progress: Progress = field(default_factory=Progress)
    #: Items of the whole release per history link (for settings that must not depend on --limit).
    items_by_history: dict[str, list[QAItem]] = field(default_factory=dict)
    embedder_factory: Callable[[], Any] | None = None
    memory_model: Model | None = None
    """The model that writes memories when it is not ``model``."""


@dataclass
class Prepared:
    """What a system derived from one history, once, and what that cost."""

    data: Any = None
    build: dict[str, Any] | None = None
    """Cost record of the preparation (tokens_in, tokens_out, seconds, cached, ...), or None."""


@dataclass
class Context:
    """The keyword arguments for the answerer and facts to record on the result row."""

    kwargs: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def conversation(history: ChatHistory) -> list[Message]:
    """The history as the user lived it: without the leading system message, which embeds the
    generator's persona description (the paper's code drops it too)."""
    msgs = history.messages
    if msgs and msgs[0]["role"] == "system":
        return list(msgs[1:])
    return list(msgs)


class System(ABC):
    """A way of giving a model what it knows about the user before it answers."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: The questions of one history must be answered one after another, in order (KV reuse).
    sequential: ClassVar[bool] = False

    def __init__(self, env: Env) -> None:
        self.env = env

    def version(self) -> dict[str, Any]:
        """Settings and prompt versions that identify this system's answers (for the manifest)."""
        return {}

    async def prepare(self, history: ChatHistory, link: str) -> Prepared:
        """One-off work on a history, shared by all its questions. Default: nothing."""
        return Prepared()

    @abstractmethod
    async def context(
        self, item: QAItem, history: ChatHistory, prepared: Prepared, mode: str
    ) -> Context:
        """The answering context for one question (``mode`` is ``mcq`` or ``open``)."""
