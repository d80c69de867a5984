"""What farmops.check_tenancy() may report on a freshly migrated database: nothing.

A known offender would be listed here with the reason it is accepted; tests accept a problem only
if it is listed (never require one to be). Since migration 0051 the list is empty.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

KNOWN_OFFENDERS: set[tuple[str, str, str]] = set()


def problem_key(row: Any) -> tuple[str, str, str]:
    """(object_type, object_name, problem) of a check_tenancy row (a tuple or a dict)."""
    if isinstance(row, dict):
        return row["object_type"], row["object_name"], row["problem"]
    return tuple(row[:3])


def unexpected(rows: Iterable[Any]) -> set[tuple[str, str, str]]:
    """The reported problems that are not known offenders."""
    return {problem_key(r) for r in rows} - KNOWN_OFFENDERS
