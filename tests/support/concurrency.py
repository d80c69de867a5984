"""The one barrier harness: concurrent callers released at the same instant."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg


def concurrently(actions: list[Callable[[], Any]], *, timeout: float = 120) -> list[Any]:
    """Run each action in its own thread, all released together by a barrier.

    Returns each action's result or the exception it raised, in order. Do the setup (connections,
    clients) before calling, so that only the actions themselves race.
    """
    barrier = threading.Barrier(len(actions))
    results: list[Any] = [None] * len(actions)

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = actions[i]()
        except Exception as exc:  # collected and asserted by the caller
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(actions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), f"a racing caller was still running after {timeout}s"
    return results


def race(
    connect: Callable[..., psycopg.Connection],
    actions: list[Callable[[psycopg.Connection], Any]],
    who: str | list[str] = "app",
) -> list[Any]:
    """:func:`concurrently`, each action on its own connection ``connect(who)`` (the ``connect`` fixture);
    ``who`` is one login for all, or one per action."""
    logins = [who] * len(actions) if isinstance(who, str) else who
    conns = [connect(w) for w in logins]
    return concurrently([lambda a=a, c=c: a(c) for a, c in zip(actions, conns, strict=True)])
