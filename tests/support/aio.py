"""The asyncio client driven from sync tests, so that one behaviour test runs against both clients.

:class:`EventLoopThread` runs one event loop in a thread; :class:`BlockingClient` wraps a
``farmops_client.aio.AsyncClient`` so that a test written against the sync client's surface
(``client.tenant(...)`` as ``t``, ``t.ask(...)``, ``for event in t.ask_stream(...)``) awaits the
async methods on that loop. Nothing is re-implemented: every call is the async client's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import Iterator
from typing import Any


class EventLoopThread:
    """One asyncio event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, awaitable: Any, timeout: float = 120) -> Any:
        """Run a coroutine on the loop and wait for its result (its exception is raised here)."""
        return asyncio.run_coroutine_threadsafe(awaitable, self.loop).result(timeout)

    def close(self) -> None:
        """Stop the loop and its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class BlockingSession:
    """An ``AsyncTenantSession`` whose coroutines and async generators are run to completion."""

    def __init__(self, runner: EventLoopThread, session: Any):
        self._runner = runner
        self.session = session

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.session, name)
        if inspect.isasyncgenfunction(attr):
            return lambda *a, **kw: self._iterate(attr(*a, **kw))
        if inspect.iscoroutinefunction(attr):
            return lambda *a, **kw: self._runner.run(attr(*a, **kw))
        return attr

    def _iterate(self, agen: Any) -> Iterator[Any]:
        try:
            while True:
                try:
                    yield self._runner.run(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._runner.run(agen.aclose())


class BlockingClient:
    """An ``AsyncClient`` with the sync client's surface (see the module docstring)."""

    def __init__(self, runner: EventLoopThread, client: Any):
        self._runner = runner
        self.client = client

    @contextlib.contextmanager
    def tenant(self, farm_id: Any, user_id: str) -> Iterator[BlockingSession]:
        """``async with client.tenant(...)``, entered and left on the loop."""
        manager = self.client.tenant(farm_id, user_id)
        session = self._runner.run(manager.__aenter__())
        try:
            yield BlockingSession(self._runner, session)
        finally:
            self._runner.run(manager.__aexit__(None, None, None))

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if inspect.iscoroutinefunction(attr):
            return lambda *a, **kw: self._runner.run(attr(*a, **kw))
        return attr
