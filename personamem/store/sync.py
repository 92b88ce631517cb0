"""Blocking twins of coroutine APIs, generated rather than written twice.

:func:`blocking` gives a class one plain method per public coroutine method of an async class;
each runs the coroutine on a private event-loop thread, so it also works inside a running loop
(a notebook, a web handler). Signatures and docstrings are the async method's.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
C = TypeVar("C", bound=type)


class LoopThread:
    """Runs coroutines on one private event loop in a daemon thread (started on first use)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name=self.name, daemon=True
                )
                self._thread.start()
            loop = self._loop
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def stop(self) -> None:
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join(timeout=5)
            loop.close()


def _blocking_method(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return self._loop_thread.run(getattr(self.aio, name)(*args, **kwargs))

    return method


def blocking(async_cls: type) -> Callable[[C], C]:
    """Class decorator: add a blocking method for every public coroutine method of
    ``async_cls`` (the decorated class holds the async object as ``self.aio`` and a
    :class:`LoopThread` as ``self._loop_thread``). Methods the class defines itself win."""

    def decorate(cls: C) -> C:
        for name, fn in inspect.getmembers(async_cls, inspect.iscoroutinefunction):
            if not name.startswith("_") and name not in cls.__dict__:
                setattr(cls, name, _blocking_method(name, fn))
        return cls

    return decorate


__all__ = ["LoopThread", "blocking"]
